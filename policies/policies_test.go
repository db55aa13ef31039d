package policies_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/sluicehq/sluice/policies"
)

// minCoverage is the share of policy lines (tests excluded) that the Rego
// tests must exercise.
const minCoverage = 90.0

// regoFiles returns the name and contents of every .rego file in FS.
func regoFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(policies.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(name) != ".rego" {
			return err
		}
		src, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			return err
		}
		files[name] = src
		return nil
	})
	if err != nil {
		t.Fatalf("reading embedded policies: %v", err)
	}
	if len(files) == 0 {
		t.Fatal("no .rego files embedded")
	}
	return files
}

func TestRegoUnitTests(t *testing.T) {
	ctx := context.Background()
	modules := map[string]*ast.Module{}
	for name, src := range regoFiles(t) {
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		modules[name] = m
	}

	cov := cover.New()
	runner := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithStrict(true).WithDefaultRegoVersion(ast.RegoV1)).
		SetModules(modules).
		SetCoverageQueryTracer(cov).
		CapturePrintOutput(true)
	results, err := runner.RunTests(ctx, nil)
	if err != nil {
		t.Fatalf("running Rego tests: %v", err)
	}

	ran := 0
	for r := range results {
		ran++
		switch {
		case r.Error != nil:
			t.Errorf("%s.%s: error: %v", r.Package, r.Name, r.Error)
		case r.Fail:
			t.Errorf("%s.%s (%s): FAIL%s", r.Package, r.Name, r.Location, failedAt(r))
		case r.Skip:
			t.Logf("%s.%s: skipped", r.Package, r.Name)
		}
	}
	if ran == 0 {
		t.Fatal("no Rego tests ran")
	}
	t.Logf("%d Rego tests ran", ran)

	// Coverage counts the policy only: test files cover themselves trivially.
	report := cov.Report(modules)
	var covered, notCovered int
	for name, fr := range report.Files {
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		covered += fr.CoveredLines
		notCovered += fr.NotCoveredLines
		for _, r := range fr.NotCovered {
			t.Logf("%s: lines %d-%d not covered", name, r.Start.Row, r.End.Row)
		}
	}
	if covered+notCovered == 0 {
		t.Fatal("coverage report is empty")
	}
	pct := 100 * float64(covered) / float64(covered+notCovered)
	t.Logf("policy coverage: %.1f%% (%d of %d lines)", pct, covered, covered+notCovered)
	if pct < minCoverage {
		t.Errorf("policy coverage %.1f%% is below %.0f%%", pct, minCoverage)
	}
}

func failedAt(r *tester.Result) string {
	if r.FailedAt == nil {
		return ""
	}
	return fmt.Sprintf(" at %s: %s", r.FailedAt.Location, r.FailedAt)
}

func TestRegoIsFormatted(t *testing.T) {
	for name, src := range regoFiles(t) {
		got, err := format.Source(name, src)
		if err != nil {
			t.Errorf("opa fmt %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%s is not opa fmt clean; run opa fmt -w policies/", name)
		}
	}
}
