package policies_test

import (
	"context"
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
