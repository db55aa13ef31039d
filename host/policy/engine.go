// Package policy evaluates Sluice's admission policy: an embedded OPA query,
// prepared once, that turns an authenticated request, its usage and its
// plugin findings into a Decision. The Rego contract (input document, data
// and decision object) is described in policies/README.md.
//
// An Engine is one compiled policy with its data. A Set is what the gateway
// holds: the Engine in force, replaced atomically when the policy folder
// changes and the new files compile and pass their own tests, and an
// optional shadow Engine whose decisions are compared but never enforced.
// Explain tells which rules decided, and a DecisionLog writes decisions as
// JSON lines off the request path.
package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// Query is the rule the gateway evaluates for every admission decision.
const Query = "data.sluice.authz.decision"

// derivedQuery is an optional rule of the policy that depends on data only.
// When the policy defines it, the engine evaluates it whenever data is
// written and stores its value at derivedPath, in the same transaction, so
// that the policy can look up per request what it would otherwise compute
// per request. policies/README.md ("Keeping policies fast") describes it.
const derivedQuery = "data.sluice.authz.derived"

// queryPackage, queryRule and derivedRule split the queries so that Load can
// check which rules exist before the first request finds out.
const (
	queryPackage = "data.sluice.authz"
	queryRule    = "decision"
	derivedRule  = "derived"
)

// derivedPath is where the value of derivedQuery is stored; SetData refuses
// to write there.
var derivedPath = storage.MustParsePath("/sluice/derived")

// noMetrics stops OPA from allocating a fresh metrics registry (and its
// timers) for every evaluation; Sluice does not read them.
var noMetrics = rego.EvalMetrics(metrics.NoOp())

// Engine is a prepared admission policy with its data store. It is safe for
// concurrent use: Decide may run on many goroutines while SetData updates the
// data they read.
type Engine struct {
	opts        options
	sourceFiles []regoFile
	store       storage.Store
	query       rego.PreparedEvalQuery
	// derived is set when the policy defines derivedQuery.
	derived *rego.PreparedEvalQuery
	clients clientCache
	clock   *clock
	// id tells this engine's decisions apart in a Set's decision cache;
	// memo lists the parts of the input its rules read, nil when its
	// decisions must not be memoised (see memo.go).
	id   uint64
	memo memoPaths
	// gen counts data writes, twice each: it is odd while one is under
	// way, so that a decision evaluated across a write is not memoised.
	gen       atomic.Uint64
	revision  string
	files     []string
	usesUsage bool
	// folderData is the document of the policy folder's data files; nil
	// when it has none.
	folderData map[string]any
}

// addDataFiles loads the data files of fsys into e, and counts them in its
// revision and files.
func (e *Engine) addDataFiles(fsys fs.FS, dataFiles []regoFile) error {
	if len(dataFiles) == 0 {
		return nil
	}
	d, err := loadData(fsys)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	e.folderData = d
	e.revision = revision(slices.Concat(e.sourceFiles, dataFiles))
	for _, f := range dataFiles {
		e.files = append(e.files, f.name)
	}
	slices.Sort(e.files)
	return nil
}

// Option configures an Engine.
type Option func(*options)

type options struct {
	loc     *time.Location
	allow   []string
	timeout time.Duration
	headers map[string]*ast.Term
	// headerNames are headers' names, sorted: what Set.Headers gives every
	// request, built once.
	headerNames []string
	// headerList is the list WithHeaders was given, for CheckHeaders.
	headerList []string
	caps       *ast.Capabilities
	// traceTests is WithFailureDetails.
	traceTests bool
}

// newOptions applies opts over the defaults.
func newOptions(opts []Option) options {
	o := options{loc: time.UTC, timeout: DefaultEvalTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.headers == nil {
		o.headers = headerTerms(DefaultHeaders())
	}
	o.headerNames = headerNames(o.headers)
	o.caps = capabilities(o.allow)
	return o
}

// WithTimeZone sets the time zone of input.time (weekday, hour, minute,
// rfc3339), e.g. the result of time.LoadLocation("Europe/Berlin"). The
// default is UTC; nil keeps it.
func WithTimeZone(loc *time.Location) Option {
	return func(o *options) {
		if loc != nil {
			o.loc = loc
		}
	}
}

// Load parses every .rego file in fsys (test files, *_test.rego, and names
// starting with a dot are skipped), compiles them in strict mode as Rego v1,
// and prepares Query once. data is the initial data document, e.g.
// {"sluice": {"tiers": {...}}}; it may be nil. The .json and .yaml files of
// fsys are data too, loaded as opa loads them and merged with data. Parse
// and compile errors name the file, line and problem.
func Load(ctx context.Context, fsys fs.FS, data map[string]any, opts ...Option) (*Engine, error) {
	if fsys == nil {
		return nil, errors.New("policy: load: no policy file system")
	}
	files, err := readRegoFiles(fsys, true)
	if err != nil {
		return nil, fmt.Errorf("policy: load: %w", err)
	}
	if o := newOptions(opts); o.allow != nil {
		if err := CheckAllowedBuiltins(o.allow); err != nil {
			return nil, fmt.Errorf("policy: load: %w", err)
		}
	}
	if err := CheckHeaders(newOptions(opts).headerList); err != nil {
		return nil, fmt.Errorf("policy: load: %w", err)
	}
	dataFiles, err := readDataFiles(fsys)
	if err != nil {
		return nil, fmt.Errorf("policy: load: %w", err)
	}
	e, err := compile(ctx, files, opts)
	if err != nil {
		return nil, err
	}
	if err := e.addDataFiles(fsys, dataFiles); err != nil {
		return nil, err
	}
	merged, err := mergeData(data, e.folderData)
	if err != nil {
		return nil, fmt.Errorf("policy: load data: %w", err)
	}
	if err := e.write(ctx, storage.RootPath, merged); err != nil {
		return nil, fmt.Errorf("policy: load data: %w", err)
	}
	return e, nil
}

// compile builds an engine with no data from files, test files included
// (they count towards the revision but are not compiled).
func compile(ctx context.Context, files []regoFile, opts []Option) (*Engine, error) {
	o := newOptions(opts)
	var policyFiles []regoFile
	for _, f := range files {
		if !isTestFile(f.name) {
			policyFiles = append(policyFiles, f)
		}
	}
	modules, err := parseModules(policyFiles)
	if err != nil {
		return nil, err
	}

	// One compiler serves both queries: preparing with modules would compile
	// them once per query.
	c := newCompiler(o.caps).SetErrorLimit(0)
	if c.Compile(modules); c.Failed() {
		return nil, fmt.Errorf("policy: compile: %w", explainForbidden(c.Errors, o.caps))
	}

	e := &Engine{
		opts:      o,
		store:     inmem.NewWithOpts(inmem.OptReturnASTValuesOnRead(true)),
		clock:     newClock(o.loc),
		revision:  revision(files),
		usesUsage: usesUsage(c.Modules),
		id:        engineIDs.Add(1),
	}
	if paths, ok := inputReads(c.Modules); ok && !slices.ContainsFunc(paths, changesEveryRequest) {
		e.memo = newMemoPaths(paths)
	}
	for _, f := range files {
		e.files = append(e.files, f.name)
	}
	e.sourceFiles = files
	if e.query, err = prepare(ctx, e.store, c, Query); err != nil {
		return nil, err
	}
	if definesRule(slices.Collect(maps.Values(modules)), derivedRule) {
		derived, err := prepare(ctx, e.store, c, derivedQuery)
		if err != nil {
			return nil, err
		}
		e.derived = &derived
	}
	return e, nil
}

// revision identifies a policy set by the names and contents of its files,
// test files included, so that a reload of unchanged files can be told
// apart from a change.
func revision(files []regoFile) string {
	h := sha256.New()
	for _, f := range files {
		// Lengths first, so that no two sets of files hash alike by moving
		// bytes from one name or file to the next.
		fmt.Fprintf(h, "%d:%s\n%d:", len(f.name), f.name, len(f.src))
		h.Write(f.src)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// prepare prepares query against store with the compiled modules of c.
func prepare(ctx context.Context, store storage.Store, c *ast.Compiler, query string) (rego.PreparedEvalQuery, error) {
	pq, err := rego.New(
		rego.Query(query),
		rego.Compiler(c),
		rego.Store(store),
		rego.Strict(true),
		rego.SetRegoVersion(ast.RegoV1),
		// A builtin that fails (a division by zero, a conversion of a
		// string that is no number) is an error, not an undefined
		// expression: an undefined deny rule would let the request through.
		rego.StrictBuiltinErrors(true),
		// Hand results back as AST terms: decodeDecision reads them directly,
		// which saves converting the whole object to map[string]any per request.
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	).PrepareForEval(ctx)
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("policy: compile: %w", err)
	}
	return pq, nil
}

// parseModules parses policy files, reporting every file's errors at once,
// and checks that Query's rule is among them.
func parseModules(files []regoFile) (map[string]*ast.Module, error) {
	if len(files) == 0 {
		return nil, errors.New("policy: load: no .rego files found (test files do not count)")
	}
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
		return nil, fmt.Errorf("policy: parse: %w", errors.Join(errs...))
	}
	if !definesRule(slices.Collect(maps.Values(modules)), queryRule) {
		return nil, fmt.Errorf("policy: load: no rule defines %s", Query)
	}
	return modules, nil
}

// definesRule reports whether a module of package queryPackage defines rule.
func definesRule(modules []*ast.Module, rule string) bool {
	return slices.ContainsFunc(modules, func(m *ast.Module) bool {
		if m.Package.Path.String() != queryPackage {
			return false
		}
		return slices.ContainsFunc(m.Rules, func(r *ast.Rule) bool {
			return r.Head.Ref().String() == rule
		})
	})
}

// Revision identifies the policy files the engine was loaded from: the
// first 12 hex digits of a SHA-256 over their names and contents, test
// files included.
func (e *Engine) Revision() string { return e.revision }

// Files lists the names of the .rego files the engine was loaded from, test
// files included, in lexical order.
func (e *Engine) Files() []string { return slices.Clone(e.files) }

// UsesUsage reports whether any rule of the policy may read input.usage.
// When it is false the gateway can leave Input.Usage nil and save the
// counter lookups. It errs towards true: a rule that reads input whole, or
// with a computed key, counts as reading usage.
func (e *Engine) UsesUsage() bool { return e.usesUsage }

// Decide evaluates the policy for in. An evaluation error, an undefined
// decision, one that does not match the contract, or a decision whose code
// is policy_error (the policy's own way of saying it cannot decide) is
// returned as an *EvalError, never as a zero Decision, so that the caller
// can fail closed. ctx is checked before the evaluation starts; a running
// evaluation is stopped when it takes longer than the engine's time limit
// (WithEvalTimeout).
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	return e.decide(ctx, e.input(&in))
}

// input builds the input document of in for this engine.
func (e *Engine) input(in *Input) ast.Value {
	return in.value(e.clients.term(in.Client), e.clock, e.opts.headers)
}

// decide evaluates the policy for an input built by input.
func (e *Engine) decide(ctx context.Context, input ast.Value, extra ...rego.EvalOption) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, &EvalError{Kind: KindCancelled, Err: err}
	}
	t, err := e.eval(ctx, input, extra...)
	if err != nil {
		return Decision{}, evalError(err, e.opts.timeout)
	}
	d, err := decodeDecision(t.Value)
	if err != nil {
		return Decision{}, &EvalError{Kind: KindMalformed, At: e.blame(ctx, input), Err: err}
	}
	if !d.Allowed && d.Code == codePolicyError {
		return Decision{}, &EvalError{Kind: KindPolicyError, At: e.blame(ctx, input),
			Err: fmt.Errorf("the policy decided %s: %s", codePolicyError, d.Message)}
	}
	return d, nil
}

// eval evaluates Query once, within the engine's time limit, and returns
// its one value.
func (e *Engine) eval(ctx context.Context, input ast.Value, extra ...rego.EvalOption) (*ast.Term, error) {
	opts := []rego.EvalOption{rego.EvalParsedInput(input), noMetrics, noBaseCache,
		rego.EvalExternalCancel(newDeadline(e.opts.timeout))}
	rs, err := e.query.Eval(ctx, append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	return resultTerm(rs)
}

// resultTerm returns the one value of Query in rs.
func resultTerm(rs rego.ResultSet) (*ast.Term, error) {
	switch {
	case len(rs) == 0 || len(rs[0].Expressions) == 0:
		return nil, &EvalError{Kind: KindUndefined, Err: fmt.Errorf("%s is undefined", Query)}
	case len(rs) > 1:
		return nil, &EvalError{Kind: KindUndefined, Err: fmt.Errorf("%s has %d values, want one", Query, len(rs))}
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("policy: %s: unexpected result type %T", Query, rs[0].Expressions[0].Value)
	}
	return t, nil
}

// SetData replaces the data document at path, for example "/sluice/tiers",
// creating missing parents. Decisions evaluated after SetData returns see the
// new value, and the policy's derived data recomputed from it; the query is
// not prepared again. Writing at or under /sluice/derived, which the policy
// computes, is refused.
func (e *Engine) SetData(ctx context.Context, path string, value any) error {
	p, ok := storage.ParsePath(path)
	if !ok || len(p) == 0 {
		return fmt.Errorf("policy: set data: invalid path %q (want e.g. /sluice/tiers)", path)
	}
	if p.HasPrefix(derivedPath) {
		return fmt.Errorf("policy: set data: %s is computed by the policy and cannot be written", path)
	}
	if err := e.write(ctx, p, value); err != nil {
		return fmt.Errorf("policy: set data %s: %w", path, err)
	}
	return nil
}

// write replaces the document at p and recomputes the derived data in the
// same transaction, so that no evaluation sees one without the other.
func (e *Engine) write(ctx context.Context, p storage.Path, value any) error {
	e.gen.Add(1)
	defer e.gen.Add(1)
	return storage.Txn(ctx, e.store, storage.WriteParams, func(txn storage.Transaction) error {
		if len(p) > 0 {
			if err := storage.MakeDir(ctx, e.store, txn, p[:len(p)-1]); err != nil {
				return err
			}
		}
		if err := e.store.Write(ctx, txn, storage.AddOp, p, value); err != nil {
			return err
		}
		return e.writeDerived(ctx, txn)
	})
}

// writeDerived stores the value of derivedQuery at derivedPath, or removes
// what is stored there when the rule is undefined for the new data.
func (e *Engine) writeDerived(ctx context.Context, txn storage.Transaction) error {
	if e.derived == nil {
		return nil
	}
	rs, err := e.derived.Eval(ctx, rego.EvalTransaction(txn), noMetrics)
	if err != nil {
		return fmt.Errorf("evaluate %s: %w", derivedQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		err := e.store.Write(ctx, txn, storage.RemoveOp, derivedPath, nil)
		if storage.IsNotFound(err) {
			return nil
		}
		return err
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return fmt.Errorf("%s: unexpected result type %T", derivedQuery, rs[0].Expressions[0].Value)
	}
	if err := storage.MakeDir(ctx, e.store, txn, derivedPath[:len(derivedPath)-1]); err != nil {
		return err
	}
	return e.store.Write(ctx, txn, storage.AddOp, derivedPath, t.Value)
}

// noBaseCache turns off OPA's per-evaluation cache of documents read from
// the store. It exists to convert JSON documents to AST values once per
// evaluation; Sluice's store holds AST values already, so the cache only
// cost an allocation per path segment read.
var noBaseCache = rego.EvalBaseCache(nullBaseCache{})

type nullBaseCache struct{}

func (nullBaseCache) Get(ast.Ref) ast.Value  { return nil }
func (nullBaseCache) Put(ast.Ref, ast.Value) {}
