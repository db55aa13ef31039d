package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/policies"
)

// chaosRules break the decision of the default policy in every way a policy
// author can, one department each; the line numbers are those the errors
// must name.
const chaosRules = `package sluice.authz

deny contains "prompt too long for its reply" if {
	input.client.department == "chaos-div"
	input.request.prompt_tokens / input.request.max_tokens > 10
}

deny contains _chaos_message if input.client.department == "chaos-conflict"

_chaos_message := "one" if input.client.department == "chaos-conflict"

_chaos_message := "two" if input.client.department == "chaos-conflict"

deny contains {"http_status": 200, "code": "not_a_denial"} if input.client.department == "chaos-200"

cap contains {"limit": "tpm", "value": 0} if input.client.department == "chaos-cap0"

deny contains "slow" if {
	input.client.department == "chaos-slow"
	count([x | some x in numbers.range(1, 10000000); x % 7 == 0]) > 0
}
`

// defaultWith is the default policy, its tests, and extra files.
func defaultWith(t *testing.T, extra map[string]string) fstest.MapFS {
	t.Helper()
	files := fstest.MapFS{}
	for _, name := range []string{"authz.rego", "authz_test.rego"} {
		src, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = &fstest.MapFile{Data: src}
	}
	for name, src := range extra {
		files[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return files
}

func openTier() map[string]any {
	return map[string]any{"sluice": map[string]any{"tiers": map[string]any{"standard": map[string]any{"models": []any{"*"}}}}}
}

// Every way a decision can fail denies: the error says what kind of
// failure it was and where, and no decision comes with it.
func TestDecideFailsClosedOnEveryKind(t *testing.T) {
	e, err := policy.Load(context.Background(), defaultWith(t, map[string]string{"chaos.rego": chaosRules}), openTier())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, tt := range []struct {
		department string
		kind       policy.ErrorKind
		at         string
	}{
		{"chaos-div", policy.KindBuiltin, "chaos.rego:5"},
		{"chaos-conflict", policy.KindConflict, "chaos.rego:12"},
		{"chaos-200", policy.KindMalformed, "chaos.rego:14"},
		{"chaos-cap0", policy.KindPolicyError, "chaos.rego:16"},
		{"chaos-slow", policy.KindTimeout, ""},
	} {
		t.Run(tt.department, func(t *testing.T) {
			in := policy.Input{
				Client:  policy.Client{ID: "bot", Department: tt.department, Tier: "standard"},
				Request: policy.Request{Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini", PromptTokens: 100},
			}
			start := time.Now()
			d, err := e.Decide(context.Background(), in)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("Decide = %+v, want an error", d)
			}
			if d.Allowed || d.HTTPStatus != 0 {
				t.Errorf("decision %+v with the error, want none", d)
			}
			if got := policy.ErrorKindOf(err); got != tt.kind {
				t.Errorf("kind %s, want %s (%v)", got, tt.kind, err)
			}
			if got := policy.ErrorAt(err); !strings.HasPrefix(got, tt.at) {
				t.Errorf("at %q, want %q (%v)", got, tt.at, err)
			}
			// Ten million numbers would take seconds and gigabytes.
			if tt.kind == policy.KindTimeout && took > time.Second {
				t.Errorf("a timed-out evaluation took %s, the limit is %s", took, policy.DefaultEvalTimeout)
			}
		})
	}
	// The same departments' requests on the models list and other clients
	// are decided as usual: only the rules above fail.
	d, err := e.Decide(context.Background(), policy.Input{
		Client:  policy.Client{ID: "bot", Department: "research", Tier: "standard"},
		Request: policy.Request{Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini"},
	})
	if err != nil || !d.Allowed {
		t.Fatalf("healthy request: %+v, %v", d, err)
	}
}

// An undefined decision is an error of its own kind.
func TestDecideUndefinedIsAnError(t *testing.T) {
	files := fstest.MapFS{"authz.rego": {Data: []byte("package sluice.authz\n\ndecision := {} if input.client.tier == \"never\"\n")}}
	e, err := policy.Load(context.Background(), files, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Decide(context.Background(), policy.Input{})
	if policy.ErrorKindOf(err) != policy.KindUndefined {
		t.Fatalf("error %v, want kind %s", err, policy.KindUndefined)
	}
}

// A shorter limit stops a shorter loop; a longer one lets it finish.
func TestEvalTimeoutIsConfigurable(t *testing.T) {
	const loop = `package sluice.authz

decision := {"allowed": false, "http_status": 403, "code": "c", "type": "t", "message": "m", "headers": {},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": []} if {
	count([x | some x in numbers.range(1, 20000); x % 7 == 0]) > 0
}
`
	files := fstest.MapFS{"authz.rego": {Data: []byte(loop)}}
	for _, tt := range []struct {
		limit   time.Duration
		timeout bool
	}{{50 * time.Microsecond, true}, {10 * time.Second, false}} {
		e, err := policy.Load(context.Background(), files, nil, policy.WithEvalTimeout(tt.limit))
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Decide(context.Background(), policy.Input{})
		if got := policy.ErrorKindOf(err) == policy.KindTimeout && err != nil; got != tt.timeout {
			t.Errorf("limit %s: error %v, want timeout %v", tt.limit, err, tt.timeout)
		}
	}
}

// forbiddenRules call one refused builtin per line, from line 4 on.
const forbiddenRules = `package sluice.authz

deny contains "x" if {
	http.send({"method": "GET", "url": "http://127.0.0.1:1"}).status_code == 200
	net.lookup_ip_addr("example.com")
	rand.intn("x", 10) == 1
	time.now_ns() > 0
	opa.runtime().env.HOME == ""
	uuid.rfc4122("x") == ""
}
`

// Load, reload, Check and Test refuse a folder that calls a forbidden
// builtin, naming the file, the line and the setting that would allow it;
// the setting allows exactly what it names.
func TestForbiddenBuiltinsAreRefused(t *testing.T) {
	ctx := context.Background()
	files := defaultWith(t, map[string]string{"net.rego": forbiddenRules})
	lines := map[string]int{"http.send": 4, "net.lookup_ip_addr": 5, "rand.intn": 6, "time.now_ns": 7, "opa.runtime": 8, "uuid.rfc4122": 9}

	problems, err := policy.Check(files)
	if err != nil {
		t.Fatal(err)
	}
	for name, line := range lines {
		found := slices.ContainsFunc(problems, func(p policy.Problem) bool {
			return p.File == "net.rego" && p.Line == line && strings.Contains(p.Message, name+" is not allowed") &&
				strings.Contains(p.Message, "policy.allow_builtins")
		})
		if !found {
			t.Errorf("Check: no problem at net.rego:%d for %s in %v", line, name, problems)
		}
	}

	if _, err := policy.Load(ctx, files, nil); err == nil || !strings.Contains(err.Error(), "net.rego:4") {
		t.Errorf("Load: %v, want net.rego:4 refused", err)
	}
	if _, err := policy.Test(ctx, files, nil); err == nil || !strings.Contains(err.Error(), "http.send is not allowed") {
		t.Errorf("Test: %v, want http.send refused", err)
	}
	_, err = policy.NewSet(ctx, policy.SetConfig{Policies: policy.Source{FS: files}})
	var re *policy.ReloadError
	if !errors.As(err, &re) || !slices.ContainsFunc(re.Problems, func(p policy.Problem) bool { return p.File == "net.rego" && p.Line == 4 }) {
		t.Errorf("NewSet: %v, want a problem at net.rego:4", err)
	}

	allowed := []string{"http.send", "net.*", "rand.intn", "time.now_ns", "opa.runtime", "uuid.rfc4122"}
	if problems, _ := policy.Check(files, policy.WithAllowedBuiltins(allowed)); len(problems) != 0 {
		t.Errorf("Check with all allowed: %v", problems)
	}
	problems, _ = policy.Check(files, policy.WithAllowedBuiltins([]string{"net.*"}))
	if slices.ContainsFunc(problems, func(p policy.Problem) bool { return p.Line == 5 }) ||
		!slices.ContainsFunc(problems, func(p policy.Problem) bool { return p.Line == 4 }) {
		t.Errorf("Check with net.* allowed: %v, want http.send refused and net.lookup_ip_addr allowed", problems)
	}
}

// Names in the allow list must be builtins that are refused; trace, print
// and io.jwt.decode_verify are never refused.
func TestAllowedBuiltinsAreChecked(t *testing.T) {
	for _, ok := range [][]string{nil, {"net.*"}, {"net.cidr_contains", "rand.intn"}} {
		if err := policy.CheckAllowedBuiltins(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range [][]string{{"http.sned"}, {"count"}, {"net"}} {
		if err := policy.CheckAllowedBuiltins(bad); err == nil || !strings.Contains(err.Error(), "policy.allow_builtins") {
			t.Errorf("%v: %v, want an error naming policy.allow_builtins", bad, err)
		}
	}
	caps := policy.Capabilities(nil)
	has := func(name string) bool {
		return slices.ContainsFunc(caps.Builtins, func(b *ast.Builtin) bool { return b.Name == name })
	}
	for _, name := range []string{"trace", "print", "io.jwt.decode_verify", "glob.match", "numbers.range"} {
		if !has(name) {
			t.Errorf("%s is refused", name)
		}
	}
	for _, name := range []string{"http.send", "net.cidr_contains", "rand.intn", "time.now_ns", "opa.runtime", "uuid.rfc4122"} {
		if has(name) {
			t.Errorf("%s is allowed by default", name)
		}
	}
	// The capabilities are OPA's own document, for opa check --capabilities.
	b, err := json.Marshal(caps)
	if err != nil || !strings.Contains(string(b), `"builtins"`) {
		t.Fatalf("capabilities JSON: %v %.80s", err, b)
	}
}

// A reload refuses a set one of whose tests runs past its budget, a
// thousand evaluation limits, naming the test.
func TestReloadRefusesSlowTests(t *testing.T) {
	slowTest := `package sluice.slow_test

test_counts_a_lot if {
	count([x | some x in numbers.range(1, 5000000); x % 7 == 0]) > 0
}
`
	files := defaultWith(t, map[string]string{"slow_test.rego": slowTest})
	_, err := policy.NewSet(context.Background(), policy.SetConfig{
		Policies: policy.Source{FS: files}, Data: openTier(), EvalTimeout: 20 * time.Microsecond})
	var re *policy.ReloadError
	if !errors.As(err, &re) || !slices.ContainsFunc(re.Problems, func(p policy.Problem) bool {
		return p.File == "slow_test.rego" && strings.Contains(p.Message, "test_counts_a_lot")
	}) {
		t.Fatalf("NewSet: %v, want the slow test refused", err)
	}
}
