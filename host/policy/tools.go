package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// This file holds the policy author's tools: running the Rego tests,
// checking a policy as strictly as Load does, and evaluating one input. The
// sluice policy command and the tests of the shipped policies use them.

// TestReport is the outcome of running a policy's Rego tests.
type TestReport struct {
	// Results has one entry per test_ rule, in the order they ran.
	Results []TestResult
	// Coverage is the percentage of the policy's lines (test files excluded)
	// that the tests evaluated; 0 when there is nothing to cover.
	Coverage float64
	// Files details the coverage per policy file, sorted by name.
	Files []FileCoverage
}

// Failed reports how many tests failed or could not be evaluated.
func (r TestReport) Failed() int {
	n := 0
	for _, t := range r.Results {
		if t.Fail || t.Err != nil {
			n++
		}
	}
	return n
}

// TestResult is the outcome of one test_ rule.
type TestResult struct {
	// Package is the test's package, e.g. "data.sluice.authz_test".
	Package string
	Name    string
	// Location is the file and line of the rule, e.g. "authz_test.rego:12".
	Location string
	// Fail is set when the rule was undefined or false.
	Fail bool
	// Skip is set for tests named todo_test_.
	Skip bool
	// Err is set when the test could not be evaluated (a runtime error such
	// as a conflict or a timeout).
	Err error
	// Output is what the test printed with print().
	Output   []byte
	Duration time.Duration
	// Failure, with WithFailureDetails, shows where a failing test failed:
	// "file:line:" and the expression that did not hold, with the values of
	// its variables, as opa test --var-values prints it.
	Failure string
}

// WithFailureDetails makes Test trace every test, as opa test -v does, so
// that TestResult.Failure shows the expression that failed and its
// variables' values. Tracing costs several times the tests' run time.
func WithFailureDetails() Option {
	return func(o *options) { o.traceTests = true }
}

// failure renders the last expression that failed in trace, skipping the
// every expressions whose body holds the real failure.
func failure(trace []*topdown.Event) string {
	for _, e := range slices.Backward(trace) {
		if e.Op != topdown.FailOp || e.Location == nil || e.QueryID == 0 {
			continue
		}
		if expr, ok := e.Node.(*ast.Expr); ok {
			if _, every := expr.Terms.(*ast.Every); every {
				continue
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s:%d:\n", e.Location.File, e.Location.Row)
		if err := topdown.PrettyEvent(&b, e, topdown.PrettyEventOpts{PrettyVars: true}); err != nil {
			return ""
		}
		return b.String()
	}
	return ""
}

// Pass reports whether the test ran and held.
func (r TestResult) Pass() bool { return !r.Fail && !r.Skip && r.Err == nil }

// FileCoverage is the coverage of one policy file.
type FileCoverage struct {
	File                string
	Covered, NotCovered int
	// Uncovered lists the line ranges no test evaluated.
	Uncovered []LineRange
}

// LineRange is an inclusive range of lines, counted from 1.
type LineRange struct{ Start, End int }

// Problem is one error found by Check, located in a file of the policy.
type Problem struct {
	// File is the name within the policy file system; "" for a problem of
	// the policy as a whole, such as a missing decision rule.
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
	// Warning marks what does not keep the policy from loading but most
	// likely does not do what its author meant.
	Warning bool `json:"warning,omitempty"`
}

// String formats p as "file:line: message", the form editors jump to,
// with "warning: " before the message of a warning.
func (p Problem) String() string {
	msg := p.Message
	if p.Warning {
		msg = "warning: " + msg
	}
	if p.File == "" {
		return msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, msg)
}

// Errors counts the problems of problems that are not warnings.
func Errors(problems []Problem) int {
	n := 0
	for _, p := range problems {
		if !p.Warning {
			n++
		}
	}
	return n
}

// headersRef is input.request.headers.
var headersRef = ast.MustParseRef("input.request.headers")

// headerWarnings warns of every constant header name that the policy
// files (not the tests, whose with input as may set anything) read under
// input.request.headers but the gateway never gives them. Modules are
// compiled, so imports and aliases are resolved to full references.
func headerWarnings(modules map[string]*ast.Module, headers map[string]*ast.Term) []Problem {
	var out []Problem
	for _, name := range slices.Sorted(maps.Keys(modules)) {
		if isTestFile(name) {
			continue
		}
		ast.WalkRefs(modules[name], func(r ast.Ref) bool {
			if len(r) <= len(headersRef) || !r.HasPrefix(headersRef) {
				return false
			}
			key, ok := r[len(headersRef)].Value.(ast.String)
			if !ok {
				return false
			}
			if _, given := headers[string(key)]; given {
				return false
			}
			p := Problem{File: name, Warning: true, Message: fmt.Sprintf(
				"input.request.headers[%q] is never set: the policy sees only %s (policy.headers)",
				string(key), strings.Join(headerNames(headers), ", "))}
			if loc := r[0].Location; loc != nil {
				p.Line = loc.Row
			}
			out = append(out, p)
			return false
		})
	}
	return out
}

// Test runs every test_ rule of the .rego files in fsys, compiled as Load
// compiles them (Rego v1, strict), and measures the coverage of the files
// that are not *_test.rego. data, which may be nil, is the base data
// document, merged with the .json and .yaml files of fsys as opa test
// FOLDER reads them. Unlike Load, Test does not
// compute data.sluice.derived from it: tests that replace data.sluice.tiers
// with "with" would otherwise be answered from derived data that no longer
// matches. An error means the tests could not run (unreadable or
// uncompilable files, no tests); failing tests are in the report.
//
// opts are those of Load that matter to tests: the builtins allowed
// (WithAllowedBuiltins) and the time limit (WithEvalTimeout). A test_ rule
// may evaluate the decision many times (a table of cases, every), so
// each test may take testBudget times the limit of one evaluation.
func Test(ctx context.Context, fsys fs.FS, data map[string]any, opts ...Option) (TestReport, error) {
	files, err := readRegoFiles(fsys, true)
	if err != nil {
		return TestReport{}, fmt.Errorf("policy: test: %w", err)
	}
	folderData, err := loadData(fsys)
	if err != nil {
		return TestReport{}, fmt.Errorf("policy: test: %w", err)
	}
	if data, err = mergeData(data, folderData); err != nil {
		return TestReport{}, fmt.Errorf("policy: test: %w", err)
	}
	return runTests(ctx, files, data, true, newOptions(opts))
}

// errNoTests is runTests' error when the files hold no test_ rule.
var errNoTests = errors.New("policy: test: no test_ rules found")

// runTests runs the test_ rules of files, measuring coverage if asked.
func runTests(ctx context.Context, files []regoFile, data map[string]any, coverage bool, o options) (TestReport, error) {
	modules := make(map[string]*ast.Module, len(files))
	var errs []error
	for _, f := range files {
		m, err := parseModule(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		modules[f.name] = m
	}
	if len(errs) > 0 {
		return TestReport{}, fmt.Errorf("policy: test: parse: %w", errors.Join(errs...))
	}

	store := inmem.New()
	if data != nil {
		store = inmem.NewFromObject(data)
	}
	cov := cover.New()
	runner := tester.NewRunner().
		// A compiler of our own replaces the runner's, so print() has to be
		// switched back on for the tests' output to be captured.
		SetCompiler(newCompiler(o.caps).WithEnablePrintStatements(true)).
		SetDefaultRegoVersion(ast.RegoV1).
		// As in the gateway: a builtin error fails the test instead of
		// making its expression undefined.
		RaiseBuiltinErrors(true).
		SetTimeout(o.timeout * testBudget).
		EnableTracing(o.traceTests).
		SetModules(modules).
		SetStore(store).
		CapturePrintOutput(true)
	if coverage {
		runner = runner.SetCoverageQueryTracer(cov)
	}
	results, err := runner.RunTests(ctx, nil)
	if err != nil {
		var astErrs ast.Errors
		if errors.As(err, &astErrs) {
			err = explainForbidden(astErrs, o.caps)
		}
		return TestReport{}, fmt.Errorf("policy: test: %w", err)
	}

	var report TestReport
	for r := range results {
		tr := TestResult{
			Package:  r.Package,
			Name:     r.Name,
			Fail:     r.Fail,
			Skip:     r.Skip,
			Err:      r.Error,
			Output:   r.Output,
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.Location = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		}
		if r.Fail && o.traceTests {
			tr.Failure = failure(r.Trace)
		}
		report.Results = append(report.Results, tr)
	}
	if len(report.Results) == 0 {
		return TestReport{}, errNoTests
	}
	if !coverage {
		return report, nil
	}

	// Coverage counts the policy only: test files cover themselves trivially.
	cr := cov.Report(modules)
	var covered, notCovered int
	for _, f := range files {
		fr, ok := cr.Files[f.name]
		if !ok || isTestFile(f.name) {
			continue
		}
		fc := FileCoverage{File: f.name, Covered: fr.CoveredLines, NotCovered: fr.NotCoveredLines}
		for _, r := range fr.NotCovered {
			fc.Uncovered = addRange(fc.Uncovered, LineRange{Start: r.Start.Row, End: r.End.Row})
		}
		report.Files = append(report.Files, fc)
		covered += fc.Covered
		notCovered += fc.NotCovered
	}
	if covered+notCovered > 0 {
		report.Coverage = 100 * float64(covered) / float64(covered+notCovered)
	}
	return report, nil
}

// Check reports what would keep the .rego files of fsys from loading, or
// from passing review: parse and strict compile errors (Rego v1, test
// files included), a missing decision rule, and files that opa fmt would
// change; and, as warnings, rules that read a request header the policy is
// not given (WithHeaders), which would never be set. The error is for files that cannot be read; an empty list means
// the policy is clean.
func Check(fsys fs.FS, opts ...Option) ([]Problem, error) {
	o := newOptions(opts)
	files, err := readRegoFiles(fsys, true)
	if err != nil {
		return nil, fmt.Errorf("policy: check: %w", err)
	}
	var (
		problems []Problem
		modules  = make(map[string]*ast.Module, len(files))
		policy   []*ast.Module
	)
	for _, f := range files {
		m, err := parseModule(f)
		if err != nil {
			problems = append(problems, problemsOf(f.name, err)...)
			continue
		}
		modules[f.name] = m
		if !isTestFile(f.name) {
			policy = append(policy, m)
		}
		if p, ok := formatProblem(f); ok {
			problems = append(problems, p)
		}
	}
	// Compiling files that did not parse would only repeat their errors as
	// undefined references.
	if len(modules) == len(files) {
		c := newCompiler(o.caps).SetErrorLimit(0)
		if c.Compile(modules); c.Failed() {
			problems = append(problems, problemsOf("", explainForbidden(c.Errors, o.caps))...)
		} else {
			problems = append(problems, headerWarnings(c.Modules, o.headers)...)
		}
	}
	if len(modules) == len(files) && !definesRule(policy, queryRule) {
		problems = append(problems, Problem{Message: fmt.Sprintf("no rule defines %s (test files do not count)", Query)})
	}
	return problems, nil
}

// Eval evaluates Query for input against the policy in fsys, loaded as the
// gateway loads it: data is written the same way, so that the policy's
// derived data is computed, e.g. {"sluice": {"tiers": ...}}. It returns the
// decision as a JSON-like value. A decision that the gateway would refuse
// (a missing field, a wrong type) is returned together with an error that
// says why; an undefined decision gives only the error.
func Eval(ctx context.Context, fsys fs.FS, data, input map[string]any, opts ...Option) (any, error) {
	e, err := Load(ctx, fsys, data, opts...)
	if err != nil {
		return nil, err
	}
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, fmt.Errorf("policy: input: %w", err)
	}
	t, err := e.eval(ctx, value)
	if err != nil {
		return nil, evalError(err, e.opts.timeout)
	}
	decision, err := ast.JSON(t.Value)
	if err != nil {
		return nil, fmt.Errorf("policy: %s: %w", Query, err)
	}
	d, err := decodeDecision(t.Value)
	if err != nil {
		return decision, &EvalError{Kind: KindMalformed, At: e.blame(ctx, value), Err: err}
	}
	if !d.Allowed && d.Code == codePolicyError {
		return decision, &EvalError{Kind: KindPolicyError, At: e.blame(ctx, value),
			Err: fmt.Errorf("the policy decided %s: %s", codePolicyError, d.Message)}
	}
	return decision, nil
}

// addRange appends r to ranges sorted by start, merging it with the last
// range when they overlap or touch: OPA reports a line once per expression
// evaluated there.
func addRange(ranges []LineRange, r LineRange) []LineRange {
	if n := len(ranges); n > 0 && r.Start <= ranges[n-1].End+1 {
		ranges[n-1].End = max(ranges[n-1].End, r.End)
		return ranges
	}
	return append(ranges, r)
}

// newCompiler is the compiler Load's strictness amounts to, for the tools
// that compile without preparing a query; caps are the builtins allowed.
func newCompiler(caps *ast.Capabilities) *ast.Compiler {
	return ast.NewCompiler().WithStrict(true).WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(caps)
}

// regoFile is one policy file as read from the policy file system.
type regoFile struct {
	name string
	src  []byte
}

// readRegoFiles reads the .rego files of fsys in lexical order, the
// *_test.rego files only if tests is set.
func readRegoFiles(fsys fs.FS, tests bool) ([]regoFile, error) {
	if fsys == nil {
		return nil, errors.New("no policy file system")
	}
	files, err := readFiles(fsys, func(name string) bool {
		return path.Ext(name) == ".rego" && (tests || !isTestFile(name))
	})
	if err != nil {
		return nil, fmt.Errorf("read policies: %w", err)
	}
	if len(files) == 0 {
		return nil, errors.New("no .rego files found")
	}
	return files, nil
}

// readFiles reads the files of fsys whose names keep accepts, in lexical
// order. Hidden names are editors' and tools' business and are skipped: lock
// files such as .#authz.rego, and the ..data folders of a mounted Kubernetes
// ConfigMap, which would otherwise load every file twice.
func readFiles(fsys fs.FS, keep func(name string) bool) ([]regoFile, error) {
	var files []regoFile
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !keep(name) {
			return nil
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		files = append(files, regoFile{name: name, src: src})
		return nil
	})
	return files, err
}

func isTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

func parseModule(f regoFile) (*ast.Module, error) {
	return ast.ParseModuleWithOpts(f.name, string(f.src), ast.ParserOptions{RegoVersion: ast.RegoV1})
}

// problemsOf turns OPA's errors into problems; file names the file when the
// errors carry no location.
func problemsOf(file string, err error) []Problem {
	// The errors of several files come joined: each may hold its own.
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []Problem
		for _, e := range joined.Unwrap() {
			out = append(out, problemsOf(file, e)...)
		}
		return out
	}
	var astErrs ast.Errors
	if !errors.As(err, &astErrs) {
		return []Problem{{File: file, Message: err.Error()}}
	}
	out := make([]Problem, 0, len(astErrs))
	for _, e := range astErrs {
		p := Problem{File: file, Message: e.Message}
		if e.Location != nil {
			p.File, p.Line = e.Location.File, e.Location.Row
		}
		out = append(out, p)
	}
	return out
}

// formatProblem reports f if opa fmt would change it, at the first line it
// would change.
func formatProblem(f regoFile) (Problem, bool) {
	got, err := format.SourceWithOpts(f.name, f.src, format.Opts{RegoVersion: ast.RegoV1})
	if err != nil {
		return Problem{File: f.name, Line: 1, Message: fmt.Sprintf("opa fmt: %v", err)}, true
	}
	if bytes.Equal(got, f.src) {
		return Problem{}, false
	}
	line := 1
	for i := 0; i < len(got) && i < len(f.src) && got[i] == f.src[i]; i++ {
		if got[i] == '\n' {
			line++
		}
	}
	return Problem{File: f.name, Line: line, Message: "not opa fmt clean; run opa fmt -w"}, true
}
