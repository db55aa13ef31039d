package policy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/policy"
)

// stuckShadow is a shadow set that cannot decide until the test lets it:
// its rule asks a server that holds every request until release is
// closed. arrived receives a value as each request reaches the server.
func stuckShadow(t *testing.T) (src policy.Source, arrived <-chan struct{}, release func()) {
	t.Helper()
	in, out := make(chan struct{}, 100), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		<-out
		fmt.Fprint(w, `{"verdict": "no"}`)
	}))
	released := false
	release = func() {
		if !released {
			released = true
			close(out)
		}
	}
	t.Cleanup(srv.Close)
	t.Cleanup(release) // before srv.Close: cleanups run last first
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"authz.rego": fmt.Sprintf(`package sluice.authz

decision := {
	"allowed": false, "http_status": 403, "code": "slow_no", "type": "permission_error", "message": "no",
	"headers": {},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
} if {
	http.send({"method": "GET", "url": %q, "raise_error": false, "cache": false, "force_json_decode": true}).body.verdict == "no"
}
`, srv.URL)})
	return policy.Source{Dir: dir}, in, release
}

// A shadow set that takes as long as it likes adds nothing to a request:
// the enforced decision comes back while the shadow is still deciding,
// and the disagreement still reaches ShadowDone, with both outcomes, once
// it has decided.
func TestSlowShadowStaysOffTheRequestPath(t *testing.T) {
	enforced := t.TempDir()
	writeFiles(t, enforced, map[string]string{"authz.rego": tierPolicy})
	shadow, arrived, release := stuckShadow(t)
	cfg := policy.SetConfig{
		Policies: policy.Source{Dir: enforced}, Shadow: shadow,
		Data:          map[string]any{"sluice": map[string]any{"tiers": map[string]any{"std": map[string]any{"rpm": 5}}}},
		AllowBuiltins: []string{"http.send"}, EvalTimeout: time.Minute,
	}
	shadowed := collectShadows(&cfg)
	s := newSet(t, cfg)
	defer s.Close()

	decided := make(chan policy.Result, 1)
	go func() {
		r, err := s.Decide(context.Background(), policy.Input{Client: policy.Client{Tier: "std"}, RequestID: "req_1"})
		if err != nil {
			t.Errorf("Decide: %v", err)
		}
		decided <- r
	}()
	var r policy.Result
	select {
	case r = <-decided:
	case <-time.After(30 * time.Second):
		release()
		t.Fatal("Decide waited for the shadow set")
	}
	<-arrived // the shadow is deciding this very request, and cannot finish
	if !r.Decision.Allowed || r.Decision.Limits.RPM != 5 || r.Shadow != nil || !r.ShadowQueued {
		t.Fatalf("enforced result %+v; want allowed, rpm 5, the shadow queued", r)
	}
	release()
	r = shadowed.of(t, r)
	if !r.Shadow.Disagrees || r.Shadow.Decision.Code != "slow_no" || !r.Decision.Allowed {
		t.Fatalf("shadow %+v beside %+v; want the shadow's denial as a disagreement", r.Shadow, r.Decision)
	}
	if st := s.Status(); st.Disagreements != 1 || st.ShadowDropped != 0 {
		t.Fatalf("status %+v; want 1 disagreement, none dropped", st)
	}
}

// A shadow set that cannot keep up loses decisions, counted, rather than
// queue them without bound or slow the requests.
func TestSlowShadowDropsWhatItCannotQueue(t *testing.T) {
	enforced := t.TempDir()
	writeFiles(t, enforced, map[string]string{"authz.rego": tierPolicy})
	shadow, arrived, release := stuckShadow(t)
	cfg := policy.SetConfig{
		Policies: policy.Source{Dir: enforced}, Shadow: shadow, ShadowQueue: 2,
		Data:          map[string]any{"sluice": map[string]any{"tiers": map[string]any{"std": map[string]any{"rpm": 5}}}},
		AllowBuiltins: []string{"http.send"}, EvalTimeout: time.Minute,
	}
	shadowed := collectShadows(&cfg)
	s := newSet(t, cfg)
	in := policy.Input{Client: policy.Client{Tier: "std"}}
	first, err := s.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	<-arrived // the shadow goroutine is stuck on the first decision
	const n = 10
	var queued []policy.Result
	for range n {
		r, err := s.Decide(context.Background(), in)
		if err != nil || !r.Decision.Allowed {
			t.Fatalf("%+v, %v; want the enforced decision whatever the shadow's queue", r.Decision, err)
		}
		if r.ShadowQueued {
			queued = append(queued, r)
		}
	}
	if st := s.Status(); len(queued) != 2 || st.ShadowDropped != n-2 {
		t.Fatalf("%d queued, %d dropped; want 2 queued (the queue's bound) and %d dropped", len(queued), st.ShadowDropped, n-2)
	}
	release()
	for _, r := range append(queued, first) {
		if r = shadowed.of(t, r); !r.Shadow.Disagrees {
			t.Fatalf("queued decision %s: shadow %+v, want its disagreement", r.ID, r.Shadow)
		}
	}
	s.Close()
	if r, _ := s.Decide(context.Background(), in); r.ShadowQueued || !r.Decision.Allowed {
		t.Fatalf("after Close: %+v; want the enforced decision, unshadowed", r)
	}
}
