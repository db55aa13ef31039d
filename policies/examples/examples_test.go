// Package examples_test runs each example policy the way it is meant to be
// used: copied next to the default policy's authz.rego.
package examples_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"testing"
	"testing/fstest"

	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/policies"
)

// minCoverage is the share of an example's own lines its tests must
// exercise.
const minCoverage = 90.0

// withDefault returns the default policy (authz.rego, without its tests) and
// the files of the example folder dir side by side, as a copy of the example
// into a policy folder would place them.
func withDefault(t *testing.T, dir string) fstest.MapFS {
	t.Helper()
	authz, err := fs.ReadFile(policies.FS, "authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"authz.rego": {Data: authz}}
	if dir == "" {
		return fsys
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".rego" {
			continue
		}
		src, err := os.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fsys[e.Name()] = &fstest.MapFile{Data: src}
	}
	return fsys
}

// exampleDirs lists the example folders.
func exampleDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 0 {
		t.Fatal("no example folders found")
	}
	return dirs
}

// TestExamples runs each example's Rego tests beside the default policy,
// holds the example's own file to the coverage the default policy keeps,
// and to what sluice policy check asks.
func TestExamples(t *testing.T) {
	for _, dir := range exampleDirs(t) {
		t.Run(dir, func(t *testing.T) {
			fsys := withDefault(t, dir)
			problems, err := policy.Check(fsys)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("check: %s", p)
			}

			report, err := policy.Test(context.Background(), fsys, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range report.Results {
				if !r.Pass() {
					t.Errorf("%s.%s (%s): fail=%v skip=%v err=%v\n%s", r.Package, r.Name, r.Location, r.Fail, r.Skip, r.Err, r.Output)
				}
			}
			file := dir + ".rego"
			found := false
			for _, f := range report.Files {
				if f.File != file {
					continue
				}
				found = true
				coverage := 100 * float64(f.Covered) / float64(f.Covered+f.NotCovered)
				if coverage < minCoverage {
					t.Errorf("%s: coverage %.1f%% is below %.0f%%; lines not covered: %v", file, coverage, minCoverage, f.Uncovered)
				}
			}
			if !found {
				t.Errorf("no coverage for %s: an example folder holds <folder>.rego and its tests", file)
			}
		})
	}
}

// request describes an input document; zero fields take the values of an
// ordinary chat request on a Tuesday morning.
type request struct {
	department, tier, model string
	maxTokens, promptTokens int
	weekday                 string
	hour                    int
	departmentSpend         float64
	findings                []string
	labels                  map[string]string
}

func (r request) input() map[string]any {
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	orInt := func(n, def int) int {
		if n == 0 {
			return def
		}
		return n
	}
	findings := []any{}
	for _, f := range r.findings {
		findings = append(findings, map[string]any{"plugin": "pii", "type": f, "count": 1, "score": 0.9, "messages": []any{0}})
	}
	labels := map[string]any{}
	for k, v := range r.labels {
		labels[k] = v
	}
	return map[string]any{
		"client": map[string]any{"id": "app", "department": or(r.department, "finance"), "tier": or(r.tier, "standard"), "labels": labels},
		"request": map[string]any{
			"method": "POST", "path": "/v1/chat/completions", "model": or(r.model, "gpt-4o-mini"), "stream": false,
			"max_tokens": orInt(r.maxTokens, 256), "prompt_tokens": orInt(r.promptTokens, 40), "message_count": 1,
			"headers": map[string]any{},
		},
		"usage": map[string]any{
			"client":     map[string]any{"requests_minute": 1, "tokens_minute": 100, "tokens_today": 1000, "tokens_month": 10000, "spend_month_usd": 0},
			"department": map[string]any{"requests_minute": 1, "tokens_minute": 100, "tokens_today": 1000, "tokens_month": 10000, "spend_month_usd": r.departmentSpend},
		},
		"findings": findings,
		"time": map[string]any{
			"unix": 1795000000, "rfc3339": "2026-11-17T10:00:00Z", "zone": "UTC",
			"weekday": or(r.weekday, "Tuesday"), "hour": orInt(r.hour, 10), "minute": 0,
		},
	}
}

// gatewayData is the data the gateway writes, as Eval writes it: the
// engine computes data.sluice.derived from it, so that the first pass is
// answered the fast way wherever the policy lets it.
var gatewayData = map[string]any{"sluice": map[string]any{
	"tiers": map[string]any{
		"standard": map[string]any{
			"rpm": 60, "tpm": 100000, "daily_tokens": 1000000, "models": []any{"*"},
			"pii_detection": true, "content_filter": true, "redact": []any{},
		},
		"lenient": map[string]any{"rpm": 60, "models": []any{"*"}, "pii_detection": true, "redact": []any{"JWT"}},
	},
	"departments": map[string]any{"labs": map[string]any{"monthly_spend_usd": 500}},
}}

// TestExamplesChangeOutcomes evaluates, through the engine and with the
// derived data the gateway has, a request that each example decides
// otherwise than the default policy alone.
func TestExamplesChangeOutcomes(t *testing.T) {
	for _, tc := range []struct {
		example string
		req     request
		// before and after are fields of the decision without and with the
		// example.
		before, after map[string]any
	}{
		{
			"business_hours", request{department: "support", weekday: "Sunday", hour: 3},
			map[string]any{"allowed": true},
			map[string]any{"allowed": false, "http_status": 403, "code": "outside_business_hours"},
		},
		{
			"department_models", request{department: "research", model: "gpt-4o"},
			map[string]any{"allowed": true},
			map[string]any{"allowed": false, "code": "model_not_allowed"},
		},
		{
			"model_token_cap", request{model: "o1", maxTokens: 10000},
			map[string]any{"allowed": true},
			map[string]any{"allowed": false, "http_status": 400, "code": "max_tokens_too_large"},
		},
		{
			"model_token_cap", request{model: "o1", maxTokens: 1000},
			map[string]any{"allowed": true, "limits": map[string]any{"rpm": 60, "tpm": 100000, "daily_tokens": 1000000, "monthly_tokens": 0, "monthly_spend_usd": 0}},
			map[string]any{"allowed": true, "limits": map[string]any{"rpm": 60, "tpm": 20000, "daily_tokens": 1000000, "monthly_tokens": 0, "monthly_spend_usd": 0}},
		},
		{
			"secrets_and_emails", request{department: "sales", findings: []string{"EMAIL"}},
			map[string]any{"allowed": false, "code": "pii_detected"},
			map[string]any{"allowed": true, "redact": []any{"EMAIL"}},
		},
		{
			"secrets_and_emails", request{tier: "lenient", findings: []string{"JWT"}},
			map[string]any{"allowed": true, "redact": []any{"JWT"}},
			map[string]any{"allowed": false, "code": "pii_detected"},
		},
		{
			"long_prompts", request{promptTokens: 9000},
			map[string]any{"allowed": true},
			map[string]any{"allowed": false, "code": "prompt_too_long"},
		},
		{
			"long_prompts", request{promptTokens: 9000, tier: "lenient", labels: map[string]string{"long_prompts": "allowed"}, findings: []string{"JWT"}},
			map[string]any{"allowed": true, "redact": []any{"JWT"}},
			map[string]any{"allowed": false, "code": "pii_detected"},
		},
		{
			"budget_guard", request{department: "labs", model: "o1", departmentSpend: 450},
			map[string]any{"allowed": true},
			map[string]any{"allowed": false, "http_status": 429, "code": "budget_nearly_exhausted"},
		},
	} {
		t.Run(tc.example, func(t *testing.T) {
			for _, side := range []struct {
				dir  string
				want map[string]any
			}{{"", tc.before}, {tc.example, tc.after}} {
				got, err := policy.Eval(context.Background(), withDefault(t, side.dir), gatewayData, tc.req.input())
				if err != nil {
					t.Fatalf("Eval with %q: %v", side.dir, err)
				}
				decision, ok := got.(map[string]any)
				if !ok {
					t.Fatalf("Eval with %q = %T, want an object", side.dir, got)
				}
				for field, want := range side.want {
					if g, w := jsonOf(t, decision[field]), jsonOf(t, want); g != w {
						t.Errorf("with %q: %s = %s, want %s", side.dir, field, g, w)
					}
				}
			}
		})
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
