package policy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicehq/sluice/host/policy"
)

// versioned is a policy set in two files: the decision in authz.rego
// reports version (from version.rego) in a header and uses it as the rpm
// limit, so a decision made of parts of two sets would show two numbers.
func versioned(version int) map[string]string {
	return map[string]string{
		"authz.rego": `package sluice.authz

import data.sluice.version

decision := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "",
	"headers": {"x-version": sprintf("%d", [version.number])},
	"limits": {"rpm": version.number, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
}
`,
		"version.rego": fmt.Sprintf("package sluice.version\n\nnumber := %d\n", version),
		"authz_test.rego": fmt.Sprintf(`package sluice.authz_test

import data.sluice.authz

test_version if authz.decision.limits.rpm == %d
`, version),
	}
}

// writeFiles writes files into dir, each through a temporary file renamed
// into place, as editors save.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(name))
		if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}

func newSet(t *testing.T, cfg policy.SetConfig) *policy.Set {
	t.Helper()
	s, err := policy.NewSet(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	return s
}

// shadows collects the decisions a Set's shadow goroutine hands over, by
// decision id.
type shadows struct {
	mu  sync.Mutex
	got map[string]policy.Result
}

// collectShadows makes cfg's shadow decisions reach the returned shadows.
func collectShadows(cfg *policy.SetConfig) *shadows {
	sh := &shadows{got: map[string]policy.Result{}}
	cfg.ShadowDone = func(_ string, r policy.Result, _ error) {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		sh.got[r.ID] = r
	}
	return sh
}

// of waits for the shadow's decision of r and returns r with it.
func (sh *shadows) of(t *testing.T, r policy.Result) policy.Result {
	t.Helper()
	if !r.ShadowQueued {
		t.Fatalf("decision %s was not queued for the shadow set", r.ID)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		sh.mu.Lock()
		got, ok := sh.got[r.ID]
		sh.mu.Unlock()
		if ok {
			return got
		}
	}
	t.Fatalf("the shadow set never decided %s", r.ID)
	return r
}

// version decides once and returns the version the decision came from,
// failing when its parts disagree.
func version(t *testing.T, s *policy.Set) (string, error) {
	r, err := s.Decide(context.Background(), policy.Input{})
	if err != nil {
		return "", err
	}
	v := r.Decision.Headers["x-version"]
	if want := fmt.Sprint(r.Decision.Limits.RPM); v != want {
		return "", fmt.Errorf("decision mixes sets: header version %s, rpm %s", v, want)
	}
	return v, nil
}

func TestSetReloadWhileDeciding(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, versioned(1))
	s := newSet(t, policy.SetConfig{Policies: policy.Source{Dir: dir}})
	before := s.Status().Enforced

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		sawNew   atomic.Int64
		failures = make(chan error, 8)
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				v, err := version(t, s)
				switch {
				case err != nil:
					failures <- err
					return
				case v == "2":
					sawNew.Add(1)
				case v != "1":
					failures <- fmt.Errorf("version %q, want 1 or 2", v)
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	writeFiles(t, dir, versioned(2))
	if err := s.Reload(context.Background()); err != nil {
		t.Errorf("Reload: %v", err)
	}
	// Every decision after Reload returns comes from the new set.
	if v, err := version(t, s); v != "2" || err != nil {
		t.Errorf("after Reload: version %q, %v; want 2", v, err)
	}
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	if sawNew.Load() == 0 {
		t.Error("no goroutine saw the new set")
	}

	after := s.Status().Enforced
	if after.Revision == before.Revision || !after.LoadedAt.After(before.LoadedAt) || after.ReloadsOK != 1 || after.Tests != 1 {
		t.Errorf("status after reload %+v (before %+v): want a new revision, a later load, 1 reload and 1 test", after, before)
	}
}

func TestSetReloadFailureKeepsLastGoodSet(t *testing.T) {
	cases := []struct {
		name     string
		files    map[string]string
		wantFile string
		wantLine int
		wantMsg  string
	}{
		{
			name:     "syntax error",
			files:    map[string]string{"version.rego": "package sluice.version\n\nnumber := \n"},
			wantFile: "version.rego", wantLine: 4, wantMsg: "unexpected eof",
		},
		{
			name:     "unsafe variable",
			files:    map[string]string{"helpers.rego": "package sluice.helpers\n\nok if {\n\tx == 1\n}\n"},
			wantFile: "helpers.rego", wantLine: 4, wantMsg: "var x is unsafe",
		},
		{
			name: "failing test",
			files: map[string]string{"extra_test.rego": `package sluice.extra_test

import data.sluice.authz

test_passes if authz.decision.allowed

test_denies if not authz.decision.allowed
`},
			wantFile: "extra_test.rego", wantLine: 7, wantMsg: "test data.sluice.extra_test.test_denies failed",
		},
		{
			name:     "no decision",
			files:    map[string]string{"authz.rego": "package sluice.authz\n\nallow := true\n"},
			wantFile: "", wantMsg: "no rule defines data.sluice.authz.decision",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, versioned(1))
			var reported []error
			s := newSet(t, policy.SetConfig{
				Policies: policy.Source{Dir: dir},
				Reloaded: func(_ string, err error) { reported = append(reported, err) },
			})
			good := s.Status().Enforced.Revision

			writeFiles(t, dir, c.files)
			if err := s.Reload(context.Background()); err == nil {
				t.Fatal("Reload succeeded, want error")
			}
			if v, err := version(t, s); v != "1" || err != nil {
				t.Errorf("after the failed reload: version %q, %v; want 1", v, err)
			}
			st := s.Status().Enforced
			if st.Revision != good || st.ReloadsFailed != 1 || st.ReloadsOK != 0 || st.LastError == nil {
				t.Fatalf("status %+v: want revision %s, 1 failed reload and the error", st, good)
			}
			if len(reported) != 1 || reported[0] == nil {
				t.Errorf("Reloaded saw %v, want one error", reported)
			}
			found := slices.ContainsFunc(st.LastError.Problems, func(p policy.Problem) bool {
				return p.File == c.wantFile && (c.wantLine == 0 || p.Line == c.wantLine) && strings.Contains(p.Message, c.wantMsg)
			})
			if !found {
				t.Errorf("problems %v, want one at %s:%d mentioning %q", st.LastError.Problems, c.wantFile, c.wantLine, c.wantMsg)
			}

			// Putting the good files back clears the error without a swap.
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, dir, versioned(1))
			if err := s.Reload(context.Background()); err != nil {
				t.Fatalf("Reload of the good files: %v", err)
			}
			if st := s.Status().Enforced; st.LastError != nil || st.Revision != good {
				t.Errorf("status %+v: want the good revision and no error", st)
			}
		})
	}
}

func TestSetWatchFollowsTheFolder(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, versioned(1))
	reloads := make(chan error, 16)
	s := newSet(t, policy.SetConfig{
		Policies: policy.Source{Dir: dir},
		Reloaded: func(_ string, err error) { reloads <- err },
	})
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- s.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-watched; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()

	// waitFor waits for reloads until the status satisfies ok.
	waitFor := func(what string, ok func(policy.SetStatus) bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case err := <-reloads:
				if err != nil {
					t.Fatalf("%s: reload failed: %v", what, err)
				}
				if ok(s.Status().Enforced) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: not reloaded; status %+v", what, s.Status().Enforced)
			}
		}
	}

	// Watch gives no sign that its watch is in place: save until it sees
	// the edit.
	for saved := false; !saved; {
		writeFiles(t, dir, versioned(2))
		select {
		case err := <-reloads:
			if err != nil {
				t.Fatalf("edit: reload failed: %v", err)
			}
			saved = true
		case <-time.After(time.Second):
		}
	}
	if v, _ := version(t, s); v != "2" {
		t.Fatalf("after the edit: version %s, want 2", v)
	}

	writeFiles(t, dir, map[string]string{"lib/extra.rego": "package sluice.extra\n\nanswer := 42\n"})
	waitFor("added file", func(st policy.SetStatus) bool { return slices.Contains(st.Files, "lib/extra.rego") })

	if err := os.Remove(filepath.Join(dir, "lib/extra.rego")); err != nil {
		t.Fatal(err)
	}
	waitFor("removed file", func(st policy.SetStatus) bool { return !slices.Contains(st.Files, "lib/extra.rego") })

	// A burst of saves is one reload. Reloads still on their way are let
	// through first.
	time.Sleep(3 * debounce)
	for len(reloads) > 0 {
		<-reloads
	}
	before := s.Status().Enforced.ReloadsOK
	for i := range 5 {
		writeFiles(t, dir, map[string]string{"version.rego": fmt.Sprintf("package sluice.version\n\nnumber := %d\n", 3+i%2)})
	}
	// The set's own test (rpm == 2) now fails, and the set stays at 2.
	select {
	case err := <-reloads:
		if err == nil {
			t.Error("reload of a set failing its test succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("burst of saves: no reload")
	}
	time.Sleep(3 * debounce)
	if st := s.Status().Enforced; st.ReloadsOK != before || st.ReloadsFailed != 1 {
		t.Errorf("after a burst of 5 saves: %d ok, %d failed reloads; want one failed", st.ReloadsOK-before, st.ReloadsFailed)
	}
	if v, _ := version(t, s); v != "2" {
		t.Errorf("version %s after a failed reload, want 2", v)
	}
}

// debounce is how long Watch waits for a burst of changes to end.
const debounce = 200 * time.Millisecond

func TestSetWithoutFolderIsNotWatched(t *testing.T) {
	fsys := fstest.MapFS{}
	for name, src := range versioned(1) {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: fsys}})
	if st := s.Status().Enforced; st.Source != "embedded" || st.Tests != 1 {
		t.Errorf("status %+v, want an embedded source with its test run", st)
	}
	done := make(chan error, 1)
	go func() { done <- s.Watch(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch: %v", err)
		}
	case <-time.After(time.Second):
		t.Error("Watch of an embedded set did not return")
	}
	if err := s.Reload(context.Background()); err != nil {
		t.Errorf("Reload of an embedded set: %v", err)
	}
}

func TestNewSetRefusesBrokenSets(t *testing.T) {
	good := t.TempDir()
	writeFiles(t, good, versioned(1))
	broken := t.TempDir()
	writeFiles(t, broken, map[string]string{"authz.rego": "package sluice.authz\n\ndecision := {\n"})
	for _, cfg := range []policy.SetConfig{
		{},
		{Policies: policy.Source{Dir: broken}},
		{Policies: policy.Source{Dir: good}, Shadow: policy.Source{Dir: broken}},
		{Policies: policy.Source{Dir: filepath.Join(good, "missing")}},
	} {
		if _, err := policy.NewSet(context.Background(), cfg); err == nil {
			t.Errorf("NewSet(%+v) succeeded, want error", cfg)
		}
	}
}

// tierPolicy allows with the rpm of the client's tier from data, and
// derives nothing.
const tierPolicy = `package sluice.authz

decision := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "",
	"headers": {"x-version": sprintf("%d", [data.sluice.tiers[input.client.tier].rpm])},
	"limits": {"rpm": data.sluice.tiers[input.client.tier].rpm, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
}
`

func TestSetKeepsDataAcrossReloads(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"authz.rego": tierPolicy})
	s := newSet(t, policy.SetConfig{
		Policies: policy.Source{Dir: dir},
		Data:     map[string]any{"sluice": map[string]any{"tiers": map[string]any{"std": map[string]any{"rpm": 1}}}},
	})
	if err := s.SetData(ctx, "/sluice/tiers", map[string]any{"std": map[string]any{"rpm": 7}}); err != nil {
		t.Fatalf("SetData: %v", err)
	}
	writeFiles(t, dir, map[string]string{"authz.rego": tierPolicy + "\n# changed\n"})
	if err := s.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	r, err := s.Decide(ctx, policy.Input{Client: policy.Client{Tier: "std"}})
	if err != nil || r.Decision.Limits.RPM != 7 {
		t.Errorf("after reload: %+v, %v; want the rpm written before it (7)", r.Decision, err)
	}
}

// shadowPolicy is tierPolicy with a stricter rule in front, the way a team
// would try one out, and a bug (a decision that is not an object).
const shadowPolicy = `package sluice.authz

decision := {
	"allowed": false, "http_status": 403, "code": "closed", "type": "permission_error", "message": "closed",
	"headers": {},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
} if {
	input.request.model == "gpt-4o"
} else := 1 if {
	input.request.model == "broken"
} else := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "shadow",
	"headers": {"x-shadow": "yes"},
	"limits": {"rpm": data.sluice.tiers[input.client.tier].rpm, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
}
`

func TestSetShadow(t *testing.T) {
	ctx := context.Background()
	enforced, shadow := t.TempDir(), t.TempDir()
	writeFiles(t, enforced, map[string]string{"authz.rego": tierPolicy})
	writeFiles(t, shadow, map[string]string{"authz.rego": shadowPolicy})
	cfg := policy.SetConfig{
		Policies: policy.Source{Dir: enforced},
		Shadow:   policy.Source{Dir: shadow},
		Data:     map[string]any{"sluice": map[string]any{"tiers": map[string]any{"std": map[string]any{"rpm": 5}}}},
	}
	shadowed := collectShadows(&cfg)
	s := newSet(t, cfg)
	in := func(model string) policy.Input {
		return policy.Input{Client: policy.Client{Tier: "std"}, Request: policy.Request{Model: model}}
	}

	steps := []struct {
		model           string
		disagrees       bool
		shadowAllowed   bool
		shadowErr       bool
		disagreements   uint64
		shadowErrsTotal uint64
	}{
		{"gpt-4o-mini", false, true, false, 0, 0},
		{"gpt-4o", true, false, false, 1, 0},
		{"broken", true, false, true, 2, 1},
		{"gpt-4o-mini", false, true, false, 2, 1},
	}
	for _, st := range steps {
		r, err := s.Decide(ctx, in(st.model))
		if err != nil || !r.Decision.Allowed || r.Decision.Limits.RPM != 5 {
			t.Fatalf("%s: enforced decision %+v, %v; want allowed with rpm 5 whatever the shadow does", st.model, r.Decision, err)
		}
		r = shadowed.of(t, r)
		sh := r.Shadow
		if sh == nil {
			t.Fatalf("%s: no shadow result", st.model)
		}
		if sh.Disagrees != st.disagrees || (sh.Err != nil) != st.shadowErr || (sh.Err == nil && sh.Decision.Allowed != st.shadowAllowed) {
			t.Errorf("%s: shadow %+v, want disagrees %v, error %v, allowed %v", st.model, sh, st.disagrees, st.shadowErr, st.shadowAllowed)
		}
		if st.model == "gpt-4o" && sh.Decision.Code != "closed" {
			t.Errorf("%s: shadow decision %+v, want the shadow's denial", st.model, sh.Decision)
		}
		status := s.Status()
		if status.Disagreements != st.disagreements || status.ShadowErrors != st.shadowErrsTotal {
			t.Errorf("%s: %d disagreements, %d shadow errors; want %d, %d", st.model, status.Disagreements, status.ShadowErrors, st.disagreements, st.shadowErrsTotal)
		}
		if status.Shadow == nil || status.Shadow.Revision != sh.Revision || sh.Revision == r.Revision {
			t.Errorf("%s: shadow revision %q, status %+v: want the shadow set's own revision", st.model, sh.Revision, status.Shadow)
		}
	}

	// Data reaches the shadow too.
	if err := s.SetData(ctx, "/sluice/tiers/std", map[string]any{"rpm": 9}); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Decide(ctx, in("gpt-4o-mini"))
	r = shadowed.of(t, r)
	if r.Shadow.Disagrees || r.Shadow.Decision.Limits.RPM != 9 {
		t.Errorf("after SetData: shadow %+v, want rpm 9 like the enforced set", r.Shadow)
	}
}

func TestSetDecideErrorsAreReportedWithAnID(t *testing.T) {
	const pol = "package sluice.authz\n\ndecision := {\"a\": 1} if input.request.model == \"x\"\n\ndecision := {\"b\": 2} if input.request.model == \"x\"\n"
	s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: fstest.MapFS{"authz.rego": {Data: []byte(pol)}}}})
	for model, want := range map[string]string{"": "undefined", "x": "evaluate"} {
		r, err := s.Decide(context.Background(), policy.Input{Request: policy.Request{Model: model}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("model %q: error %v, want it to mention %q", model, err, want)
		}
		if !strings.HasPrefix(r.ID, "dec_") || r.Revision == "" || r.Shadow != nil {
			t.Errorf("model %q: result %+v, want an id, a revision and no shadow", model, r)
		}
	}
}

func TestDecisionIDsAreUnique(t *testing.T) {
	s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: fstest.MapFS{"authz.rego": {Data: []byte(fixedDecision)}}}})
	seen := map[string]bool{}
	for range 1000 {
		r, err := s.Decide(context.Background(), policy.Input{})
		if err != nil {
			t.Fatal(err)
		}
		if seen[r.ID] || !strings.HasPrefix(r.ID, "dec_") || len(r.ID) > 24 {
			t.Fatalf("id %q: repeated or malformed", r.ID)
		}
		seen[r.ID] = true
	}
}

func TestExplainNamesTheRules(t *testing.T) {
	e := loadDefault(t)
	cases := []struct {
		name string
		in   policy.Input
		// want are "rule@line" of testdata/v2/authz.rego that must appear.
		want []string
	}{
		// The fast path: the first branch of decision, answered from data.
		{"allowed first pass", chat("standard", "gpt-4o-mini"), []string{"decision@6"}},
		{"model denied", chat("standard", "gpt-4o"), []string{"decision@32", "_tier@88", "_limits@115"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, err := e.Explain(context.Background(), c.in)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			want, err := e.Decide(context.Background(), c.in)
			if err != nil || !reflect.DeepEqual(x.Decision, want) {
				t.Errorf("Explain decided %+v, Decide %+v (%v)", x.Decision, want, err)
			}
			var got []string
			for _, h := range x.Rules {
				if h.File != "authz.rego" || h.Package != "data.sluice.authz" {
					t.Errorf("hit %+v: want authz.rego in data.sluice.authz", h)
				}
				got = append(got, fmt.Sprintf("%s@%d", h.Rule, h.Line))
			}
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("rules %v, want %s among them", got, w)
				}
			}
			in, ok := x.Input.(map[string]any)
			if !ok || in["request"].(map[string]any)["model"] != c.in.Request.Model {
				t.Errorf("input %v, want the request's model in it", x.Input)
			}
			if x.Revision != e.Revision() {
				t.Errorf("revision %q, want %q", x.Revision, e.Revision())
			}
		})
	}
}

func TestUsesUsage(t *testing.T) {
	const tail = `

decision := {
	"allowed": allowed, "http_status": 200, "code": "", "type": "", "message": "", "headers": {},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
}
`
	cases := []struct {
		name string
		rule string
		want bool
	}{
		{"no input", "allowed := true", false},
		{"other input fields", `allowed := input.request.model == "x"`, false},
		{"dotted", "allowed := input.usage.client.tokens_today < 100", true},
		{"brackets", `allowed := input["usage"].client.tokens_today < 100`, true},
		{"computed key", `allowed := input[lower("USAGE")] == {}`, true},
		{"iterating input", "allowed := count([k | some k, _ in input]) > 0", true},
		{"input passed whole", "allowed := is_object(input)", true},
		{"import alias", "import input.usage as u\n\nallowed := u.client.requests_minute < 3", true},
		{"with replaces input", "allowed if {\n\tother with input as {\"usage\": 1}\n}\n\nother := input.request.stream", false},
		{"with reads input", "allowed if {\n\tother with data.x as input\n}\n\nother := true", true},
		{"helper package", "allowed := true", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := fstest.MapFS{"authz.rego": {Data: []byte("package sluice.authz\n\n" + c.rule + tail)}}
			if c.name == "helper package" {
				files["lib.rego"] = &fstest.MapFile{Data: []byte("package sluice.lib\n\nspend := input.usage.department.spend_month_usd\n")}
			}
			e, err := policy.Load(context.Background(), files, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := e.UsesUsage(); got != c.want {
				t.Errorf("UsesUsage = %v, want %v", got, c.want)
			}
		})
	}
}

func TestSetUsesUsageCountsTheShadow(t *testing.T) {
	plain := fstest.MapFS{"authz.rego": {Data: []byte(fixedDecision)}}
	reads := fstest.MapFS{"authz.rego": {Data: []byte(fixedDecision + "\nspend := input.usage.client.spend_month_usd\n")}}
	if s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: plain}}); s.UsesUsage() {
		t.Error("a set that never reads usage: UsesUsage = true")
	}
	if s := newSet(t, policy.SetConfig{Policies: policy.Source{FS: plain}, Shadow: policy.Source{FS: reads}}); !s.UsesUsage() {
		t.Error("a shadow that reads usage: UsesUsage = false")
	}
}

// A pinned input is decided by the revision in force when it was pinned,
// through every pass and copy of it, while reloads keep swapping the set;
// without the pin, passes follow the swaps.
func TestSetPinKeepsOneRevisionPerRequest(t *testing.T) {
	dir, shadowDir := t.TempDir(), t.TempDir()
	writeFiles(t, dir, versioned(1))
	writeFiles(t, shadowDir, versioned(1))
	cfg := policy.SetConfig{Policies: policy.Source{Dir: dir}, Shadow: policy.Source{Dir: shadowDir}}
	shadowed := collectShadows(&cfg)
	s := newSet(t, cfg)

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 2; !stop.Load(); i++ {
			writeFiles(t, dir, versioned(i%2+1))
			writeFiles(t, shadowDir, versioned(i%2+1))
			if err := s.Reload(context.Background()); err != nil {
				t.Errorf("Reload: %v", err)
				return
			}
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()

	ctx := context.Background()
	unpinnedMixed := 0
	for range 300 {
		var in policy.Input
		s.Pin(&in)
		first, err := s.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		first = shadowed.of(t, first)
		second := in // the second pass: the same input with findings
		second.Findings = []policy.Finding{{Plugin: "pii", Type: "EMAIL", Count: 1}}
		runtime.Gosched()
		for _, pass := range []policy.Input{second, in} {
			r, err := s.Decide(ctx, pass)
			if err != nil {
				t.Fatal(err)
			}
			r = shadowed.of(t, r)
			if r.Revision != first.Revision || r.Decision.Limits != first.Decision.Limits ||
				r.Shadow.Revision != first.Shadow.Revision {
				t.Fatalf("pinned passes decided by %s (shadow %s) then %s (shadow %s)",
					first.Revision, first.Shadow.Revision, r.Revision, r.Shadow.Revision)
			}
		}
		a, _ := s.Decide(ctx, policy.Input{})
		runtime.Gosched()
		b, _ := s.Decide(ctx, policy.Input{})
		if a.Revision != b.Revision {
			unpinnedMixed++
		}
	}
	t.Logf("unpinned pairs decided by two revisions: %d of 300", unpinnedMixed)
}

// watchedSet starts Watch on a set of the folder dir and returns a function
// that waits until the set is at version want.
func watchedSet(t *testing.T, dir string, rewatched chan<- string) (*policy.Set, func(what, want string)) {
	t.Helper()
	reloads := make(chan error, 64)
	s := newSet(t, policy.SetConfig{
		Policies: policy.Source{Dir: dir},
		Reloaded: func(_ string, err error) { reloads <- err },
		Rewatched: func(dir string, err error) {
			if err == nil && rewatched != nil {
				rewatched <- dir
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- s.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-watched; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	time.Sleep(50 * time.Millisecond) // Watch gives no sign that its watch is in place
	return s, func(what, want string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			if v, _ := version(t, s); v == want {
				return
			}
			select {
			case <-reloads:
			case <-deadline:
				v, err := version(t, s)
				t.Fatalf("%s: version %s (%v), want %s; status %+v", what, v, err, want, s.Status().Enforced)
			}
		}
	}
}

// The folder renamed over by a new one (mv policies.new policies) is
// followed: the new folder is loaded, and its later edits too.
func TestSetWatchFollowsAReplacedFolder(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "policies")
	writeFiles(t, dir, versioned(1))
	rewatched := make(chan string, 16)
	_, waitFor := watchedSet(t, dir, rewatched)

	for v := 2; v <= 3; v++ {
		next := filepath.Join(root, "policies.new")
		writeFiles(t, next, versioned(v))
		if err := os.Rename(dir, filepath.Join(root, fmt.Sprintf("policies.old%d", v))); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(next, dir); err != nil {
			t.Fatal(err)
		}
		waitFor("replaced folder", fmt.Sprint(v))
	}
	writeFiles(t, dir, map[string]string{"version.rego": "package sluice.version\n\nnumber := 4\n", "authz_test.rego": versioned(4)["authz_test.rego"]})
	waitFor("edit in the replacing folder", "4")
	select {
	case d := <-rewatched:
		if d != dir {
			t.Errorf("rewatched %s, want %s", d, dir)
		}
	default:
		t.Error("no Rewatched call")
	}
}

// A symlink swapped to another folder (ln -sfn, as release tools do) is
// followed, and so are the edits of the folder it now leads to.
func TestSetWatchFollowsASwappedSymlink(t *testing.T) {
	root := t.TempDir()
	for v := 1; v <= 2; v++ {
		writeFiles(t, filepath.Join(root, "releases", fmt.Sprint(v)), versioned(v))
	}
	dir := filepath.Join(root, "policies")
	if err := os.Symlink(filepath.Join("releases", "1"), dir); err != nil {
		t.Fatal(err)
	}
	_, waitFor := watchedSet(t, dir, nil)

	tmp := filepath.Join(root, "policies.tmp")
	if err := os.Symlink(filepath.Join("releases", "2"), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	waitFor("swapped symlink", "2")
	writeFiles(t, filepath.Join(root, "releases", "2"), versioned(3))
	waitFor("edit behind the swapped symlink", "3")
}

// A mounted Kubernetes ConfigMap: the files are links through ..data,
// itself a link to a timestamped folder that each update replaces.
func TestSetWatchFollowsAConfigMapUpdate(t *testing.T) {
	dir := t.TempDir()
	publish := func(v int) {
		stamp := fmt.Sprintf("..2026_12_07_%d", v)
		writeFiles(t, filepath.Join(dir, stamp), versioned(v))
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(stamp, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if v > 1 {
			if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("..2026_12_07_%d", v-1))); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(1)
	for name := range versioned(1) {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	_, waitFor := watchedSet(t, dir, nil)
	for v := 2; v <= 3; v++ {
		publish(v)
		waitFor("ConfigMap update", fmt.Sprint(v))
	}
}
