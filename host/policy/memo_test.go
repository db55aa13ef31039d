package policy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/policies"
)

// echoRule is a policy whose decision puts what body computes from the
// input into its message, so that a decision answered for another input
// shows.
func echoRule(body string) fstest.MapFS {
	return fstest.MapFS{"authz.rego": {Data: []byte(`package sluice.authz

decision := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "",
	"headers": {"x-echo": echo},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
}

` + body + "\n")}}
}

// echoOf decides in and returns the decision's echo and whether it came
// from the cache.
func echoOf(t *testing.T, s *policy.Set, in policy.Input) (string, bool) {
	t.Helper()
	r, err := s.Decide(context.Background(), in)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return r.Decision.Headers["x-echo"], r.Cached
}

// settle decides in until its decision is cached (ristretto admits a new
// key a moment after Set), and fails if it never is.
func settle(t *testing.T, s *policy.Set, in policy.Input) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, cached := echoOf(t, s, in); cached {
			return
		}
	}
	t.Fatalf("a repeated input was never answered from the cache")
}

// Whatever part of the input a rule reads (a header, a label under a
// computed key, a finding, the hour, a usage counter), two requests that
// differ only there get their own decisions, however often the first was
// cached.
func TestDecisionCacheKeysOnEveryPartARuleReads(t *testing.T) {
	base := func() policy.Input {
		in := chat("standard", "gpt-4o-mini")
		in.Request.Headers = map[string]string{"x-ticket-id": "T-1", "user-agent": "sdk"}
		in.Usage = &policy.Usage{Client: policy.Counters{TokensToday: 10}}
		return in
	}
	for _, tt := range []struct {
		name   string
		rule   string
		change func(*policy.Input)
	}{
		{"header", `echo := input.request.headers["x-ticket-id"]`,
			func(in *policy.Input) { in.Request.Headers["x-ticket-id"] = "T-2" }},
		{"header missing", `echo := object.get(input.request.headers, "x-ticket-id", "none")`,
			func(in *policy.Input) { delete(in.Request.Headers, "x-ticket-id") }},
		{"label by computed key", `echo := concat(",", [sprintf("%s=%s", [k, v]) | some k, v in input.client.labels])`,
			func(in *policy.Input) { in.Client.Labels = map[string]string{"env": "dev"} }},
		{"findings", `echo := sprintf("%d", [count(input.findings)])`,
			func(in *policy.Input) { in.Findings = []policy.Finding{pii("EMAIL")} }},
		{"finding detail", `echo := concat(",", [f.type | some f in input.findings])`,
			func(in *policy.Input) { in.Findings = []policy.Finding{pii("PHONE")} }},
		{"hour", `echo := sprintf("%d", [input.time.hour])`,
			func(in *policy.Input) { in.Time = in.Time.Add(time.Hour) }},
		{"string or number", `echo := sprintf("%v", [input.request.max_tokens])`,
			func(in *policy.Input) { in.Request.MaxTokens = 257 }},
		{"api", `echo := input.request.api`,
			func(in *policy.Input) { in.Request.API = "messages" }},
		{"upstream type", `echo := input.request.upstream_type`,
			func(in *policy.Input) { in.Request.UpstreamType = "bedrock" }},
		{"one of the upstream types", `echo := sprintf("%v", ["bedrock" in input.request.upstream_types])`,
			func(in *policy.Input) { in.Request.UpstreamTypes = []string{"openai", "bedrock"} }},
		{"key inside a key", `echo := sprintf("%v", [object.get({"gpt-4o-mini": "a", "gpt-4o": "b"}, input.request.model, "c")])`,
			func(in *policy.Input) { in.Request.Model = "gpt-4o" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			headers := []string{"x-ticket-id", "user-agent"}
			s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: echoRule(tt.rule)}, Headers: headers})
			defer s.Close()
			first := base()
			settle(t, s, first)
			want, _ := echoOf(t, s, first)
			second := base()
			tt.change(&second)
			got, cached := echoOf(t, s, second)
			if got == want || cached {
				t.Fatalf("after %q was cached, a request differing in what the rule reads got %q (cached %v)", want, got, cached)
			}
			// Evaluated afresh, the second input gives the same answer.
			e, err := policy.Load(context.Background(), echoRule(tt.rule), nil, policy.WithHeaders(headers))
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(context.Background(), second)
			if err != nil || d.Headers["x-echo"] != got {
				t.Fatalf("evaluated afresh: %q, %v; the set answered %q", d.Headers["x-echo"], err, got)
			}
		})
	}
}

// A rule that reads the input whole, or under a computed key at the top,
// could read any part of it, and one that calls a builtin allowed against
// the default (randomness, the clock) or uses with may decide otherwise on
// the same input: such a policy is never answered from the cache. Nor is
// one that reads the usage counters or the time to the second, which
// differ on every request.
func TestDecisionCacheOffWhenARuleReadsInputWhole(t *testing.T) {
	for _, rule := range []string{
		`echo := json.marshal(input)`,
		`echo := json.marshal([v | some k, v in input; k == "request"])`,
		`echo := object.get(input, ["request", "model"], "")`,
		`echo := f(input)
f(x) := x.request.model`,
		`echo := sprintf("%d", [rand.intn(input.request.model, 1000000)])`,
		`echo := sprintf("%d", [time.now_ns()])`,
		// A token that expires is valid until the clock says otherwise.
		`echo := sprintf("%v %v", [input.request.model, io.jwt.decode_verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjF9.c2ln", {"secret": "s"})[0]])`,
		// Values that change with every request: a cache would only miss.
		`echo := sprintf("%d", [object.get(input.usage, ["client", "tokens_today"], 0)])`,
		`echo := sprintf("%d", [input.time.unix])`,
		`echo := x if {
	x := g with input.request.model as "x"
}
g := input.request.model`,
	} {
		s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: echoRule(rule)},
			AllowBuiltins: []string{"rand.intn", "time.now_ns"}})
		in := chat("standard", "gpt-4o-mini")
		for range 50 {
			if _, cached := echoOf(t, s, in); cached {
				t.Fatalf("%s: a decision came from the cache", rule)
			}
		}
		if st := s.Status(); st.CacheHits != 0 || st.CacheMisses != 0 {
			t.Fatalf("%s: cache hits %d, misses %d; want the cache unused", rule, st.CacheHits, st.CacheMisses)
		}
		s.Close()
	}
}

// A decision cached before a data write is not answered after it: the
// tier narrowed in data denies at once.
func TestDecisionCacheFollowsData(t *testing.T) {
	s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: policies.FS},
		Data: map[string]any{"sluice": map[string]any{"tiers": tiers()}}})
	defer s.Close()
	in := chat("standard", "gpt-4o-mini")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		r, err := s.Decide(context.Background(), in)
		if err != nil || !r.Decision.Allowed {
			t.Fatalf("%+v, %v; want allowed", r.Decision, err)
		}
		if r.Cached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never cached")
		}
	}
	narrowed := tiers()
	narrowed["standard"].(map[string]any)["models"] = []any{"mock-*"}
	if err := s.SetData(context.Background(), "/sluice/tiers", narrowed); err != nil {
		t.Fatal(err)
	}
	r, err := s.Decide(context.Background(), in)
	if err != nil || r.Decision.Allowed || r.Decision.Code != "model_not_allowed" || r.Cached {
		t.Fatalf("after the tier was narrowed: %+v (cached %v), %v; want model_not_allowed", r.Decision, r.Cached, err)
	}
}

// A decision that failed is never cached, so never answered as an allow:
// the same input fails every time.
func TestDecisionCacheNeverKeepsErrors(t *testing.T) {
	s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: echoRule(
		`echo := sprintf("%d", [input.request.prompt_tokens / input.request.max_tokens])`)}})
	defer s.Close()
	in := chat("standard", "gpt-4o-mini")
	in.Request.MaxTokens = 0
	for range 200 {
		r, err := s.Decide(context.Background(), in)
		var ee *policy.EvalError
		if !errors.As(err, &ee) || r.Cached || r.Decision.Allowed {
			t.Fatalf("division by zero: %+v (cached %v), %v; want an evaluation error every time", r.Decision, r.Cached, err)
		}
	}
	if st := s.Status(); st.CacheHits != 0 {
		t.Fatalf("%d cache hits for an input that always fails", st.CacheHits)
	}
}

// A reload brings its own decisions: one cached under the old rules is
// not answered under the new.
func TestDecisionCacheFollowsReloads(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"authz.rego": string(echoRule(`echo := "v1"`)["authz.rego"].Data)})
	s := newSet(t, policy.SetConfig{Policies: policy.Source{Dir: dir}})
	defer s.Close()
	in := chat("standard", "gpt-4o-mini")
	settle(t, s, in)
	writeFiles(t, dir, map[string]string{"authz.rego": string(echoRule(`echo := "v2"`)["authz.rego"].Data)})
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, cached := echoOf(t, s, in); got != "v2" || cached {
		t.Fatalf("after the reload: %q (cached %v), want v2", got, cached)
	}
}

// With the cache off (a negative size), every decision is evaluated.
func TestDecisionCacheCanBeTurnedOff(t *testing.T) {
	s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: policies.FS}, DecisionCache: -1,
		Data: map[string]any{"sluice": map[string]any{"tiers": tiers()}}})
	defer s.Close()
	in := chat("standard", "gpt-4o-mini")
	for i := range 100 {
		r, err := s.Decide(context.Background(), in)
		if err != nil || r.Cached {
			t.Fatalf("decision %d: cached %v, %v", i, r.Cached, err)
		}
	}
}

// The shipped policy's repeats are answered from the cache, with the
// decision an evaluation gives.
func TestDecisionCacheAnswersTheShippedPolicy(t *testing.T) {
	data := map[string]any{"sluice": map[string]any{"tiers": tiers(), "departments": departments()}}
	s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: policies.FS}, Data: data})
	defer s.Close()
	e, err := policy.Load(context.Background(), policies.FS, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []policy.Input{
		chat("standard", "gpt-4o-mini"), chat("premium", "gpt-4o"), chat("standard", "gpt-4o"),
		chat("premium", "gpt-4o", pii("EMAIL"), pii("US_SSN")), chat("standard", "gpt-4o-mini", content("violence")),
	} {
		want, err := e.Decide(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		cached := false
		for deadline := time.Now().Add(5 * time.Second); !cached && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			r, err := s.Decide(context.Background(), in)
			if err != nil || fmt.Sprint(r.Decision) != fmt.Sprint(want) {
				t.Fatalf("%s %s: %+v, %v; want %+v", in.Client.Tier, in.Request.Model, r.Decision, err, want)
			}
			cached = r.Cached
		}
		if !cached {
			t.Fatalf("%s %s: never answered from the cache", in.Client.Tier, in.Request.Model)
		}
	}
}
