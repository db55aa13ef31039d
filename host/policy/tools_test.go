package policy_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sluicehq/sluice/host/policy"
)

// smallPolicy is a clean policy: it compiles strictly and is opa fmt clean.
const smallPolicy = `package sluice.authz

decision := "open" if input.open

else := "closed"
`

const smallTests = `package sluice.authz_test

import data.sluice.authz

test_open if authz.decision == "open" with input as {"open": true}

test_wrong if authz.decision == "open" with input as {"open": false}
`

func TestTestReportsEachTestAndCoverage(t *testing.T) {
	fsys := fstest.MapFS{
		"authz.rego":      {Data: []byte(smallPolicy)},
		"authz_test.rego": {Data: []byte(smallTests)},
	}
	report, err := policy.Test(context.Background(), fsys, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range report.Results {
		if r.Package != "data.sluice.authz_test" || !strings.HasPrefix(r.Location, "authz_test.rego:") {
			t.Errorf("result %+v: want package data.sluice.authz_test at authz_test.rego:<line>", r)
		}
		got[r.Name] = r.Pass()
	}
	if want := map[string]bool{"test_open": true, "test_wrong": false}; !reflect.DeepEqual(got, want) {
		t.Errorf("passed = %v, want %v", got, want)
	}
	if report.Failed() != 1 {
		t.Errorf("Failed() = %d, want 1", report.Failed())
	}
	// Only authz.rego counts, and both of its branches ran.
	if len(report.Files) != 1 || report.Files[0].File != "authz.rego" || report.Coverage != 100 {
		t.Errorf("coverage = %.1f%% over %+v, want 100%% of authz.rego", report.Coverage, report.Files)
	}
}

func TestTestNamesUncoveredLines(t *testing.T) {
	tests := `package sluice.authz_test

import data.sluice.authz

test_open if authz.decision == "open" with input as {"open": true}
`
	fsys := fstest.MapFS{
		"authz.rego":      {Data: []byte(smallPolicy + "\nunused := 1\n")},
		"authz_test.rego": {Data: []byte(tests)},
	}
	report, err := policy.Test(context.Background(), fsys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if report.Failed() != 0 || report.Coverage >= 100 || report.Coverage <= 0 {
		t.Fatalf("failed %d, coverage %.1f%%: want no failure and partial coverage", report.Failed(), report.Coverage)
	}
	uncovered := report.Files[0].Uncovered
	if !reflect.DeepEqual(uncovered, []policy.LineRange{{Start: 5, End: 5}, {Start: 7, End: 7}}) {
		t.Errorf("uncovered = %v, want lines 5 (else) and 7 (unused := 1)", uncovered)
	}
}

func TestTestReadsData(t *testing.T) {
	pol := "package sluice.authz\n\ndecision := data.sluice.answer\n"
	tests := "package sluice.authz_test\n\nimport data.sluice.authz\n\ntest_data if authz.decision == 42\n"
	fsys := fstest.MapFS{"authz.rego": {Data: []byte(pol)}, "authz_test.rego": {Data: []byte(tests)}}
	report, err := policy.Test(context.Background(), fsys, map[string]any{"sluice": map[string]any{"answer": 42}})
	if err != nil {
		t.Fatal(err)
	}
	if report.Failed() != 0 {
		t.Errorf("a test reading data failed: %+v", report.Results)
	}
}

func TestTestErrors(t *testing.T) {
	cases := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"no tests", fstest.MapFS{"authz.rego": {Data: []byte(smallPolicy)}}, "no test_ rules"},
		{"no files", fstest.MapFS{"README.md": {Data: []byte("#")}}, "no .rego files"},
		{"syntax error", fstest.MapFS{"authz_test.rego": {Data: []byte("package x\n\ntest_a if {\n")}}, "authz_test.rego:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := policy.Test(context.Background(), c.fsys, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		// want is where the problems are, as "file:line"; "" for a problem
		// of the whole policy.
		want []string
	}{
		{"clean", map[string]string{"authz.rego": smallPolicy, "authz_test.rego": smallTests}, nil},
		{
			"syntax error",
			map[string]string{"authz.rego": smallPolicy, "helpers.rego": "package helpers\n\nx := {\n"},
			[]string{"helpers.rego:4"},
		},
		{"strict mode", map[string]string{"authz.rego": smallPolicy + "\nf(x) := 1\n"}, []string{"authz.rego:7"}},
		{
			"formatting",
			map[string]string{"authz.rego": strings.Replace(smallPolicy, `:= "closed"`, `:=   "closed"`, 1)},
			[]string{"authz.rego:5"},
		},
		{"no decision", map[string]string{"authz.rego": "package sluice.authz\n\nallow := true\n"}, []string{""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, src := range c.files {
				fsys[name] = &fstest.MapFile{Data: []byte(src)}
			}
			problems, err := policy.Check(fsys)
			if err != nil {
				t.Fatal(err)
			}
			var at []string
			for _, p := range problems {
				if p.Message == "" {
					t.Errorf("problem %+v has no message", p)
				}
				loc := ""
				if p.File != "" {
					loc = fmt.Sprintf("%s:%d", p.File, p.Line)
				}
				if !slices.Contains(at, loc) {
					at = append(at, loc)
				}
			}
			if !slices.Equal(at, c.want) {
				t.Errorf("problems %q, want them at %q", problems, c.want)
			}
		})
	}
}

func TestEvalDecidesAsTheGateway(t *testing.T) {
	data := map[string]any{"sluice": map[string]any{"tiers": tiers()}}
	cases := []struct {
		model    string
		wantCode string
	}{
		{"gpt-4o", "model_not_allowed"},
		// Answered from the derived data, which Eval computes as Load does.
		{"gpt-4o-mini", ""},
	}
	for _, c := range cases {
		input := map[string]any{
			"client":   map[string]any{"id": "billing-bot", "tier": "standard", "department": ""},
			"request":  map[string]any{"model": c.model},
			"findings": []any{},
		}
		got, err := policy.Eval(context.Background(), v2Policy, data, input)
		if err != nil {
			t.Fatalf("%s: %v", c.model, err)
		}
		d, ok := got.(map[string]any)
		if !ok || d["code"] != c.wantCode || d["allowed"] != (c.wantCode == "") {
			t.Errorf("%s: decision %v, want code %q", c.model, got, c.wantCode)
		}
	}
}

func TestEvalReportsMalformedDecision(t *testing.T) {
	fsys := fstest.MapFS{"authz.rego": {Data: []byte(smallPolicy)}}
	got, err := policy.Eval(context.Background(), fsys, nil, map[string]any{"open": true})
	if got != "open" || err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("Eval = %v, %v; want the decision and an error saying it is malformed", got, err)
	}
	_, err = policy.Eval(context.Background(), fstest.MapFS{"authz.rego": {Data: []byte("package sluice.authz\n\ndecision := 1 if input.never\n")}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Errorf("undefined decision: error %v, want it to say undefined", err)
	}
}
