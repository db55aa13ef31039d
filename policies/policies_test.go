package policies_test

import (
	"context"
	"os"
	"testing"

	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/policies"
)

// minCoverage is the share of policy lines (tests excluded) that the Rego
// tests must exercise.
const minCoverage = 90.0

// TestRegoUnitTests runs the shipped policy's Rego tests the way
// `sluice policy test` does, and holds its coverage up.
func TestRegoUnitTests(t *testing.T) {
	report, err := policy.Test(context.Background(), policies.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range report.Results {
		switch {
		case r.Err != nil:
			t.Errorf("%s.%s: error: %v", r.Package, r.Name, r.Err)
		case r.Fail:
			t.Errorf("%s.%s (%s): FAIL\n%s", r.Package, r.Name, r.Location, r.Output)
		case r.Skip:
			t.Logf("%s.%s: skipped", r.Package, r.Name)
		}
	}
	t.Logf("%d Rego tests ran", len(report.Results))
	for _, f := range report.Files {
		for _, r := range f.Uncovered {
			t.Logf("%s: lines %d-%d not covered", f.File, r.Start, r.End)
		}
	}
	t.Logf("policy coverage: %.1f%%", report.Coverage)
	if report.Coverage < minCoverage {
		t.Errorf("policy coverage %.1f%% is below %.0f%%", report.Coverage, minCoverage)
	}
}

// TestRegoIsClean holds the shipped policy to what `sluice policy check`
// asks of any policy: a strict Rego v1 compile and opa fmt formatting.
func TestRegoIsClean(t *testing.T) {
	problems, err := policy.Check(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s (run opa fmt -w policies/ for formatting)", p)
	}
}

// TestWholeFolder holds this folder as a whole, examples/ included, to what
// sluice policy check and sluice policy test ask of it: the examples are
// written so that all of them can be loaded together with the default
// policy and every test still passes.
func TestWholeFolder(t *testing.T) {
	fsys := os.DirFS(".")
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
	t.Logf("%d Rego tests ran, coverage %.1f%%", len(report.Results), report.Coverage)
}

// TestDefaultPolicyReadsNoUsage keeps the default policy from costing the
// gateway a counter lookup per request: it fills input.usage only for
// policies that read it.
func TestDefaultPolicyReadsNoUsage(t *testing.T) {
	e, err := policy.Load(context.Background(), policies.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.UsesUsage() {
		t.Error("the default policy reads input.usage")
	}
}
