package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/policies"
)

// The tests of this file change the policy of a running Sluice the way an
// operator does, on disk, and watch what requests get through the real
// gateway: OPA, the plugins and the OpenAI client included.

// retireRule denies gpt-4o-mini to the "ops" department. It is scoped to a
// department the default policy's tests never use, so that authz_test.rego
// keeps passing beside it, as a reload requires.
const retireRule = `package sluice.authz

deny contains {
	"http_status": 403,
	"code": "model_retired",
	"type": "permission_error",
	"message": "gpt-4o-mini is retired for ops; use gpt-4o",
} if {
	input.client.department == "ops"
	input.request.model == "gpt-4o-mini"
}
`

// retireTest is retireRule's own test; retireTestFailing expects a code
// no rule gives, so it fails with retireRule and without it alike (its
// test_ rule is on line 5).
const (
	retireTest = `package sluice.retire_test

import data.sluice.authz

test_ops_may_not_use_gpt_4o_mini if {
	d := authz.decision with input as {
		"client": {"id": "bot", "department": "ops", "tier": "t", "labels": {}},
		"request": {"method": "POST", "path": "/v1/chat/completions", "model": "gpt-4o-mini"},
		"findings": [],
	}
		with data.sluice.tiers as {"t": {"models": ["*"]}}
	[d.allowed, d.code] == [false, "model_retired"]
}
`
	retireTestFailing = `package sluice.retire_test

import data.sluice.authz

test_ops_get_model_gone if {
	d := authz.decision with input as {
		"client": {"id": "bot", "department": "ops", "tier": "t", "labels": {}},
		"request": {"method": "POST", "path": "/v1/chat/completions", "model": "gpt-4o-mini"},
		"findings": [],
	}
		with data.sluice.tiers as {"t": {"models": ["*"]}}
	d.code == "model_gone"
}
`
	// retireRuleBroken has a syntax error on line 5.
	retireRuleBroken = `package sluice.authz

deny contains "retired" if {
	input.client.department == "ops"
	input.request.model == == "gpt-4o-mini"
}
`
)

// defaultPolicyFolder returns a new folder holding the default policy and
// its tests, as an operator starts a policy folder of their own.
func defaultPolicyFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"authz.rego", "authz_test.rego"} {
		src, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		putFile(t, dir, name, string(src))
	}
	return dir
}

// putFile writes a file the way editors and deployment tools do: to a
// temporary name, then renamed into place, so that a watcher never reads
// half of it.
func putFile(t *testing.T, dir, name, src string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// policyConfig is testConfig with the policy read from dir.
func policyConfig(t *testing.T, tier config.Tier, dir string, watch bool) *config.Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir(), tier)
	cfg.Policy.Dir = dir
	cfg.Reload.Watch = watch
	return cfg
}

// addClient creates a client through the admin API and returns a key of it.
func (h *harness) addClient(nc accounts.NewClient) string {
	h.t.Helper()
	b, _ := json.Marshal(nc)
	if status, body := h.admin("POST", "/admin/clients", string(b)); status != http.StatusCreated {
		h.t.Fatalf("create client %s: %d %s", nc.ID, status, body)
	}
	status, body := h.admin("POST", "/admin/keys", `{"client_id":"`+nc.ID+`"}`)
	if status != http.StatusCreated {
		h.t.Fatalf("create key: %d %s", status, body)
	}
	var k struct{ Key string }
	if err := json.Unmarshal(body, &k); err != nil || k.Key == "" {
		h.t.Fatalf("key answer %s", body)
	}
	return k.Key
}

// policyStatus is GET /admin/policy.
func (h *harness) policyStatus() policy.Status {
	h.t.Helper()
	status, body := h.admin("GET", "/admin/policy", "")
	if status != http.StatusOK {
		h.t.Fatalf("GET /admin/policy: %d %s", status, body)
	}
	var st policy.Status
	if err := json.Unmarshal(body, &st); err != nil {
		h.t.Fatalf("GET /admin/policy: %v in %s", err, body)
	}
	return st
}

// outcome is what a caller saw of one request.
type outcome struct {
	status     int
	code       string
	decisionID string
	header     http.Header
	content    string
}

func (o outcome) String() string {
	if o.code == "" {
		return fmt.Sprint(o.status)
	}
	return fmt.Sprintf("%d %s", o.status, o.code)
}

// ask sends a chat completion with the OpenAI client and reports what came
// back; the error is for a request that got no HTTP answer at all.
func ask(c openai.Client, params openai.ChatCompletionNewParams) (outcome, error) {
	var resp *http.Response
	out, err := c.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&resp))
	if err != nil {
		var e *openai.Error
		if !errors.As(err, &e) {
			return outcome{}, err
		}
		return outcome{status: e.StatusCode, code: e.Code, decisionID: e.Response.Header.Get("x-sluice-decision-id"), header: e.Response.Header}, nil
	}
	o := outcome{status: resp.StatusCode, decisionID: resp.Header.Get("x-sluice-decision-id"), header: resp.Header}
	if len(out.Choices) > 0 {
		o.content = out.Choices[0].Message.Content
	}
	return o, nil
}

// mustAsk is ask for the test goroutine.
func mustAsk(t *testing.T, c openai.Client, params openai.ChatCompletionNewParams) outcome {
	t.Helper()
	o, err := ask(c, params)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if o.decisionID == "" {
		t.Errorf("%s answer without x-sluice-decision-id", o)
	}
	return o
}

// logRecords returns the JSON log lines whose msg is msg. Read it only
// while no request is in flight: the buffer is written under a lock the
// reader does not take.
func (h *harness) logRecords(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(h.logText(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// A rule added to the policy folder takes effect on the next request, while
// four callers keep sending: each of them sees 200 until the swap and the
// new 403 after it, nothing else, and every answer names its decision.
func TestPolicyHotReloadUnderLoad(t *testing.T) {
	dir := defaultPolicyFolder(t)
	h := start(t, policyConfig(t, open, dir, true))
	c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
	before := h.policyStatus().Enforced
	if before.Revision == "" || before.Tests == 0 || !slices.Contains(before.Files, "authz.rego") {
		t.Fatalf("status before the change: %+v", before)
	}

	const callers = 4
	var (
		stop      = make(chan struct{})
		stopOnce  sync.Once
		wg        sync.WaitGroup
		answered  atomic.Int64
		switched  atomic.Int64
		histories [callers][]string
	)
	// The callers stop before the server does, however the test ends.
	stopLoad := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	defer stopLoad()
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			denied := false
			for {
				select {
				case <-stop:
					return
				default:
				}
				o, err := ask(c, chat("gpt-4o-mini", "status report please"))
				if err != nil {
					t.Errorf("caller %d: no answer: %v", i, err)
					return
				}
				answered.Add(1)
				histories[i] = append(histories[i], o.String())
				if o.decisionID == "" {
					t.Errorf("caller %d: %s without x-sluice-decision-id", i, o)
				}
				switch {
				case o.status == http.StatusOK && !denied:
				case o.status == http.StatusForbidden && o.code == "model_retired":
					if !denied {
						denied = true
						switched.Add(1)
					}
				default:
					t.Errorf("caller %d: got %s after %v; want 200s, then 403 model_retired only", i, o, histories[i][:len(histories[i])-1])
					return
				}
			}
		}()
	}
	waitFor(t, func() bool { return answered.Load() >= 2*callers }) // the load is on

	// The rule first, then its test: every state in between is a set whose
	// tests pass.
	written := time.Now()
	putFile(t, dir, "retire.rego", retireRule)
	putFile(t, dir, "retire_test.rego", retireTest)
	waitFor(t, func() bool { return switched.Load() == callers || t.Failed() })
	took := time.Since(written)
	stopLoad()
	if t.Failed() {
		return
	}
	total := 0
	for _, hist := range histories {
		total += len(hist)
	}
	t.Logf("%d requests during the reload, none failed; every caller saw the new rule within %v of the write", total, took.Round(time.Millisecond))

	var after policy.SetStatus
	waitFor(t, func() bool {
		after = h.policyStatus().Enforced
		return slices.Contains(after.Files, "retire_test.rego")
	})
	if after.Revision == before.Revision || after.LastError != nil || after.ReloadsOK == 0 ||
		!slices.Contains(after.Files, "retire.rego") || after.Tests != before.Tests+1 {
		t.Fatalf("status after the change: %+v; before: revision %s, %d tests", after, before.Revision, before.Tests)
	}
	if got := h.srv.PolicyStatus().Enforced.Revision; got != after.Revision {
		t.Fatalf("GET /admin/policy says revision %s, the server %s", after.Revision, got)
	}
}

// A set that does not parse, or whose own tests fail, is refused: the last
// good set stays in force, the problem is shown with its file and line, an
// explicit reload answers 422 with it, and the fixed file goes in.
func TestPolicyBrokenSetKeepsTheLastGoodOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		// broken are the files written, in order; fixed replaces the file
		// at fault.
		broken     [][2]string
		fixed      [2]string
		file       string
		line       int
		messageHas string
	}{
		{
			name:       "syntax error",
			broken:     [][2]string{{"retire.rego", retireRuleBroken}},
			fixed:      [2]string{"retire.rego", retireRule},
			file:       "retire.rego",
			line:       5,
			messageHas: "unexpected",
		},
		{
			name: "failing test",
			// The test first: the rule alone would be a good set.
			broken:     [][2]string{{"retire_test.rego", retireTestFailing}, {"retire.rego", retireRule}},
			fixed:      [2]string{"retire_test.rego", retireTest},
			file:       "retire_test.rego",
			line:       5,
			messageHas: "test_ops_get_model_gone",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := defaultPolicyFolder(t)
			h := start(t, policyConfig(t, open, dir, true))
			c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
			if o := mustAsk(t, c, chat("gpt-4o-mini", "hello")); o.status != http.StatusOK {
				t.Fatalf("before: %s", o)
			}
			good := h.policyStatus().Enforced

			for _, f := range tc.broken {
				putFile(t, dir, f[0], f[1])
			}
			// The watcher tries the set and refuses it.
			var st policy.SetStatus
			waitFor(t, func() bool {
				st = h.policyStatus().Enforced
				return st.LastError != nil && hasProblem(st.LastError.Problems, tc.file, tc.line, "")
			})
			if st.Revision != good.Revision || st.ReloadsFailed == 0 || !slices.Equal(st.Files, good.Files) {
				t.Fatalf("a refused set changed what is in force: %+v, was %+v", st, good)
			}
			if !hasProblem(st.LastError.Problems, tc.file, tc.line, tc.messageHas) {
				t.Fatalf("last_error %+v does not name %s:%d (%q)", st.LastError, tc.file, tc.line, tc.messageHas)
			}
			if st.LastError.Revision == "" || st.LastError.Revision == good.Revision {
				t.Errorf("last_error revision %q should be that of the refused files", st.LastError.Revision)
			}
			if o := mustAsk(t, c, chat("gpt-4o-mini", "hello")); o.status != http.StatusOK {
				t.Fatalf("with the broken set on disk: %s; the last good set must decide", o)
			}

			// An explicit reload says the same, as 422.
			status, body := h.admin("POST", "/admin/policy/reload", "")
			var refused struct {
				Error struct {
					Message, Type, Code string
				}
				Status struct {
					Policy policy.Status
				}
			}
			if err := json.Unmarshal(body, &refused); err != nil {
				t.Fatalf("reload answer %s: %v", body, err)
			}
			where := fmt.Sprintf("%s:%d", tc.file, tc.line)
			if status != http.StatusUnprocessableEntity || refused.Error.Code != "reload_refused" || refused.Error.Type != "invalid_request_error" ||
				!strings.Contains(refused.Error.Message, where) || !strings.Contains(refused.Error.Message, tc.messageHas) {
				t.Fatalf("POST /admin/policy/reload: %d %s; want 422 reload_refused naming %s", status, body, where)
			}
			if le := refused.Status.Policy.Enforced.LastError; le == nil || !hasProblem(le.Problems, tc.file, tc.line, tc.messageHas) {
				t.Fatalf("the 422 answer's status has last_error %+v", le)
			}
			if refused.Status.Policy.Enforced.Revision != good.Revision {
				t.Fatalf("the 422 answer shows revision %s in force, want %s", refused.Status.Policy.Enforced.Revision, good.Revision)
			}
			if o := mustAsk(t, c, chat("gpt-4o-mini", "hello")); o.status != http.StatusOK {
				t.Fatalf("after the refused reload: %s", o)
			}

			// Fixed, the next reload takes it.
			putFile(t, dir, tc.fixed[0], tc.fixed[1])
			if status, body := h.admin("POST", "/admin/policy/reload", ""); status != http.StatusOK {
				t.Fatalf("reload of the fixed set: %d %s", status, body)
			}
			st = h.policyStatus().Enforced
			if st.LastError != nil || st.Revision == good.Revision || !slices.Contains(st.Files, tc.file) {
				t.Fatalf("after the fix: %+v", st)
			}
			if o := mustAsk(t, c, chat("gpt-4o-mini", "hello")); o.status != http.StatusForbidden || o.code != "model_retired" {
				t.Fatalf("after the fix: %s, want 403 model_retired", o)
			}
		})
	}
}

// hasProblem reports whether problems hold one at file:line whose message
// contains has.
func hasProblem(problems []policy.Problem, file string, line int, has string) bool {
	return slices.ContainsFunc(problems, func(p policy.Problem) bool {
		return p.File == file && p.Line == line && strings.Contains(p.Message, has)
	})
}

// Without the watch, a change on disk waits for an explicit reload, the
// admin API's counterpart of SIGHUP.
func TestPolicyReloadOnlyWhenAskedWithoutWatch(t *testing.T) {
	dir := defaultPolicyFolder(t)
	h := start(t, policyConfig(t, open, dir, false))
	c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
	before := h.policyStatus().Enforced

	putFile(t, dir, "retire.rego", retireRule)
	putFile(t, dir, "retire_test.rego", retireTest)
	time.Sleep(time.Second) // five times the watcher's debounce, were it on
	if o := mustAsk(t, c, chat("gpt-4o-mini", "hello")); o.status != http.StatusOK {
		t.Fatalf("a change was picked up without reload: %s", o)
	}
	if st := h.policyStatus().Enforced; st.Revision != before.Revision || st.ReloadsOK != 0 {
		t.Fatalf("status changed without reload: %+v", st)
	}

	status, body := h.admin("POST", "/admin/reload", "")
	if status != http.StatusOK {
		t.Fatalf("POST /admin/reload: %d %s", status, body)
	}
	var reloaded struct {
		Policy  policy.Status
		Plugins []json.RawMessage
	}
	if err := json.Unmarshal(body, &reloaded); err != nil {
		t.Fatal(err)
	}
	if reloaded.Policy.Enforced.Revision == before.Revision || len(reloaded.Plugins) != 2 {
		t.Fatalf("POST /admin/reload answered %s", body)
	}
	if o := mustAsk(t, c, chat("gpt-4o-mini", "hello")); o.status != http.StatusForbidden || o.code != "model_retired" {
		t.Fatalf("after POST /admin/reload: %s, want 403 model_retired", o)
	}
}

// A shadow set that would deny is evaluated on every request and enforced
// on none: each disagreement is counted, logged with both outcomes, and
// written to the decision log, which never holds the prompt.
func TestShadowPolicyCountsDisagreements(t *testing.T) {
	shadow := defaultPolicyFolder(t)
	putFile(t, shadow, "retire.rego", retireRule)
	putFile(t, shadow, "retire_test.rego", retireTest)
	cfg := policyConfig(t, open, defaultPolicyFolder(t), false)
	cfg.Policy.ShadowDir = shadow
	cfg.Policy.DecisionLog = filepath.Join(t.TempDir(), "decisions.jsonl")
	cfg.Policy.DecisionLogSample = 1
	h := start(t, cfg)
	c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
	st := h.policyStatus()
	if st.Shadow == nil || st.Shadow.Revision == st.Enforced.Revision || !slices.Contains(st.Shadow.Files, "retire.rego") {
		t.Fatalf("status %+v: want a shadow set with retire.rego", st)
	}

	const n = 7
	const prompt = "the quarterly numbers of project marmalade-zebra"
	ids := map[string]bool{}
	for range n {
		o := mustAsk(t, c, chat("gpt-4o-mini", prompt))
		if o.status != http.StatusOK {
			t.Fatalf("enforced set allows, got %s", o)
		}
		ids[o.decisionID] = true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct decision ids for %d requests", len(ids), n)
	}
	// The shadow set decides off the request path, a moment later.
	for deadline := time.Now().Add(10 * time.Second); h.srv.PolicyStatus().Disagreements < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := h.srv.PolicyStatus(); got.Disagreements != n || got.ShadowErrors != 0 || got.ShadowDropped != 0 {
		t.Fatalf("disagreements %d, shadow errors %d, dropped %d; want %d, 0 and 0", got.Disagreements, got.ShadowErrors, got.ShadowDropped, n)
	}
	if got := h.policyStatus().Disagreements; got != n {
		t.Fatalf("GET /admin/policy: disagreements %d, want %d", got, n)
	}
	h.stop() // flushes the decision log; no request is in flight for the log reads below

	warned := h.logRecords("shadow policy disagrees")
	if len(warned) != n {
		t.Fatalf("%d disagreement log lines for %d disagreements", len(warned), n)
	}
	for _, w := range warned {
		enforced, _ := w["enforced"].(string)
		shadowed, _ := w["shadow"].(string)
		// The contract's field names, never Go's (MonthlySpendMicros).
		if !strings.Contains(enforced, `"monthly_spend_usd":`) || strings.Contains(enforced, "Micros") {
			t.Errorf("enforced outcome %q does not use the contract's field names", enforced)
		}
		if !ids[fmt.Sprint(w["decision_id"])] || !strings.HasPrefix(enforced, "allowed") || shadowed != "denied http_status=403 code=model_retired" ||
			w["enforced_revision"] != st.Enforced.Revision || w["shadow_revision"] != st.Shadow.Revision {
			t.Fatalf("disagreement log line %v", w)
		}
	}

	raw, err := os.ReadFile(cfg.Policy.DecisionLog)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("marmalade")) {
		t.Fatal("the decision log holds the prompt text")
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != n {
		t.Fatalf("%d decision log lines for %d decisions:\n%s", len(lines), n, raw)
	}
	for _, l := range lines {
		var e struct {
			DecisionID string `json:"decision_id"`
			RequestID  string `json:"request_id"`
			Revision   string
			Input      struct {
				Client  struct{ ID string }
				Request struct {
					Model        string
					PromptTokens int `json:"prompt_tokens"`
				}
			}
			Result *policy.Decision
			Shadow *struct {
				Revision  string
				Result    *policy.Decision
				Disagrees bool
			}
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%v in %s", err, l)
		}
		if !ids[e.DecisionID] || e.RequestID == "" || e.Revision != st.Enforced.Revision ||
			e.Input.Client.ID != "ops-bot" || e.Input.Request.Model != "gpt-4o-mini" || e.Input.Request.PromptTokens == 0 ||
			e.Result == nil || !e.Result.Allowed {
			t.Fatalf("decision log line %s", l)
		}
		if sh := e.Shadow; sh == nil || sh.Revision != st.Shadow.Revision || !sh.Disagrees || sh.Result == nil || sh.Result.Code != "model_retired" {
			t.Fatalf("decision log line without the shadow's denial: %s", l)
		}
		delete(ids, e.DecisionID)
	}
}

// failingRules make the decision fail, one department per way it can: on
// chat requests only, a denial whose http_status is a string (a mistyped
// required field of the decision), a helper rule with two values (a
// conflict error), a division by max_tokens, which the requests leave
// unset (a builtin error), a denial with status 200 (a bad decision value),
// a cap of 0 (which the policy itself answers with policy_error) and a
// loop over ten million numbers (a timeout); on every request, the
// mistyped denial again. The line of each rule is the one the errors must
// name.
const failingRules = `package sluice.authz

deny contains {"http_status": "teapot", "code": "mistyped"} if input.client.department == "chaos-all"

deny contains {"http_status": "teapot", "code": "mistyped"} if {
	input.client.department == "chaos-type"
	input.request.path == "/v1/chat/completions"
}

deny contains _chaos_message if {
	input.client.department == "chaos-conflict"
	input.request.path == "/v1/chat/completions"
}

_chaos_message := "one" if input.client.department == "chaos-conflict"

_chaos_message := "two" if input.client.department == "chaos-conflict"

deny contains "prompt too long for its reply" if {
	input.client.department == "chaos-div"
	input.request.path == "/v1/chat/completions"
	input.request.prompt_tokens / input.request.max_tokens > 10
}

deny contains {"http_status": 200, "code": "not_a_denial"} if {
	input.client.department == "chaos-200"
	input.request.path == "/v1/chat/completions"
}

cap contains {"limit": "tpm", "value": 0} if {
	input.client.department == "chaos-cap0"
	input.request.path == "/v1/chat/completions"
}

deny contains "slow" if {
	input.client.department == "chaos-slow"
	input.request.path == "/v1/chat/completions"
	count([x | some x in numbers.range(1, 10000000); x % 7 == 0]) > 0
}
`

// A decision that cannot be made refuses the request with policy_error,
// logged under the decision id the caller was given with the kind of
// failure and the rule to blame, and counted; the gateway goes on serving
// what the policy can decide.
func TestFailClosedOnPolicyError(t *testing.T) {
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "chaos.rego", failingRules)
	h := start(t, policyConfig(t, open, dir, false))
	healthy := h.client(h.addClient(accounts.NewClient{ID: "app", Department: "research"}))
	for _, tc := range []struct {
		department string
		errorHas   string
		kind       policy.ErrorKind
		at         string
	}{
		{"chaos-type", "http_status", policy.KindMalformed, "chaos.rego:5"},
		{"chaos-conflict", "conflict", policy.KindConflict, "chaos.rego:1"},
		{"chaos-div", "divide by zero", policy.KindBuiltin, "chaos.rego:22"},
		{"chaos-200", "http_status 200", policy.KindMalformed, "chaos.rego:25"},
		{"chaos-cap0", "cannot apply", policy.KindPolicyError, "chaos.rego:30"},
		{"chaos-slow", "time limit", policy.KindTimeout, ""},
	} {
		t.Run(tc.department, func(t *testing.T) {
			c := h.client(h.addClient(accounts.NewClient{ID: tc.department + "-bot", Department: tc.department}))
			errorsBefore := sum(h.scrape(), "sluice_policy_errors_total", nil)
			_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello"))
			e := apiError(t, err, http.StatusInternalServerError, "policy_error")
			id := e.Response.Header.Get("x-sluice-decision-id")
			if e.Type != "server_error" || e.Message == "" || id == "" {
				t.Fatalf("policy error %s %q, decision id %q", e.Type, e.Message, id)
			}
			raw := e.RawJSON()
			if !strings.Contains(raw, `"param"`) || strings.Contains(raw, "teapot") || strings.Contains(raw, "chaos.rego") {
				t.Errorf("error body %s: want OpenAI's shape, and nothing of the policy's internals", raw)
			}
			if got := sum(h.scrape(), "sluice_policy_errors_total", nil) - errorsBefore; got != 1 {
				t.Errorf("sluice_policy_errors_total went up by %v, want 1", got)
			}

			// The same client may still list models (the failing rules
			// concern chat only), and other clients are served.
			page, err := c.Models.List(context.Background())
			if err != nil || len(page.Data) == 0 {
				t.Fatalf("models of the client whose chat fails: %v, %v", page, err)
			}
			if o := mustAsk(t, healthy, chat("gpt-4o-mini", "hello")); o.status != http.StatusOK {
				t.Fatalf("another client after the policy error: %s", o)
			}

			logged := false
			for _, r := range h.logRecords("policy evaluation failed; request denied") {
				if r["decision_id"] != id {
					continue
				}
				logged = true
				if msg, _ := r["error"].(string); !strings.Contains(msg, tc.errorHas) {
					t.Errorf("logged error %q does not say %q", msg, tc.errorHas)
				}
				if r["kind"] != string(tc.kind) {
					t.Errorf("logged kind %v, want %s", r["kind"], tc.kind)
				}
				if at, _ := r["at"].(string); !strings.HasPrefix(at, tc.at) {
					t.Errorf("logged at %q, want %q", at, tc.at)
				}
			}
			if !logged {
				t.Fatalf("no log line of the policy error with decision id %s", id)
			}
		})
	}
}

// GET /v1/models asks the policy once per model; an error there is refused
// like any other, with the decision id in the answer and in the log line.
func TestFailClosedModelListNamesTheDecision(t *testing.T) {
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "chaos.rego", failingRules)
	h := start(t, policyConfig(t, open, dir, false))
	c := h.client(h.addClient(accounts.NewClient{ID: "chaos-bot", Department: "chaos-all"}))
	_, err := c.Models.List(context.Background())
	e := apiError(t, err, http.StatusInternalServerError, "policy_error")
	id := e.Response.Header.Get("x-sluice-decision-id")
	if id == "" {
		t.Fatal("the policy_error of GET /v1/models has no x-sluice-decision-id")
	}
	for _, msg := range []string{"policy evaluation failed", "policy evaluation failed; request denied"} {
		for _, r := range h.logRecords(msg) {
			if r["decision_id"] == id {
				return
			}
		}
	}
	t.Fatalf("no log line of the policy error with decision id %s", id)
}

// POST /admin/decide answers what a request would get and why, running the
// plugins but forwarding nothing, and never shows what they matched.
func TestDecideExplainsWithoutForwarding(t *testing.T) {
	h := newHarness(t, open) // client "app" of research, on the default policy
	ctx := context.Background()
	body := `{"client_id":"app","request":{"model":"gpt-4o-mini","messages":[` +
		`{"role":"system","content":"You are terse."},{"role":"user","content":"mail ann.lee@example.com the plan"}]}}`
	status, answer := h.admin("POST", "/admin/decide", body)
	if status != http.StatusOK {
		t.Fatalf("decide: %d %s", status, answer)
	}
	if bytes.Contains(answer, []byte("ann.lee")) || bytes.Contains(answer, []byte("example.com")) {
		t.Fatalf("the explanation holds the address: %s", answer)
	}
	var ex struct {
		Revision string
		Decision policy.Decision
		Input    struct {
			Client struct {
				ID, Department, Tier string
			}
			Request struct {
				Model        string
				MessageCount int `json:"message_count"`
			}
			Findings []policy.Finding
		}
		Rules     []policy.RuleHit
		FirstPass *policy.Decision `json:"first_pass"`
	}
	if err := json.Unmarshal(answer, &ex); err != nil {
		t.Fatalf("%v in %s", err, answer)
	}
	if ex.Revision != h.srv.PolicyStatus().Enforced.Revision {
		t.Errorf("revision %q, the set in force is %q", ex.Revision, h.srv.PolicyStatus().Enforced.Revision)
	}
	if d := ex.Decision; d.Allowed || d.HTTPStatus != 400 || d.Code != "pii_detected" || !strings.Contains(d.Message, "EMAIL") {
		t.Errorf("decision %+v, want 400 pii_detected naming EMAIL", d)
	}
	if in := ex.Input; in.Client.ID != "app" || in.Client.Department != "research" || in.Client.Tier != "test" ||
		in.Request.Model != "gpt-4o-mini" || in.Request.MessageCount != 2 {
		t.Errorf("input %+v", in)
	}
	if f := ex.Input.Findings; len(f) != 1 || f[0].Plugin != "pii" || f[0].Type != "EMAIL" || f[0].Count != 1 || !slices.Equal(f[0].Messages, []int{1}) {
		t.Errorf("findings %+v, want one EMAIL found by pii in message 1", f)
	}
	if fp := ex.FirstPass; fp == nil || !fp.Allowed || !slices.Equal(fp.Plugins, []string{"content_filter", "pii"}) {
		t.Errorf("first pass %+v, want allowed with both plugins", fp)
	}
	decided := false
	for _, r := range ex.Rules {
		if r.File == "" || r.Line <= 0 || r.Package == "" {
			t.Errorf("rule without its place: %+v", r)
		}
		decided = decided || r.Rule == "decision" && r.File == "authz.rego"
	}
	if !decided {
		t.Errorf("rules %+v do not name authz.rego's decision", ex.Rules)
	}

	// Nothing went upstream or into the ledger.
	if err := h.srv.Ledger().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	totals, err := h.srv.Store().UsageSince(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(totals) != 0 {
		t.Fatalf("a dry run was recorded: %+v", totals)
	}

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown client", `{"client_id":"nobody","request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}}`, 404, "not_found"},
		{"malformed JSON", `{"client_id":"app","request":`, 400, "invalid_json"},
		{"unknown field", `{"client":"app","request":{}}`, 400, "invalid_json"},
		{"no request", `{"client_id":"app"}`, 400, "invalid_value"},
		{"request without messages", `{"client_id":"app","request":{"model":"gpt-4o-mini"}}`, 400, "invalid_value"},
		{"unsupported path", `{"client_id":"app","path":"/v1/images","request":{"model":"x"}}`, 400, "invalid_value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, answer := h.admin("POST", "/admin/decide", tc.body)
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(answer, &e); err != nil || status != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("got %d %s, want %d %s", status, answer, tc.status, tc.code)
			}
		})
	}
}

// ticketRule requires an x-ticket-id header of the ops department, on every
// endpoint.
const ticketRule = `package sluice.authz

deny contains {"http_status": 403, "code": "ticket_required", "message": "send x-ticket-id"} if {
	input.client.department == "ops"
	not input.request.headers["x-ticket-id"]
}
`

// A header listed in policy.headers reaches the policy on chat and on the
// models list alike; without the setting it never does.
func TestPolicySeesConfiguredHeaders(t *testing.T) {
	for _, listed := range []bool{true, false} {
		dir := defaultPolicyFolder(t)
		putFile(t, dir, "ticket.rego", ticketRule)
		cfg := policyConfig(t, open, dir, false)
		if listed {
			cfg.Policy.Headers = []string{"user-agent", "x-ticket-id"}
		}
		h := start(t, cfg)
		c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
		ticket := option.WithHeader("X-Ticket-Id", "OPS-42")

		_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello"))
		apiError(t, err, http.StatusForbidden, "ticket_required")
		_, err = c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello"), ticket)
		if listed && err != nil {
			t.Errorf("chat with the listed header: %v", err)
		}
		if !listed {
			apiError(t, err, http.StatusForbidden, "ticket_required")
		}

		page, err := c.Models.List(context.Background(), ticket)
		if err != nil || (len(page.Data) > 0) != listed {
			t.Errorf("listed %v: models with the header: %d models, %v", listed, len(page.Data), err)
		}
		page, err = c.Models.List(context.Background())
		if err != nil || len(page.Data) != 0 {
			t.Errorf("listed %v: models without the header: %d models, %v", listed, len(page.Data), err)
		}
		h.stop()
	}
}

// capRule caps the replies of the research department at 100 tokens, and
// denies the ops department with a reason.
const capRule = `package sluice.authz

cap contains {"limit": "max_tokens", "value": 100} if input.client.department == "research"

deny contains {"code": "ticket_required", "message": "ops must send x-ticket-id", "reason": "ticket OPS-1 is closed"} if {
	input.client.department == "ops"
}
`

// A max_tokens cap lowers what the upstream is asked for, never raises it,
// and the reservation follows: with a TPM of 600, a request that sets no
// max_tokens reserves the 1024 default and is refused without the cap,
// and fits with it. A denial's reason reaches the caller.
func TestPolicyCapsMaxTokens(t *testing.T) {
	rec := startRecordingUpstream(t)
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "cap.rego", capRule)
	cfg := policyConfig(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{TPM: 600}}, dir, false)
	rec.serve(cfg)
	h := start(t, cfg)
	research := h.client(h.addClient(accounts.NewClient{ID: "capped", Department: "research"}))
	other := h.client(h.addClient(accounts.NewClient{ID: "uncapped", Department: "finance"}))

	if _, err := other.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello")); err == nil {
		t.Fatal("without the cap, a request reserving the 1024-token default got through a TPM of 600")
	} else {
		apiError(t, err, http.StatusTooManyRequests, "rate_limit_exceeded")
	}
	if _, err := research.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello")); err != nil {
		t.Fatalf("capped request without max_tokens: %v", err)
	}
	params := chat("gpt-4o-mini", "hello again")
	params.MaxTokens = openai.Int(50)
	if _, err := research.Chat.Completions.New(context.Background(), params); err != nil {
		t.Fatalf("capped request asking for less: %v", err)
	}
	seen := rec.seen()
	if !strings.Contains(seen, `"max_completion_tokens":100`) || !strings.Contains(seen, `"max_tokens":50`) || strings.Contains(seen, `_tokens":1024`) {
		t.Errorf("the upstream saw:\n%s\nwant max_completion_tokens 100 added to the first request and max_tokens 50 kept in the second", seen)
	}

	ops := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
	_, err := ops.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello"))
	e := apiError(t, err, http.StatusForbidden, "ticket_required")
	if e.Message != "ops must send x-ticket-id. Reason: ticket OPS-1 is closed" {
		t.Errorf("message %q, want the policy's message and reason", e.Message)
	}
}

// A refused reload of the shadow set is counted apart from the enforced
// set's, and the decision log's drops are exported, zero included.
func TestShadowReloadsAndDecisionLogDropsAreMetrics(t *testing.T) {
	dir, shadowDir := defaultPolicyFolder(t), defaultPolicyFolder(t)
	cfg := policyConfig(t, open, dir, false)
	cfg.Policy.ShadowDir = shadowDir
	h := start(t, cfg)
	putFile(t, shadowDir, "retire.rego", retireRuleBroken)
	if status, body := h.admin("POST", "/admin/policy/reload", ""); status == http.StatusOK {
		t.Fatalf("reload of a broken shadow set: %d %s", status, body)
	}
	fams := h.scrape()
	if got := sum(fams, "sluice_policy_shadow_reloads_total", map[string]string{"result": "failed"}); got != 1 {
		t.Errorf("shadow reloads failed: %v, want 1", got)
	}
	if got := sum(fams, "sluice_policy_reloads_total", map[string]string{"result": "failed"}); got != 0 {
		t.Errorf("enforced reloads failed: %v, want 0", got)
	}
	if got := sum(fams, "sluice_policy_decision_log_dropped_total", nil); got != 0 {
		t.Errorf("decision log drops: %v, want an exported 0", got)
	}

	// A good shadow reload is logged with the shadow set's revision, not
	// the enforced one's.
	putFile(t, shadowDir, "retire.rego", retireRule)
	putFile(t, shadowDir, "retire_test.rego", retireTest)
	if status, body := h.admin("POST", "/admin/policy/reload", ""); status != http.StatusOK {
		t.Fatalf("reload of a good shadow set: %d %s", status, body)
	}
	st := h.policyStatus()
	if st.Shadow == nil || st.Shadow.Revision == st.Enforced.Revision {
		t.Fatalf("status %+v: want a shadow revision of its own", st)
	}
	var logged []any
	for _, r := range h.logRecords("policy in force") {
		if r["set"] == "shadow" {
			logged = append(logged, r["revision"])
		}
	}
	if len(logged) == 0 || logged[len(logged)-1] != st.Shadow.Revision {
		t.Errorf("shadow reloads logged with revisions %v, want the last to be the shadow's %s (enforced %s)",
			logged, st.Shadow.Revision, st.Enforced.Revision)
	}
}

// Repeated requests are answered from the decision cache, and a cached
// allow never answers a request that differs in a part the policy reads:
// the request without the ticket header, sent between ones with it, is
// refused every time. The cache's hits and misses, and the shadow's drops,
// are metrics.
func TestDecisionCacheThroughTheGateway(t *testing.T) {
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "ticket.rego", ticketRule)
	cfg := policyConfig(t, open, dir, false)
	cfg.Policy.Headers = []string{"x-ticket-id"}
	cfg.Policy.ShadowDir = defaultPolicyFolder(t)
	h := start(t, cfg)
	c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
	ticket := option.WithHeader("X-Ticket-Id", "OPS-42")
	for i := range 30 {
		if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello"), ticket); err != nil {
			t.Fatalf("request %d with the ticket: %v", i, err)
		}
		_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello"))
		apiError(t, err, http.StatusForbidden, "ticket_required")
	}
	fams := h.scrape()
	hits := sum(fams, "sluice_policy_decision_cache_requests_total", map[string]string{"result": "hit"})
	misses := sum(fams, "sluice_policy_decision_cache_requests_total", map[string]string{"result": "miss"})
	// A decision made while data is written (the new client reaching
	// data.sluice.clients) is neither: it is evaluated and not kept.
	if misses < 2 || hits < 30 || hits+misses > 60 {
		t.Errorf("decision cache hits %v, misses %v over 60 requests; want both counted, most of them hits", hits, misses)
	}
	if got := sum(fams, "sluice_policy_shadow_dropped_total", nil); got != 0 {
		t.Errorf("shadow drops %v, want an exported 0", got)
	}
}

// POST /admin/decide takes the request's headers, a time and usage, so that
// a rule on any of them can be tried, and says how long the decision took.
func TestDecideTakesHeadersAndTime(t *testing.T) {
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "ticket.rego", ticketRule)
	putFile(t, dir, "hours.rego", `package sluice.authz

deny contains {"code": "outside_hours", "message": "ops work 08:00 to 18:00"} if {
	input.client.department == "ops"
	not input.time.hour in numbers.range(8, 17)
}
`)
	putFile(t, dir, "budget.rego", `package sluice.authz

deny contains {"code": "over_budget", "message": "spent"} if input.usage.client.spend_month_usd > 10
`)
	cfg := policyConfig(t, open, dir, false)
	cfg.Policy.Headers = []string{"x-ticket-id"}
	h := start(t, cfg)
	h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"})
	decide := func(extra string) (code string, durationUS int64, input map[string]any) {
		t.Helper()
		body := `{"client_id":"ops-bot","request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}` + extra + `}`
		status, answer := h.admin("POST", "/admin/decide", body)
		if status != http.StatusOK {
			t.Fatalf("decide %s: %d %s", extra, status, answer)
		}
		var ex struct {
			Decision   policy.Decision
			DurationUS int64 `json:"duration_us"`
			Input      map[string]any
		}
		if err := json.Unmarshal(answer, &ex); err != nil {
			t.Fatal(err)
		}
		return ex.Decision.Code, ex.DurationUS, ex.Input
	}
	if code, _, _ := decide(`,"time":"2026-12-07T10:00:00Z"`); code != "ticket_required" {
		t.Errorf("no header at 10:00: %q, want ticket_required", code)
	}
	code, took, input := decide(`,"time":"2026-12-07T10:00:00Z","headers":{"X-Ticket-Id":"OPS-7","Authorization":"Bearer sk-secret"}`)
	if code != "" || took <= 0 {
		t.Errorf("with the header at 10:00: code %q, %d µs; want allowed, and a time", code, took)
	}
	headers := input["request"].(map[string]any)["headers"].(map[string]any)
	if len(headers) != 1 || headers["x-ticket-id"] != "OPS-7" {
		t.Errorf("the policy saw headers %v, want only x-ticket-id", headers)
	}
	if code, _, _ := decide(`,"time":"2026-12-07T20:00:00Z","headers":{"x-ticket-id":"OPS-7"}`); code != "outside_hours" {
		t.Errorf("with the header at 20:00: %q, want outside_hours", code)
	}
	code, _, input = decide(`,"time":"2026-12-07T10:00:00Z","headers":{"x-ticket-id":"OPS-7"},"usage":{"client":{"spend_month_usd":12.5}}`)
	if code != "over_budget" {
		t.Errorf("with a usage of $12.50: %q, want over_budget (input %v)", code, input["usage"])
	}
}

// POST /admin/decide with a decision_id replays a logged decision: the
// logged line, and what the policy in force now decides for its input.
func TestDecideReplaysALoggedDecision(t *testing.T) {
	dir := defaultPolicyFolder(t)
	h := start(t, policyConfig(t, open, dir, false))
	c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
	// A denial is always logged; replay it, then again after a rule change.
	putFile(t, dir, "retire.rego", retireRule)
	if status, body := h.admin("POST", "/admin/policy/reload", ""); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	id := mustAsk(t, c, chat("gpt-4o-mini", "hello")).decisionID // now denied: model_retired
	replay := func(id string) (int, map[string]any) {
		t.Helper()
		var status int
		var body []byte
		for range 50 { // the log is written off the request path
			if status, body = h.admin("POST", "/admin/decide", `{"decision_id":"`+id+`"}`); status != http.StatusNotFound {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		var out map[string]any
		_ = json.Unmarshal(body, &out)
		return status, out
	}
	status, out := replay(id)
	if status != http.StatusOK {
		t.Fatalf("replay %s: %d %v", id, status, out)
	}
	logged := out["logged"].(map[string]any)
	replayed := out["replayed"].(map[string]any)
	if logged["decision_id"] != id || logged["result"].(map[string]any)["code"] != "model_retired" ||
		replayed["decision"].(map[string]any)["code"] != "model_retired" || out["same_outcome"] != true {
		t.Errorf("replay: %v", out)
	}

	putFile(t, dir, "retire.rego", "package sluice.authz\n")
	if status, body := h.admin("POST", "/admin/policy/reload", ""); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	if _, out := replay(id); out["same_outcome"] != false || out["replayed"].(map[string]any)["decision"].(map[string]any)["allowed"] != true {
		t.Errorf("replay after the rule went: %v, want allowed and a different outcome", out)
	}
	if status, _ := h.admin("POST", "/admin/decide", `{"decision_id":"dec_nothere"}`); status != http.StatusNotFound {
		t.Errorf("unknown decision id: %d, want 404", status)
	}
}

// GET /admin/policy/data is the data the gateway writes for its policy,
// clients included, for sluice policy eval --from-gateway.
func TestAdminPolicyData(t *testing.T) {
	h := newHarness(t, open)
	status, body := h.admin("GET", "/admin/policy/data", "")
	var data struct {
		Sluice struct {
			Tiers   map[string]any `json:"tiers"`
			Clients map[string]struct {
				Department string `json:"department"`
			} `json:"clients"`
		} `json:"sluice"`
	}
	if err := json.Unmarshal(body, &data); status != http.StatusOK || err != nil {
		t.Fatalf("GET /admin/policy/data: %d %v %s", status, err, body)
	}
	if data.Sluice.Tiers["test"] == nil || data.Sluice.Clients["app"].Department != "research" {
		t.Errorf("data %s, want the tiers and the client app of research", body)
	}
}

// A data file beside the rules is data the gateway's policy reads, and a
// reload that brings a rule calling a forbidden builtin (the network) is
// refused with the file and line, counted, and leaves the set in force;
// the policy stage's latency is seen in buckets from 5 µs.
func TestPolicyFolderDataAndForbiddenBuiltinsThroughTheGateway(t *testing.T) {
	dir := defaultPolicyFolder(t)
	if err := os.MkdirAll(filepath.Join(dir, "ticketing"), 0o755); err != nil {
		t.Fatal(err)
	}
	putFile(t, filepath.Join(dir, "ticketing"), "data.json", `{"departments": ["ops"], "reason": "ops changes need a ticket"}`)
	putFile(t, dir, "ticket.rego", `package sluice.authz

deny contains {"code": "ticket_required", "message": "send x-ticket-id", "reason": data.ticketing.reason} if {
	input.client.department in data.ticketing.departments
	not input.request.headers["x-ticket-id"]
}
`)
	cfg := policyConfig(t, open, dir, false)
	cfg.Policy.Headers = []string{"x-ticket-id"}
	h := start(t, cfg)
	ops := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
	_, err := ops.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello"))
	if e := apiError(t, err, http.StatusForbidden, "ticket_required"); !strings.Contains(e.Message, "ops changes need a ticket") {
		t.Fatalf("message %q, want the reason from the folder's data file", e.Message)
	}

	before := h.policyStatus().Enforced.Revision
	putFile(t, dir, "lookup.rego", `package sluice.authz

deny contains "closed" if {
	http.send({"method": "GET", "url": "http://127.0.0.1:9/tickets"}).status_code != 200
}
`)
	if status, body := h.admin("POST", "/admin/policy/reload", ""); status == http.StatusOK {
		t.Fatalf("reload of a rule calling http.send: %d %s", status, body)
	}
	st := h.policyStatus().Enforced
	if st.Revision != before || st.LastError == nil || len(st.LastError.Problems) == 0 ||
		st.LastError.Problems[0].File != "lookup.rego" || st.LastError.Problems[0].Line != 4 ||
		!strings.Contains(st.LastError.Problems[0].Message, "http.send") {
		t.Fatalf("status %+v; want the set in force kept and lookup.rego:4 blamed for http.send", st)
	}
	_, err = ops.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello"), option.WithHeader("X-Ticket-Id", "OPS-1"))
	if err != nil {
		t.Fatalf("with the ticket, after the refused reload: %v", err)
	}
	fams := h.scrape()
	if got := sum(fams, "sluice_policy_reloads_total", map[string]string{"result": "failed"}); got != 1 {
		t.Errorf("failed reloads %v, want 1", got)
	}
	stages := fams["sluice_stage_duration_seconds"]
	found := false
	for _, m := range stages.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "stage" && l.GetValue() == "policy" && len(m.GetHistogram().GetBucket()) > 0 {
				found = m.GetHistogram().GetBucket()[0].GetUpperBound() == 0.000005
			}
		}
	}
	if !found {
		t.Errorf("no policy stage histogram whose first bucket is 5 µs")
	}
}

// Every pass of a request (the first, and the one with the plugins'
// findings) is decided by one revision, while reloads keep swapping the set
// in force: the decision log's lines of each request name one revision,
// though the requests as a whole saw several.
func TestEveryPassOfARequestIsDecidedByOneRevision(t *testing.T) {
	dir := defaultPolicyFolder(t)
	// Without tests to run, reloads follow each other within milliseconds.
	if err := os.Remove(filepath.Join(dir, "authz_test.rego")); err != nil {
		t.Fatal(err)
	}
	cfg := policyConfig(t, open, dir, false)
	cfg.Policy.DecisionLog = filepath.Join(t.TempDir(), "decisions.jsonl")
	cfg.Policy.DecisionLogSample = 1
	h := start(t, cfg)
	c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reloads atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			putFile(t, dir, "version.rego", fmt.Sprintf("package sluice.authz\n\n_version := %d\n", i))
			if status, body := h.admin("POST", "/admin/policy/reload", ""); status != http.StatusOK {
				t.Errorf("reload: %d %s", status, body)
				return
			}
			reloads.Add(1)
		}
	})
	for i := 0; i < 300 && (i < 150 || reloads.Load() < 3); i++ {
		// An address in the prompt makes the plugins find it: a second pass.
		o := mustAsk(t, c, chat("gpt-4o-mini", "write to jane.doe@example.com about the release"))
		if o.status != http.StatusBadRequest || o.code != "pii_detected" {
			t.Fatalf("request %d: %s, want 400 pii_detected from the second pass", i, o)
		}
	}
	close(stop)
	wg.Wait()
	h.stop() // flushes the decision log

	raw, err := os.ReadFile(cfg.Policy.DecisionLog)
	if err != nil {
		t.Fatal(err)
	}
	byRequest := map[string]map[string]int{} // request id -> revision -> passes
	revisions := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e struct {
			RequestID string `json:"request_id"`
			Revision  string
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if byRequest[e.RequestID] == nil {
			byRequest[e.RequestID] = map[string]int{}
		}
		byRequest[e.RequestID][e.Revision]++
		revisions[e.Revision] = true
	}
	for id, revs := range byRequest {
		if len(revs) != 1 {
			t.Errorf("request %s was decided by several revisions: %v", id, revs)
		}
		for _, passes := range revs {
			if passes != 2 {
				t.Errorf("request %s: %d passes logged, want 2", id, passes)
			}
		}
	}
	if len(revisions) < 2 {
		t.Fatalf("the requests saw %d revision(s) over %d reloads; the test needs reloads during the load", len(revisions), reloads.Load())
	}
}

// An allow rule grants a model beyond the tier from data, to the clients
// the data names and no other: the exception is the policy's, not a
// switch on one's own deny rules.
func TestAllowRuleGrantsAModelFromDataThroughTheGateway(t *testing.T) {
	dir := defaultPolicyFolder(t)
	if err := os.MkdirAll(filepath.Join(dir, "grants"), 0o755); err != nil {
		t.Fatal(err)
	}
	putFile(t, filepath.Join(dir, "grants"), "data.json", `{"gpt-4o": ["research-bot"]}`)
	putFile(t, dir, "grants.rego", `package sluice.authz

allow contains model if {
	some model, clients in data.grants
	input.client.id in clients
}
`)
	h := start(t, policyConfig(t, config.Tier{Models: []string{"gpt-4o-mini"}}, dir, false))
	research := h.client(h.addClient(accounts.NewClient{ID: "research-bot", Department: "research"}))
	other := h.client(h.addClient(accounts.NewClient{ID: "other-bot", Department: "research"}))
	for range 3 { // the decision cache must not carry one client's grant to the other
		if o := mustAsk(t, research, chat("gpt-4o", "hello")); o.status != http.StatusOK {
			t.Fatalf("granted client: %s, want 200", o)
		}
		if o := mustAsk(t, other, chat("gpt-4o", "hello")); o.status != http.StatusForbidden || o.code != "model_not_allowed" {
			t.Fatalf("client without a grant: %s, want 403 model_not_allowed", o)
		}
	}
}
