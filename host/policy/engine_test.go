package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/policies"
)

// tiers is the tier data the gateway would load from its configuration.
func tiers() map[string]any {
	return map[string]any{
		"standard": map[string]any{
			"rpm":            60,
			"daily_tokens":   1000000,
			"models":         []any{"gpt-4o-mini", "mock-*"},
			"pii_detection":  true,
			"content_filter": true,
			"redact":         []any{},
		},
		"premium": map[string]any{
			"rpm":            600,
			"daily_tokens":   0,
			"models":         []any{"*"},
			"pii_detection":  true,
			"content_filter": false,
			"redact":         []any{"EMAIL", "PHONE"},
		},
	}
}

// departments is the department data the gateway would load from its store.
func departments() map[string]any {
	return map[string]any{"finance": map[string]any{"tpm": 50000, "monthly_spend_usd": 500.25}}
}

// v2Policy is the tier policy written for contract v2 (testdata/v2), so that
// these tests hold the engine to the contract whatever the shipped policy
// says.
var v2Policy = os.DirFS("testdata/v2")

func loadDefault(t testing.TB, opts ...policy.Option) *policy.Engine {
	t.Helper()
	e, err := policy.Load(context.Background(), v2Policy, map[string]any{"sluice": map[string]any{"tiers": tiers(), "departments": departments()}}, opts...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

func chat(tier, model string, findings ...policy.Finding) policy.Input {
	return policy.Input{
		Client: policy.Client{ID: "billing-bot", Department: "finance", Tier: tier, Labels: map[string]string{"env": "prod"}},
		Request: policy.Request{
			Method: "POST", Path: "/v1/chat/completions", Model: model,
			MaxTokens: 256, PromptTokens: 42, MessageCount: 2,
		},
		Findings: findings,
		Time:     time.Unix(1796000000, 0),
	}
}

func pii(typ string) policy.Finding {
	return policy.Finding{Plugin: "pii", Type: typ, Count: 2, Score: 0.9, Messages: []int{0, 1}}
}

func content(category string) policy.Finding {
	return policy.Finding{Plugin: "content_filter", Type: category, Count: 1, Score: 0.8, Messages: []int{1}}
}

var (
	standardLimits = policy.Limits{RPM: 60, DailyTokens: 1000000}
	financeLimits  = policy.Limits{TPM: 50000, MonthlySpendMicros: 500_250_000}
	bothPlugins    = []string{"content_filter", "pii"}
)

func TestDecideDefaultPolicy(t *testing.T) {
	e := loadDefault(t)
	tests := []struct {
		name string
		in   policy.Input
		want policy.Decision
	}{
		{
			name: "allowed first pass",
			in:   chat("standard", "gpt-4o-mini"),
			want: policy.Decision{Allowed: true, HTTPStatus: 200, Limits: standardLimits, DepartmentLimits: financeLimits, Plugins: bothPlugins},
		},
		{
			name: "glob pattern",
			in:   chat("standard", "mock-echo"),
			want: policy.Decision{Allowed: true, HTTPStatus: 200, Limits: standardLimits, DepartmentLimits: financeLimits, Plugins: bothPlugins},
		},
		{
			name: "star matches dotted and slashed names",
			in:   chat("premium", "meta-llama/Llama-3.1-8B"),
			want: policy.Decision{Allowed: true, HTTPStatus: 200, Limits: policy.Limits{RPM: 600}, DepartmentLimits: financeLimits, Plugins: []string{"pii"}},
		},
		{
			name: "no model, no model check",
			in:   chat("standard", ""),
			want: policy.Decision{Allowed: true, HTTPStatus: 200, Limits: standardLimits, DepartmentLimits: financeLimits, Plugins: bothPlugins},
		},
		{
			name: "unknown tier",
			in:   chat("gold", "gpt-4o-mini"),
			want: policy.Decision{
				HTTPStatus: 403, Type: "permission_error", Code: "tier_unknown",
				Message: `client tier "gold" is not configured`,
			},
		},
		{
			name: "model outside tier",
			in:   chat("standard", "gpt-4o"),
			want: policy.Decision{
				HTTPStatus: 403, Type: "permission_error", Code: "model_not_allowed",
				Message: `model "gpt-4o" is not allowed for this client`, Limits: standardLimits, DepartmentLimits: financeLimits,
			},
		},
		{
			name: "content filter finding",
			in:   chat("standard", "gpt-4o-mini", content("VIOLENCE"), content("HATE")),
			want: policy.Decision{
				HTTPStatus: 400, Type: "invalid_request_error", Code: "content_policy_violation",
				Message: "request blocked by content policy (HATE, VIOLENCE)", Limits: standardLimits, DepartmentLimits: financeLimits,
			},
		},
		{
			name: "pii not redacted blocks, types sorted",
			in:   chat("standard", "gpt-4o-mini", pii("US_SSN"), pii("EMAIL")),
			want: policy.Decision{
				HTTPStatus: 400, Type: "invalid_request_error", Code: "pii_detected",
				Message: "request blocked: personal data detected (EMAIL, US_SSN)", Limits: standardLimits, DepartmentLimits: financeLimits,
			},
		},
		{
			name: "pii in redact list is redacted",
			in:   chat("premium", "gpt-4o", pii("PHONE"), pii("EMAIL")),
			want: policy.Decision{
				Allowed: true, HTTPStatus: 200, Limits: policy.Limits{RPM: 600}, DepartmentLimits: financeLimits,
				Redact: []string{"EMAIL", "PHONE"}, Plugins: []string{"pii"},
			},
		},
		{
			name: "pii partly redactable blocks on the rest",
			in:   chat("premium", "gpt-4o", pii("EMAIL"), pii("IBAN")),
			want: policy.Decision{
				HTTPStatus: 400, Type: "invalid_request_error", Code: "pii_detected",
				Message: "request blocked: personal data detected (IBAN)", Limits: policy.Limits{RPM: 600}, DepartmentLimits: financeLimits,
			},
		},
		{
			name: "model denial wins over findings",
			in:   chat("standard", "gpt-4o", pii("EMAIL"), content("HATE")),
			want: policy.Decision{
				HTTPStatus: 403, Type: "permission_error", Code: "model_not_allowed",
				Message: `model "gpt-4o" is not allowed for this client`, Limits: standardLimits, DepartmentLimits: financeLimits,
			},
		},
		{
			name: "content denial wins over pii",
			in:   chat("standard", "gpt-4o-mini", pii("EMAIL"), content("HATE")),
			want: policy.Decision{
				HTTPStatus: 400, Type: "invalid_request_error", Code: "content_policy_violation",
				Message: "request blocked by content policy (HATE)", Limits: standardLimits, DepartmentLimits: financeLimits,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestDecideConcurrent(t *testing.T) {
	// Eight goroutines that never block keep both cores of a small machine
	// busy, and Go's scheduler then preempts one mid-evaluation for tens of
	// milliseconds: the time limit is not what this test is about.
	e := loadDefault(t, policy.WithEvalTimeout(time.Minute))
	cases := []struct {
		in   policy.Input
		code string
	}{
		{chat("standard", "gpt-4o-mini"), ""},
		{chat("standard", "gpt-4o"), "model_not_allowed"},
		{chat("standard", "gpt-4o-mini", pii("EMAIL")), "pii_detected"},
		{chat("gold", "gpt-4o-mini"), "tier_unknown"},
	}
	const goroutines, rounds = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				c := cases[(g+i)%len(cases)]
				d, err := e.Decide(context.Background(), c.in)
				if err != nil {
					errs <- err
					return
				}
				if d.Code != c.code || d.Allowed != (c.code == "") {
					errs <- fmt.Errorf("%s/%s: got code %q allowed %v, want %q", c.in.Client.Tier, c.in.Request.Model, d.Code, d.Allowed, c.code)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSetDataIsSeenWithoutReload(t *testing.T) {
	ctx := context.Background()
	e, err := policy.Load(ctx, v2Policy, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	code := func() string {
		t.Helper()
		d, err := e.Decide(ctx, chat("standard", "gpt-4o"))
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		return d.Code
	}

	if got := code(); got != "tier_unknown" {
		t.Fatalf("before any data: code %q, want tier_unknown", got)
	}
	if err := e.SetData(ctx, "/sluice/tiers", tiers()); err != nil {
		t.Fatalf("SetData: %v", err)
	}
	if got := code(); got != "model_not_allowed" {
		t.Fatalf("after loading tiers: code %q, want model_not_allowed", got)
	}

	// Widening the tier, as a config reload would, takes effect at once.
	widened := tiers()
	standard := maps.Clone(widened["standard"].(map[string]any))
	standard["models"] = []any{"gpt-4o*"}
	widened["standard"] = standard
	if err := e.SetData(ctx, "/sluice/tiers", widened); err != nil {
		t.Fatalf("SetData: %v", err)
	}
	if got := code(); got != "" {
		t.Fatalf("after widening the tier: code %q, want allowed", got)
	}
}

func TestSetDataRejectsBadPath(t *testing.T) {
	e := loadDefault(t)
	for _, p := range []string{"", "/", "sluice/tiers"} {
		if err := e.SetData(context.Background(), p, map[string]any{}); err == nil {
			t.Errorf("SetData(%q) succeeded, want error", p)
		}
	}
}

func TestLoadReportsFileAndLine(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  []string
	}{
		{
			name: "syntax error",
			files: fstest.MapFS{
				"authz.rego": {Data: []byte("package sluice.authz\n\ndecision := {\n\t\"allowed\" true,\n}\n")},
			},
			want: []string{"authz.rego:4", "rego_parse_error"},
		},
		{
			name: "unsafe variable",
			files: fstest.MapFS{
				"authz.rego":   {Data: []byte("package sluice.authz\n\ndecision := x if input.a\n")},
				"lib/ok.rego":  {Data: []byte("package sluice.lib\n\nok := true\n")},
				"lib/bad.rego": {Data: []byte("package sluice.lib\n\nbad if {\n\ty := 1\n}\n")},
			},
			want: []string{"authz.rego:3", "lib/bad.rego:4", "rego_compile_error"},
		},
		{
			name: "v0 syntax",
			files: fstest.MapFS{
				"authz.rego": {Data: []byte("package sluice.authz\n\ndecision = {\"allowed\": true} { true }\n")},
			},
			want: []string{"authz.rego:3"},
		},
		{
			name: "no decision rule",
			files: fstest.MapFS{
				"authz.rego": {Data: []byte("package sluice.authz\n\nallow := true\n")},
			},
			want: []string{"no rule defines data.sluice.authz.decision"},
		},
		{
			name:  "no policy files",
			files: fstest.MapFS{"README.md": {Data: []byte("# none")}},
			want:  []string{"no .rego files"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Load(context.Background(), tt.files, nil)
			if err == nil {
				t.Fatal("Load succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadSkipsTestFiles(t *testing.T) {
	files := fstest.MapFS{
		"authz.rego":      {Data: []byte(fixedDecision)},
		"authz_test.rego": {Data: []byte("package sluice.authz_test\n\ntest_broken if {\n")},
	}
	if _, err := policy.Load(context.Background(), files, nil); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

const fixedDecision = `package sluice.authz

decision := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "",
	"headers": {"x-policy": "fixed"}, "limits": {"rpm": 1, "tpm": 2, "daily_tokens": 3, "monthly_tokens": 4, "monthly_spend_usd": 5.0000019},
	"department_limits": {"rpm": 6, "tpm": 7, "daily_tokens": 8, "monthly_tokens": 9, "monthly_spend_usd": 0.1},
	"redact": ["EMAIL"], "plugins": ["pii"], "response_plugins": ["pii"], "restore": true,
}
`

func TestDecideReadsEveryField(t *testing.T) {
	e, err := policy.Load(context.Background(), fstest.MapFS{"authz.rego": {Data: []byte(fixedDecision)}}, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got, err := e.Decide(context.Background(), policy.Input{})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	want := policy.Decision{
		Allowed: true, HTTPStatus: 200,
		Headers:          map[string]string{"x-policy": "fixed"},
		Limits:           policy.Limits{RPM: 1, TPM: 2, DailyTokens: 3, MonthlyTokens: 4, MonthlySpendMicros: 5_000_001},
		DepartmentLimits: policy.Limits{RPM: 6, TPM: 7, DailyTokens: 8, MonthlyTokens: 9, MonthlySpendMicros: 100_000},
		Redact:           []string{"EMAIL"}, Plugins: []string{"pii"}, ResponsePlugins: []string{"pii"}, Restore: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decide =\n %+v\nwant\n %+v", got, want)
	}
}

// TestDecideReadsFallbacks: a policy that leaves fallbacks out, or writes
// null, keeps the model's configured fallbacks (nil); [] takes them away
// (empty, not nil); a list replaces them, in its order. A decision written
// to the decision log and read back says the same.
func TestDecideReadsFallbacks(t *testing.T) {
	const allowed = `"allowed": true, "http_status": 200, "code": "", "type": "", "message": "",
	"headers": {}, "limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": []`
	for _, tt := range []struct {
		name, extra string
		want        []string
	}{
		{"left out", ``, nil},
		{"null", `, "fallbacks": null`, nil},
		{"empty", `, "fallbacks": []`, []string{}},
		{"listed", `, "fallbacks": ["cheap", "cheaper"]`, []string{"cheap", "cheaper"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files := fstest.MapFS{"authz.rego": {Data: []byte("package sluice.authz\n\ndecision := {" + allowed + tt.extra + "}\n")}}
			e, err := policy.Load(context.Background(), files, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			d, err := e.Decide(context.Background(), policy.Input{})
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if (d.Fallbacks == nil) != (tt.want == nil) || !slices.Equal(d.Fallbacks, tt.want) {
				t.Errorf("fallbacks %#v, want %#v", d.Fallbacks, tt.want)
			}
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			var back policy.Decision
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if (back.Fallbacks == nil) != (tt.want == nil) || !slices.Equal(back.Fallbacks, tt.want) {
				t.Errorf("read back from %s: fallbacks %#v, want %#v", b, back.Fallbacks, tt.want)
			}
		})
	}
}

// TestDecideFailsClosed checks that every policy result the gateway cannot
// act on safely is an error, not a zero-valued Decision.
func TestDecideFailsClosed(t *testing.T) {
	const valid = `"allowed": false, "http_status": 403, "code": "c", "type": "t", "message": "m",
	"headers": {}, "limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": []`
	tests := []struct {
		name   string
		policy string
		want   string
	}{
		{"undefined", "decision := {" + valid + "} if input.never", "undefined"},
		{"not an object", `decision := "allow"`, "want object"},
		{"missing field", `decision := {"allowed": true}`, `"http_status" is missing`},
		{"allowed not boolean", `decision := object.union({` + valid + `}, {"allowed": "yes"})`, "want boolean"},
		{"denied with 200", `decision := object.union({` + valid + `}, {"http_status": 200})`, "want 4xx or 5xx"},
		{"fractional status", `decision := object.union({` + valid + `}, {"http_status": 403.5})`, "non-negative integer"},
		{"string limit", `decision := object.union({` + valid + `}, {"limits": {"rpm": "60", "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0}})`, "limits: field \"rpm\""},
		{"negative limit", `decision := object.union({` + valid + `}, {"limits": {"rpm": 0, "tpm": 0, "daily_tokens": -1, "monthly_tokens": 0, "monthly_spend_usd": 0}})`, "non-negative"},
		{"limit missing", `decision := object.union(object.remove({` + valid + `}, {"limits"}), {"limits": {"rpm": 0, "daily_tokens": 0}})`, `limits: field "tpm" is missing`},
		{"negative spend", `decision := object.union({` + valid + `}, {"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": -0.5}})`, "department_limits: field \"monthly_spend_usd\" is -0.5, want a non-negative amount"},
		{"string spend", `decision := object.union({` + valid + `}, {"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": "5"}})`, "monthly_spend_usd\" is string"},
		{"huge spend", `decision := object.union({` + valid + `}, {"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 1e300}})`, "below"},
		{"department limits missing", `decision := object.remove({` + valid + `}, {"department_limits"})`, `"department_limits" is missing`},
		{"restore not boolean", `decision := object.union({` + valid + `}, {"restore": "yes"})`, `"restore" is string, want boolean`},
		{"response plugins not strings", `decision := object.union({` + valid + `}, {"response_plugins": "pii"})`, `"response_plugins" is string, want array`},
		{"plugins not strings", `decision := object.union({` + valid + `}, {"plugins": [1]})`, "plugins\"[0]"},
		{"header not string", `decision := object.union({` + valid + `}, {"headers": {"x": 1}})`, "want string: string"},
		{"cache scope unknown", `decision := object.union({` + valid + `}, {"cache": {"ttl": "10m", "scope": "everyone"}})`, `cache.scope is "everyone"`},
		{"cache ttl not a duration", `decision := object.union({` + valid + `}, {"cache": {"ttl": "ten minutes", "scope": "client"}})`, `cache.ttl is "ten minutes"`},
		{"cache not an object", `decision := object.union({` + valid + `}, {"cache": true})`, `"cache" is boolean, want object`},
		{"fallbacks not a list", `decision := object.union({` + valid + `}, {"fallbacks": "gpt-4o"})`, `"fallbacks" is string, want array`},
		{"fallbacks not strings", `decision := object.union({` + valid + `}, {"fallbacks": [4]})`, `"fallbacks"[0] is number`},
		{"conflicting values", "decision := {\"a\": 1} if true\n\ndecision := {\"b\": 2} if true", "evaluate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := fstest.MapFS{"authz.rego": {Data: []byte("package sluice.authz\n\n" + tt.policy + "\n")}}
			e, err := policy.Load(context.Background(), files, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			d, err := e.Decide(context.Background(), policy.Input{})
			if err == nil {
				t.Fatalf("Decide = %+v, want error", d)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// BenchmarkDecide measures one admission decision: "first" is the pass
// before plugins run for a model the tier names, "first-glob" the same for a
// model only a pattern matches, "findings" the second pass with redactable
// findings, all with the contract v2 tier policy of testdata/v2; "shipped-"
// the same passes with the policy that ships in policies/ (skipped when it
// does not decide them as allowed). "constant" evaluates a policy whose
// decision is a literal, which is the floor OPA's evaluator sets for any
// policy. "set" and "set-shadow" decide through a Set, without and with a
// shadow set (the same policy again), which is what the gateway calls.
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	data := map[string]any{"sluice": map[string]any{"tiers": tiers(), "departments": departments()}}
	v2 := loadDefault(b)
	constant, err := policy.Load(ctx, fstest.MapFS{"authz.rego": {Data: []byte(fixedDecision)}}, nil)
	if err != nil {
		b.Fatalf("Load: %v", err)
	}
	shipped, shippedErr := policy.Load(ctx, policies.FS, data)
	// The sets measure evaluations, but for set-cached: the decision cache
	// answers a repeated input.
	set, err := policy.NewSet(ctx, policy.SetConfig{Policies: policy.Source{FS: v2Policy}, Data: data, DecisionCache: -1})
	if err != nil {
		b.Fatal(err)
	}
	shadowed, err := policy.NewSet(ctx, policy.SetConfig{Policies: policy.Source{FS: v2Policy}, Shadow: policy.Source{FS: v2Policy}, Data: data, DecisionCache: -1})
	if err != nil {
		b.Fatal(err)
	}
	cached, err := policy.NewSet(ctx, policy.SetConfig{Policies: policy.Source{FS: v2Policy}, Data: data})
	if err != nil {
		b.Fatal(err)
	}
	type decider interface {
		Decide(context.Context, policy.Input) (policy.Decision, error)
	}
	first := chat("standard", "gpt-4o-mini")
	for _, bc := range []struct {
		name string
		e    *policy.Engine
		s    *policy.Set
		in   policy.Input
	}{
		{"first", v2, nil, first},
		{"first-glob", v2, nil, chat("premium", "meta-llama/Llama-3.1-8B")},
		{"findings", v2, nil, chat("premium", "gpt-4o", pii("EMAIL"), pii("PHONE"))},
		{"shipped-first", shipped, nil, first},
		{"shipped-findings", shipped, nil, chat("premium", "gpt-4o", pii("EMAIL"), pii("PHONE"))},
		{"constant", constant, nil, first},
		{"set", nil, set, first},
		{"set-shadow", nil, shadowed, first},
		{"set-cached", nil, cached, first},
	} {
		b.Run(bc.name, func(b *testing.B) {
			decide := func() (policy.Decision, error) {
				if bc.s != nil {
					r, err := bc.s.Decide(ctx, bc.in)
					return r.Decision, err
				}
				return bc.e.Decide(ctx, bc.in)
			}
			if bc.s == nil && bc.e == nil {
				b.Skipf("the shipped policy does not load: %v", shippedErr)
			}
			if d, err := decide(); err != nil || !d.Allowed {
				b.Skipf("not an allowed decision: %+v, %v", d, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decide(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// tierConfig stands for the gateway's own configuration type: SetData takes
// any value that encodes to JSON.
type tierConfig struct {
	RPM    int64    `json:"rpm"`
	Models []string `json:"models"`
}

func TestSetDataAcceptsGoStructs(t *testing.T) {
	ctx := context.Background()
	e, err := policy.Load(ctx, v2Policy, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	err = e.SetData(ctx, "/sluice/tiers", map[string]tierConfig{"standard": {RPM: 5, Models: []string{"gpt-4o"}}})
	if err != nil {
		t.Fatalf("SetData: %v", err)
	}
	d, err := e.Decide(ctx, chat("standard", "gpt-4o"))
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if !d.Allowed || d.Limits.RPM != 5 || d.Plugins != nil {
		t.Errorf("Decide = %+v, want allowed with rpm 5 and no plugins", d)
	}
}

func ExampleEngine_Decide() {
	ctx := context.Background()
	data := map[string]any{"sluice": map[string]any{"tiers": map[string]any{
		"standard": map[string]any{"rpm": 60, "models": []any{"gpt-4o-mini", "mock-*"}},
	}}}
	e, err := policy.Load(ctx, v2Policy, data)
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := e.Decide(ctx, policy.Input{
		Client:  policy.Client{ID: "billing-bot", Tier: "standard"},
		Request: policy.Request{Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.HTTPStatus, d.Type, d.Code)
	fmt.Println(d.Message)
	// Output:
	// 403 permission_error model_not_allowed
	// model "gpt-4o" is not allowed for this client
}

// countingPolicy reports in a header what the engine stored at
// data.sluice.derived, so that tests can see when it is recomputed.
const countingPolicy = `package sluice.authz

derived := {"tiers": count(data.sluice.tiers)} if data.sluice.tiers

derived := "conflict" if data.sluice.conflict

default stored := "none"

stored := data.sluice.derived.tiers

decision := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "",
	"headers": {"x-tiers": sprintf("%v", [stored])},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
}
`

func TestDerivedDataFollowsEveryWrite(t *testing.T) {
	ctx := context.Background()
	e, err := policy.Load(ctx, fstest.MapFS{"authz.rego": {Data: []byte(countingPolicy)}},
		map[string]any{"sluice": map[string]any{"tiers": map[string]any{"a": 1, "b": 2}}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	derived := func() string {
		t.Helper()
		d, err := e.Decide(ctx, policy.Input{})
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		return d.Headers["x-tiers"]
	}

	steps := []struct {
		name  string
		path  string
		value any
		want  string
	}{
		{"initial data", "", nil, "2"},
		{"tiers rewritten", "/sluice/tiers", map[string]any{"a": 1}, "1"},
		{"unrelated data", "/other", map[string]any{"x": 1}, "1"},
		{"tiers removed, derived undefined", "/sluice", map[string]any{}, "none"},
		{"tiers back", "/sluice/tiers", map[string]any{"a": 1, "b": 2, "c": 3}, "3"},
	}
	for _, s := range steps {
		if s.path != "" {
			if err := e.SetData(ctx, s.path, s.value); err != nil {
				t.Fatalf("%s: SetData: %v", s.name, err)
			}
		}
		if got := derived(); got != s.want {
			t.Errorf("%s: derived tiers %q, want %q", s.name, got, s.want)
		}
	}

	// A derived rule that fails to evaluate fails the write, which leaves
	// the data and the derived data as they were.
	if err := e.SetData(ctx, "/sluice/conflict", true); err == nil {
		t.Error("SetData with a conflicting derived rule succeeded, want error")
	}
	if got := derived(); got != "3" {
		t.Errorf("after the failed write: derived tiers %q, want 3", got)
	}
}

func TestSetDataRefusesDerivedPath(t *testing.T) {
	e := loadDefault(t)
	for _, p := range []string{"/sluice/derived", "/sluice/derived/tiers"} {
		err := e.SetData(context.Background(), p, map[string]any{})
		if err == nil || !strings.Contains(err.Error(), "computed by the policy") {
			t.Errorf("SetData(%q) = %v, want a refusal", p, err)
		}
	}
}

// TestDecideFollowsNarrowedTier checks that a decision answered from the
// derived data never outlives the data it was derived from.
func TestDecideFollowsNarrowedTier(t *testing.T) {
	ctx := context.Background()
	e := loadDefault(t)
	narrowed := tiers()
	standard := maps.Clone(narrowed["standard"].(map[string]any))
	standard["models"] = []any{"mock-*"}
	standard["rpm"] = 5
	standard["content_filter"] = false
	narrowed["standard"] = standard
	if err := e.SetData(ctx, "/sluice/tiers", narrowed); err != nil {
		t.Fatalf("SetData: %v", err)
	}
	tests := []struct {
		model string
		want  policy.Decision
	}{
		{"gpt-4o-mini", policy.Decision{
			HTTPStatus: 403, Type: "permission_error", Code: "model_not_allowed",
			Message: `model "gpt-4o-mini" is not allowed for this client`,
			Limits:  policy.Limits{RPM: 5, DailyTokens: 1000000}, DepartmentLimits: financeLimits,
		}},
		{"mock-echo", policy.Decision{
			Allowed: true, HTTPStatus: 200,
			Limits: policy.Limits{RPM: 5, DailyTokens: 1000000}, DepartmentLimits: financeLimits, Plugins: []string{"pii"},
		}},
	}
	for _, tt := range tests {
		got, err := e.Decide(ctx, chat("standard", tt.model))
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Decide =\n %+v\nwant\n %+v", tt.model, got, tt.want)
		}
	}
}

func TestDecideRefusesCancelledContext(t *testing.T) {
	e := loadDefault(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := e.Decide(ctx, chat("standard", "gpt-4o-mini")); err == nil {
		t.Errorf("Decide with a cancelled context = %+v, want error", d)
	}
}

// echoPolicy answers with parts of the input in headers.
const echoPolicy = `package sluice.authz

decision := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "",
	"headers": {
		"x-client": concat("/", [input.client.id, input.client.department, input.client.tier]),
		"x-labels": json.marshal(input.client.labels),
		"x-time": sprintf("%d", [input.time.unix]),
	},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
}
`

// TestDecideSeesChangedClient checks that the input the policy sees always
// follows the client as it is now, however often it was seen before.
func TestDecideSeesChangedClient(t *testing.T) {
	ctx := context.Background()
	e, err := policy.Load(ctx, fstest.MapFS{"authz.rego": {Data: []byte(echoPolicy)}}, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	labels := map[string]string{"env": "prod"}
	steps := []struct {
		name   string
		client policy.Client
		at     int64
		want   map[string]string
	}{
		{"first request", policy.Client{ID: "bot", Department: "finance", Tier: "standard", Labels: labels}, 100,
			map[string]string{"x-client": "bot/finance/standard", "x-labels": `{"env":"prod"}`, "x-time": "100"}},
		{"same client again", policy.Client{ID: "bot", Department: "finance", Tier: "standard", Labels: labels}, 100,
			map[string]string{"x-client": "bot/finance/standard", "x-labels": `{"env":"prod"}`, "x-time": "100"}},
		{"tier changed", policy.Client{ID: "bot", Department: "finance", Tier: "premium", Labels: labels}, 101,
			map[string]string{"x-client": "bot/finance/premium", "x-labels": `{"env":"prod"}`, "x-time": "101"}},
		{"department changed", policy.Client{ID: "bot", Department: "legal", Tier: "premium", Labels: labels}, 101,
			map[string]string{"x-client": "bot/legal/premium", "x-labels": `{"env":"prod"}`, "x-time": "101"}},
		{"labels changed", policy.Client{ID: "bot", Department: "legal", Tier: "premium", Labels: map[string]string{"env": "dev"}}, 102,
			map[string]string{"x-client": "bot/legal/premium", "x-labels": `{"env":"dev"}`, "x-time": "102"}},
		{"labels removed", policy.Client{ID: "bot", Department: "legal", Tier: "premium"}, 102,
			map[string]string{"x-client": "bot/legal/premium", "x-labels": `{}`, "x-time": "102"}},
		{"another client", policy.Client{ID: "app", Tier: "standard"}, 103,
			map[string]string{"x-client": "app//standard", "x-labels": `{}`, "x-time": "103"}},
	}
	for _, s := range steps {
		d, err := e.Decide(ctx, policy.Input{Client: s.client, Time: time.Unix(s.at, 0)})
		if err != nil {
			t.Fatalf("%s: Decide: %v", s.name, err)
		}
		if !reflect.DeepEqual(d.Headers, s.want) {
			t.Errorf("%s: policy saw %v, want %v", s.name, d.Headers, s.want)
		}
	}

	// The caller may change its labels map after Decide returns.
	bot := policy.Client{ID: "bot", Department: "finance", Tier: "standard", Labels: labels}
	for _, want := range []string{"prod", "staging"} {
		labels["env"] = want
		d, err := e.Decide(ctx, policy.Input{Client: bot})
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		if got := d.Headers["x-labels"]; got != `{"env":"`+want+`"}` {
			t.Errorf("labels set to %s: policy saw %s", want, got)
		}
	}
}

// The shipped policy's second pass, through the engine the gateway uses,
// gives the same denials and redactions as its Rego tests say: a rule value
// must never be mistaken for another's (a cache once handed _limits the
// value of a boolean rule).
func TestShippedPolicySecondPass(t *testing.T) {
	tiers := map[string]any{
		"test": map[string]any{"models": []any{"*"}, "rpm": 60, "pii_detection": true, "content_filter": true, "redact": []any{"EMAIL"}},
	}
	e, err := policy.Load(context.Background(), policies.FS, map[string]any{"sluice": map[string]any{"tiers": tiers, "departments": map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	in := policy.Input{
		Client:  policy.Client{ID: "app", Department: "research", Tier: "test"},
		Request: policy.Request{Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini", PromptTokens: 20, MessageCount: 2},
	}
	for _, tc := range []struct {
		types   []string
		allowed bool
		code    string
		redact  []string
	}{
		{[]string{"EMAIL"}, true, "", []string{"EMAIL"}},
		{[]string{"EMAIL", "US_SSN"}, false, "pii_detected", nil},
	} {
		in.Findings = nil
		for _, typ := range tc.types {
			in.Findings = append(in.Findings, policy.Finding{Plugin: "pii", Type: typ, Count: 1, Score: 0.9, Messages: []int{1}})
		}
		for range 3 { // the same answer every time, whatever a pool holds
			d, err := e.Decide(context.Background(), in)
			if err != nil {
				t.Fatalf("%v: %v", tc.types, err)
			}
			if d.Allowed != tc.allowed || d.Code != tc.code || !reflect.DeepEqual(d.Redact, tc.redact) || d.Limits.RPM != 60 {
				t.Fatalf("%v: decision %+v", tc.types, d)
			}
		}
	}
}

func TestDecisionJSONHasNoNulls(t *testing.T) {
	b, err := json.Marshal(policy.Decision{Allowed: true, HTTPStatus: 200})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "null") {
		t.Fatalf("decision JSON %s has null where the policy has [] or {}", b)
	}
	for _, want := range []string{`"headers":{}`, `"redact":[]`, `"plugins":[]`, `"response_plugins":[]`, `"limits":{`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("decision JSON %s lacks %s", b, want)
		}
	}
}
