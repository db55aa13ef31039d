package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/tokens"
)

// examplesDir holds the example policies, from this package's folder.
const examplesDir = "../../policies/examples"

// exampleCase brings one folder of policies/examples to a running gateway.
type exampleCase struct {
	example string
	// tier is the "test" tier, the clients' default.
	tier config.Tier
	// configure adds what else the example needs: tiers, departments,
	// models, the time zone.
	configure func(t *testing.T, cfg *config.Config)
	clients   []accounts.NewClient
	// prepare runs with the example in force, before the probes.
	prepare func(t *testing.T, h *harness, keys map[string]string)
	probes  []exampleProbe
}

// exampleProbe is a request whose outcome the example changes.
type exampleProbe struct {
	name   string
	client string
	params openai.ChatCompletionNewParams
	// with is what the request gets with the example beside the default
	// policy; without, with the default policy alone.
	with, without expectation
}

type expectation struct {
	status int
	code   string
	// header, when set, is a response header and its value.
	header [2]string
	// replyHas, when set, is in the model's reply (the mock echoes what it
	// was sent, so this shows what was forwarded).
	replyHas string
}

func (e expectation) check(t *testing.T, what string, got outcome) {
	t.Helper()
	if got.status != e.status || got.code != e.code {
		t.Errorf("%s: got %s, want %d %s", what, got, e.status, e.code)
		return
	}
	if e.header[0] != "" && got.header.Get(e.header[0]) != e.header[1] {
		t.Errorf("%s: %s is %q, want %q", what, e.header[0], got.header.Get(e.header[0]), e.header[1])
	}
	if e.replyHas != "" && !strings.Contains(got.content, e.replyHas) {
		t.Errorf("%s: the reply %.200q does not hold %q", what, got.content, e.replyHas)
	}
}

func chatWithMaxTokens(model, text string, maxTokens int64) openai.ChatCompletionNewParams {
	p := chat(model, text)
	p.MaxTokens = openai.Int(maxTokens)
	return p
}

// etcZoneAt returns an Etc/GMT zone whose hour is hour now, and checks it.
// The Etc names count the other way round: Etc/GMT-3 is three hours ahead
// of UTC.
func etcZoneAt(t *testing.T, hour int) string {
	t.Helper()
	now := time.Now().UTC()
	ahead := ((hour-now.Hour())%24 + 24) % 24
	if ahead > 12 {
		ahead -= 24 // Etc zones run from 12 hours behind UTC to 14 ahead
	}
	name := "Etc/GMT"
	switch {
	case ahead > 0:
		name = fmt.Sprintf("Etc/GMT-%d", ahead)
	case ahead < 0:
		name = fmt.Sprintf("Etc/GMT+%d", -ahead)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time zone %s: %v", name, err)
	}
	if got := now.In(loc).Hour(); got != hour {
		t.Fatalf("%s: hour %d, want %d", name, got, hour)
	}
	return name
}

// decideInput is the policy input POST /admin/decide shows for a chat
// request of client.
func (h *harness) decideInput(client string, params openai.ChatCompletionNewParams) map[string]any {
	h.t.Helper()
	req, err := json.Marshal(params)
	if err != nil {
		h.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"client_id": client, "request": json.RawMessage(req)})
	status, answer := h.admin("POST", "/admin/decide", string(body))
	if status != http.StatusOK {
		h.t.Fatalf("decide: %d %s", status, answer)
	}
	var ex struct{ Input map[string]any }
	if err := json.Unmarshal(answer, &ex); err != nil {
		h.t.Fatalf("%v in %s", err, answer)
	}
	return ex.Input
}

// jsonAt reads a nested field of a JSON document.
func jsonAt(doc map[string]any, keys ...string) any {
	var v any = doc
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func exampleCases(t *testing.T) []exampleCase {
	long := strings.Repeat("word ", 9000)
	if n := tokens.Count(long); n <= 8000 {
		t.Fatalf("the long prompt has %d tokens; long_prompts starts above 8000", n)
	}
	withModel := func(cfg *config.Config, m config.Model) {
		m.Upstream, m.UpstreamModel = "mock", m.Name
		cfg.Models = append(cfg.Models, m)
	}
	return []exampleCase{
		{
			example: "business_hours",
			tier:    open,
			configure: func(t *testing.T, cfg *config.Config) {
				// 03:00 is outside 08:00 to 18:00 on any day; were the hour
				// to turn during the test, 04:00 would be too.
				cfg.Policy.TimeZone = etcZoneAt(t, 3)
			},
			clients: []accounts.NewClient{{ID: "agent-7", Department: "support"}},
			prepare: func(t *testing.T, h *harness, _ map[string]string) {
				in := h.decideInput("agent-7", chat("gpt-4o-mini", "hello"))
				if zone, hour := jsonAt(in, "time", "zone"), jsonAt(in, "time", "hour"); zone != h.cfg.Policy.TimeZone || (hour != 3.0 && hour != 4.0) {
					t.Fatalf("the policy sees %v at hour %v; want %s at 3", zone, hour, h.cfg.Policy.TimeZone)
				}
			},
			probes: []exampleProbe{{
				name: "support at night", client: "agent-7", params: chat("gpt-4o-mini", "hello"),
				with:    expectation{status: 403, code: "outside_business_hours"},
				without: expectation{status: 200},
			}},
		},
		{
			example: "department_models",
			tier:    open,
			clients: []accounts.NewClient{{ID: "lab-bot", Department: "research"}},
			probes: []exampleProbe{
				{
					name: "research asks for a model outside its list", client: "lab-bot", params: chat("gpt-4o", "hello"),
					with:    expectation{status: 403, code: "model_not_allowed"},
					without: expectation{status: 200},
				},
			},
		},
		{
			example: "model_token_cap",
			tier:    config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true, Budget: config.Budget{TPM: 100_000}},
			configure: func(t *testing.T, cfg *config.Config) {
				withModel(cfg, config.Model{Name: "o1", InputPerMillion: 15, OutputPerMillion: 60})
			},
			clients: []accounts.NewClient{{ID: "analyst", Department: "finance"}},
			probes: []exampleProbe{
				{
					name: "max_tokens above o1's cap", client: "analyst", params: chatWithMaxTokens("o1", "think hard", 10_000),
					with:    expectation{status: 400, code: "max_tokens_too_large"},
					without: expectation{status: 200},
				},
				{
					name: "o1 runs with tokens per minute lowered", client: "analyst", params: chatWithMaxTokens("o1", "think a little", 1000),
					with:    expectation{status: 200, header: [2]string{"x-ratelimit-limit-tokens", "20000"}},
					without: expectation{status: 200, header: [2]string{"x-ratelimit-limit-tokens", "100000"}},
				},
			},
		},
		{
			example: "secrets_and_emails",
			tier:    open, // no redaction: personal data blocks
			configure: func(t *testing.T, cfg *config.Config) {
				cfg.Tiers["lenient"] = config.Tier{Models: []string{"*"}, PIIDetection: true, Redact: []string{"AWS_ACCESS_KEY"}}
			},
			clients: []accounts.NewClient{
				{ID: "crm-sync", Department: "sales"},
				{ID: "deployer", Department: "finance", Tier: "lenient"},
			},
			probes: []exampleProbe{
				{
					name: "sales sends an e-mail address", client: "crm-sync", params: chat("gpt-4o-mini", "Forward this to ann.lee@example.com please"),
					with:    expectation{status: 200, replyHas: "Forward this to [EMAIL_1] please"},
					without: expectation{status: 400, code: "pii_detected"},
				},
				{
					name: "a tier that redacts keys sends one", client: "deployer", params: chat("gpt-4o-mini", "Deploy with AKIAZ3Q7R2XK5JHV4M6P today"),
					with:    expectation{status: 400, code: "pii_detected"},
					without: expectation{status: 200, replyHas: "Deploy with [AWS_ACCESS_KEY_1] today"},
				},
			},
		},
		{
			example: "long_prompts",
			tier:    open,
			configure: func(t *testing.T, cfg *config.Config) {
				// A tier that does not scan, and would redact e-mail
				// addresses if it did.
				cfg.Tiers["lenient"] = config.Tier{Models: []string{"*"}, Redact: []string{"EMAIL"}}
			},
			clients: []accounts.NewClient{
				{ID: "summarizer", Department: "finance"},
				{ID: "archivist", Department: "finance", Tier: "lenient", Labels: map[string]string{"long_prompts": "allowed"}},
			},
			probes: []exampleProbe{
				{
					name: "a long prompt without the label", client: "summarizer", params: chat("gpt-4o-mini", long),
					with:    expectation{status: 400, code: "prompt_too_long"},
					without: expectation{status: 200},
				},
				{
					name: "a long prompt with an address, on a tier that does not scan", client: "archivist",
					params:  chat("gpt-4o-mini", long+"and mail ann.lee@example.com"),
					with:    expectation{status: 400, code: "pii_detected"},
					without: expectation{status: 200, replyHas: "ann.lee@example.com"},
				},
			},
		},
		{
			example: "budget_guard",
			tier:    open,
			configure: func(t *testing.T, cfg *config.Config) {
				cfg.Departments = map[string]config.Budget{"labs": {MonthlySpendUSD: 1}}
				// A dear gpt-4o-mini, so that a few requests spend 80% of
				// the budget: 2,000 micro-dollars (2,000,000 nano-dollars) a token.
				for i := range cfg.Models {
					if cfg.Models[i].Name == "gpt-4o-mini" {
						cfg.Models[i].InputPerMillion, cfg.Models[i].OutputPerMillion = 2000, 2000
					}
				}
				withModel(cfg, config.Model{Name: "o1", InputPerMillion: 15, OutputPerMillion: 60})
			},
			clients: []accounts.NewClient{{ID: "lab-bot", Department: "labs"}},
			prepare: func(t *testing.T, h *harness, keys map[string]string) {
				c := h.client(keys["lab-bot"])
				spend := chatWithMaxTokens("gpt-4o-mini", "summarize the week", 16)
				var spent float64
				requests := 0
				for spent < 0.8 {
					if requests++; requests > 100 {
						t.Fatalf("spent $%v after 100 requests", spent)
					}
					if o := mustAsk(t, c, spend); o.status != http.StatusOK {
						t.Fatalf("spending request %d: %s", requests, o)
					}
					spent, _ = jsonAt(h.decideInput("lab-bot", spend), "usage", "department", "spend_month_usd").(float64)
				}
				if spent >= 0.95 {
					t.Fatalf("spent $%v of $1: no room left for the probe", spent)
				}
				t.Logf("labs spent $%v of its $1 in %d requests", spent, requests)
			},
			probes: []exampleProbe{{
				name: "o1 near the end of the budget", client: "lab-bot", params: chatWithMaxTokens("o1", "hello", 16),
				with:    expectation{status: 429, code: "budget_nearly_exhausted"},
				without: expectation{status: 200},
			}},
		},
	}
}

// Each example policy, copied next to the default one in a policy folder,
// changes what a real request gets through the gateway; the same request
// under the default policy alone gets the other outcome.
func TestExamplesChangeRealRequests(t *testing.T) {
	cases := exampleCases(t)
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !slices.ContainsFunc(cases, func(c exampleCase) bool { return c.example == e.Name() }) {
			t.Errorf("example %s is not tried through the gateway", e.Name())
		}
	}

	for _, tc := range cases {
		t.Run(tc.example, func(t *testing.T) {
			dir := defaultPolicyFolder(t)
			files := copyExample(t, tc.example, dir)
			cfg := policyConfig(t, tc.tier, dir, false)
			if tc.configure != nil {
				tc.configure(t, cfg)
			}
			h := start(t, cfg)
			if st := h.policyStatus().Enforced; !slices.Equal(st.Files, append([]string{"authz.rego", "authz_test.rego"}, files...)) {
				t.Fatalf("files in force %v, want the default policy and %v", st.Files, files)
			}
			keys := map[string]string{}
			for _, nc := range tc.clients {
				keys[nc.ID] = h.addClient(nc)
			}
			if tc.prepare != nil {
				tc.prepare(t, h, keys)
			}
			for _, p := range tc.probes {
				p.with.check(t, p.name+", with "+tc.example, mustAsk(t, h.client(keys[p.client]), p.params))
			}

			for _, f := range files {
				if err := os.Remove(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			if status, body := h.admin("POST", "/admin/policy/reload", ""); status != http.StatusOK {
				t.Fatalf("reload without the example: %d %s", status, body)
			}
			if st := h.policyStatus().Enforced; !slices.Equal(st.Files, []string{"authz.rego", "authz_test.rego"}) {
				t.Fatalf("files in force %v, want the default policy alone", st.Files)
			}
			for _, p := range tc.probes {
				p.without.check(t, p.name+", default policy", mustAsk(t, h.client(keys[p.client]), p.params))
			}
		})
	}
}

// copyExample copies the .rego files of an example folder into dir and
// returns their names, sorted.
func copyExample(t *testing.T, example, dir string) []string {
	t.Helper()
	from := filepath.Join(examplesDir, example)
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".rego" {
			continue
		}
		src, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		putFile(t, dir, e.Name(), string(src))
		names = append(names, e.Name())
	}
	if !slices.Contains(names, example+".rego") {
		t.Fatalf("%s holds no %s.rego", from, example)
	}
	slices.Sort(names)
	return names
}
