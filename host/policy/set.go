package policy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Source is where a policy set is read from: a folder on disk or an OPA
// bundle file, which Set.Watch follows, or a file system such as
// policies.FS, which is loaded but never watched.
type Source struct {
	// BundleURL is an OPA bundle served over HTTP (a bundle server, or any
	// web server), downloaded when the set loads and reloads, and by
	// Set.Poll; it wins over Bundle, Dir and FS.
	BundleURL string
	// Bundle is an OPA bundle file (.tar.gz, as opa build writes it); it
	// wins over Dir and FS. Its .rego files are the set, its data is data
	// as a folder's data files are.
	Bundle string
	// Verify, if set, requires the bundle to be signed with its key; an
	// unsigned or badly signed bundle is refused like a failing test.
	Verify *BundleVerification
	// Dir is a folder of .rego files; it wins over FS.
	Dir string
	// FS is read when Bundle and Dir are "".
	FS fs.FS
}

func (s Source) isZero() bool {
	return s.BundleURL == "" && s.Bundle == "" && s.Dir == "" && s.FS == nil
}

// open returns the file system the set is read from; a bundle is read,
// and verified, whole.
func (s Source) open() (fs.FS, error) {
	switch {
	case s.Bundle != "":
		return readBundleFile(s.Bundle, s.Verify)
	case s.Dir != "":
		return os.DirFS(s.Dir), nil
	}
	return s.FS, nil
}

// watched is the path Watch follows: the folder, or the bundle file.
func (s Source) watched() string {
	if s.BundleURL != "" {
		return ""
	}
	if s.Bundle != "" {
		return s.Bundle
	}
	return s.Dir
}

// String names the source in status and errors: the folder, "bundle "
// and the bundle file, or "embedded".
func (s Source) String() string {
	switch {
	case s.BundleURL != "":
		return "bundle " + s.BundleURL
	case s.Bundle != "":
		return "bundle " + s.Bundle
	case s.Dir != "":
		return s.Dir
	}
	return "embedded"
}

// SetConfig configures a Set.
type SetConfig struct {
	// Policies is the enforced policy set. Required.
	Policies Source
	// Shadow, if set, is evaluated beside Policies on every decision and
	// compared with it, never enforced.
	Shadow Source
	// Data is the initial data document, e.g. {"sluice": {"tiers": ...}}.
	Data map[string]any
	// TimeZone is the zone of input.time; nil means UTC.
	TimeZone *time.Location
	// AllowBuiltins lets policies call builtins refused by default
	// (WithAllowedBuiltins); policy.allow_builtins in the configuration.
	AllowBuiltins []string
	// EvalTimeout bounds each evaluation, and each test_ rule a reload runs
	// (WithEvalTimeout); 0 means DefaultEvalTimeout.
	EvalTimeout time.Duration
	// Headers are the request headers the policies see (WithHeaders); nil
	// means DefaultHeaders.
	Headers []string
	// HTTPClient downloads bundles from a Source.BundleURL; nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// Reloaded, if set, is called after every reload of either set, from
	// Reload or Watch, with the set's name ("enforced" or "shadow") and the
	// error that kept it out (nil when the reload took effect or found
	// nothing changed). It runs on the reloading goroutine.
	Reloaded func(set string, err error)
	// DecisionCache is how many decisions the Set keeps to answer a repeat
	// of the parts of an input the enforced rules read without evaluating
	// (see memo.go); 0 means DefaultDecisionCache, a negative number keeps
	// none. policy.decision_cache in the configuration.
	DecisionCache int
	// ShadowQueue bounds the shadow evaluations waiting for the shadow
	// goroutine; 0 means DefaultShadowQueue. A decision that finds it full
	// is not shadowed, and is counted in Status.ShadowDropped.
	ShadowQueue int
	// ShadowDone, if set, is called on the shadow goroutine with each
	// decision the shadow set has evaluated: r carries the enforced
	// decision and r.Shadow the shadow's, err the enforced set's error,
	// requestID the Input's. Logging disagreements and writing the
	// decision, which the caller of Decide leaves to it (Result.ShadowQueued),
	// are its job.
	ShadowDone func(requestID string, r Result, err error)
	// Rewatched, if set, is called by Watch when a policy folder, or the
	// link to it, was replaced and Watch has moved its watch to what dir
	// leads to now; err says why it could not (the folder is gone: Watch
	// tries again when it comes back), or, at the start, that the folder's
	// parent cannot be watched. It runs on the watching goroutine.
	Rewatched func(dir string, err error)
}

// Set is the policy in force, reloadable while requests are decided: an
// enforced Engine, an optional shadow Engine, and the data both read. A
// reload is all or nothing: the new files are parsed, compiled strictly,
// their test_ rules run, and the data copied in before the new engine
// replaces the old one in a single atomic store, so a decision sees either
// set whole. A reload that fails at any step leaves the last good set in
// force and is reported in Status.
//
// A Set is safe for concurrent use.
type Set struct {
	cfg      SetConfig
	enforced *slot
	shadow   *slot // nil without a shadow set
	// dataMu orders data writes and swaps: a write reaches the engine in
	// force, and a new engine copies the data of the engine it replaces, so
	// no write can fall between the copy and the swap.
	dataMu sync.Mutex
	// reloadMu keeps Watch, SIGHUP and the admin call from reloading at once.
	reloadMu sync.Mutex
	// data is the data document the gateway wrote (SetConfig.Data, then
	// SetData), without any folder's data files; guarded by dataMu.
	data map[string]any

	disagreements atomic.Uint64
	shadowErrors  atomic.Uint64
	shadowDropped atomic.Uint64

	// memo keeps enforced decisions; nil when off.
	memo *decisionMemo
	// shadowJobs feeds the shadow goroutine; nil without a shadow set.
	// closeMu guards closed against Decide racing Close.
	shadowJobs chan shadowJob
	shadowDone chan struct{}
	closeMu    sync.RWMutex
	closed     bool
}

// DefaultShadowQueue is how many shadow evaluations may wait unless
// SetConfig.ShadowQueue says otherwise.
const DefaultShadowQueue = 1024

// shadowJob is one decision for the shadow set to evaluate.
type shadowJob struct {
	requestID string
	engine    *Engine
	r         Result
	err       error
}

// slot holds one policy set: its engine and its reload record.
type slot struct {
	name   string
	src    Source
	engine atomic.Pointer[Engine]
	// remote is the bundle last downloaded, for a BundleURL source.
	remote remoteBundle

	mu     sync.Mutex // guards status
	status SetStatus
}

// Status is the state of a Set, for the admin API and metrics.
type Status struct {
	Enforced SetStatus  `json:"enforced"`
	Shadow   *SetStatus `json:"shadow,omitempty"`
	// Disagreements counts decisions where the shadow set decided otherwise
	// than the enforced one (see Set.Decide).
	Disagreements uint64 `json:"disagreements"`
	// ShadowErrors counts shadow evaluations that failed.
	ShadowErrors uint64 `json:"shadow_errors"`
	// ShadowDropped counts decisions left unshadowed because the shadow
	// set could not keep up (SetConfig.ShadowQueue).
	ShadowDropped uint64 `json:"shadow_dropped"`
	// CacheHits and CacheMisses count the enforced decisions answered from
	// the decision cache and those evaluated with a key that missed.
	CacheHits   uint64 `json:"decision_cache_hits"`
	CacheMisses uint64 `json:"decision_cache_misses"`
}

// SetStatus is the state of one policy set.
type SetStatus struct {
	// Source is the folder, or "embedded".
	Source string `json:"source"`
	// Revision, LoadedAt and Files describe the files in force.
	Revision string    `json:"revision"`
	LoadedAt time.Time `json:"loaded_at"`
	Files    []string  `json:"files"`
	// Tests is how many test_ rules the files in force passed.
	Tests     int  `json:"tests"`
	UsesUsage bool `json:"uses_usage"`
	// ReloadsOK and ReloadsFailed count reloads since the set was created,
	// the first load not included.
	ReloadsOK     uint64 `json:"reloads_ok"`
	ReloadsFailed uint64 `json:"reloads_failed"`
	// LastError is the last failed reload, cleared by the next good one.
	LastError *ReloadError `json:"last_error,omitempty"`
}

// ReloadError is why a policy set was not loaded.
type ReloadError struct {
	At time.Time `json:"at"`
	// Revision is that of the files that failed; "" when they could not be
	// read.
	Revision string `json:"revision,omitempty"`
	// Problems locate the errors: parse and compile errors, failing tests
	// (at the test rule), a decision rule missing.
	Problems []Problem `json:"problems"`
}

// Error lists the problems as "file:line: message", one per line.
func (e *ReloadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// NewSet loads cfg.Policies, and cfg.Shadow if set, as Reload would: a
// set whose files do not compile or whose test_ rules fail is an error.
func NewSet(ctx context.Context, cfg SetConfig) (*Set, error) {
	if cfg.Policies.isZero() {
		return nil, errors.New("policy: new set: no policy source")
	}
	if err := CheckAllowedBuiltins(cfg.AllowBuiltins); err != nil {
		return nil, fmt.Errorf("policy: new set: %w", err)
	}
	if err := CheckHeaders(cfg.Headers); err != nil {
		return nil, fmt.Errorf("policy: new set: %w", err)
	}
	s := &Set{cfg: cfg, enforced: &slot{name: "enforced", src: cfg.Policies}}
	s.data = cfg.Data
	if err := s.load(ctx, s.enforced); err != nil {
		return nil, fmt.Errorf("policy: load %s: %w", cfg.Policies, err)
	}
	if !cfg.Shadow.isZero() {
		s.shadow = &slot{name: "shadow", src: cfg.Shadow}
		if err := s.load(ctx, s.shadow); err != nil {
			return nil, fmt.Errorf("policy: load shadow %s: %w", cfg.Shadow, err)
		}
	}
	entries := cfg.DecisionCache
	if entries == 0 {
		entries = DefaultDecisionCache
	}
	memo, err := newDecisionMemo(entries)
	if err != nil {
		return nil, err
	}
	s.memo = memo
	if s.shadow != nil {
		queue := cfg.ShadowQueue
		if queue <= 0 {
			queue = DefaultShadowQueue
		}
		s.shadowJobs = make(chan shadowJob, queue)
		s.shadowDone = make(chan struct{})
		go s.runShadow()
	}
	return s, nil
}

// Close evaluates the shadow decisions still queued, hands them to
// SetConfig.ShadowDone, and releases the decision cache. Decisions made
// after Close are not shadowed.
func (s *Set) Close() {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return
	}
	s.closed = true
	if s.shadowJobs != nil {
		close(s.shadowJobs)
	}
	s.closeMu.Unlock()
	if s.shadowDone != nil {
		<-s.shadowDone
	}
	s.memo.close()
}

// runShadow evaluates the queued shadow decisions until Close.
func (s *Set) runShadow() {
	defer close(s.shadowDone)
	for j := range s.shadowJobs {
		// The request may be over: the shadow is bounded by its own time
		// limit, not by the request's context.
		j.r.Shadow = s.decideShadow(context.Background(), j.engine, j.r.input, j.r.Decision, j.err)
		if s.cfg.ShadowDone != nil {
			s.cfg.ShadowDone(j.requestID, j.r, j.err)
		}
	}
}

// queueShadow hands r to the shadow goroutine, unless its queue is full or
// the set closed.
func (s *Set) queueShadow(requestID string, e *Engine, r Result, err error) bool {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		s.shadowDropped.Add(1)
		return false
	}
	select {
	case s.shadowJobs <- shadowJob{requestID: requestID, engine: e, r: r, err: err}:
		return true
	default:
		s.shadowDropped.Add(1)
		return false
	}
}

// Engine returns the enforced engine in force. It stays usable after a
// reload replaces it, with the data it had then.
func (s *Set) Engine() *Engine { return s.enforced.engine.Load() }

// UsesUsage reports whether the enforced or the shadow set may read
// input.usage; when false the caller can leave Input.Usage nil.
func (s *Set) UsesUsage() bool {
	if s.enforced.engine.Load().UsesUsage() {
		return true
	}
	return s.shadow != nil && s.shadow.engine.Load().UsesUsage()
}

// Reload reads both sets from their sources again and swaps in each one
// that changed and passes. It returns the errors of the sets that failed,
// which stay as they were; Status records the same.
func (s *Set) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	err := s.reload(ctx, s.enforced)
	if s.shadow != nil {
		err = errors.Join(err, s.reload(ctx, s.shadow))
	}
	return err
}

func (s *Set) reload(ctx context.Context, sl *slot) error {
	err := s.load(ctx, sl)
	sl.mu.Lock()
	if err != nil {
		sl.status.ReloadsFailed++
	} else {
		sl.status.ReloadsOK++
	}
	sl.mu.Unlock()
	if s.cfg.Reloaded != nil {
		s.cfg.Reloaded(sl.name, err)
	}
	if err != nil {
		return fmt.Errorf("policy: reload %s set from %s: %w", sl.name, sl.src, err)
	}
	return nil
}

// load reads, tests and compiles sl's files and swaps them in.
func (s *Set) load(ctx context.Context, sl *slot) error {
	e, tests, err := s.build(ctx, sl)
	unchanged := err == nil && e == sl.engine.Load()
	if err == nil && !unchanged {
		err = s.swap(ctx, sl, e)
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if err != nil {
		var re *ReloadError
		if !errors.As(err, &re) {
			re = &ReloadError{Problems: problemsOf("", err)}
		}
		re.At = time.Now()
		sl.status.LastError = re
		return err
	}
	sl.status.LastError = nil
	if unchanged {
		return nil
	}
	sl.status.Source = sl.src.String()
	sl.status.Revision = e.revision
	sl.status.LoadedAt = time.Now()
	sl.status.Files = e.files
	sl.status.Tests = tests
	sl.status.UsesUsage = e.usesUsage
	return nil
}

// build reads sl's files and returns the engine in force when they have
// not changed, else a new engine, compiled and tested, with no data yet.
func (s *Set) build(ctx context.Context, sl *slot) (*Engine, int, error) {
	var fsys fs.FS
	var err error
	if sl.src.BundleURL != "" {
		if _, err = sl.remote.fetch(ctx, s.httpClient(), sl.src.BundleURL); err == nil || sl.remote.current() != nil {
			// A server that cannot be reached leaves the copy kept.
			fsys, err = readBundle(bytes.NewReader(sl.remote.current()), sl.src.Verify)
		}
	} else {
		fsys, err = sl.src.open()
	}
	if err != nil {
		return nil, 0, err
	}
	files, err := readRegoFiles(fsys, true)
	if err != nil {
		return nil, 0, err
	}
	dataFiles, err := readDataFiles(fsys)
	if err != nil {
		return nil, 0, err
	}
	rev := revision(files)
	if len(dataFiles) > 0 {
		rev = revision(slices.Concat(files, dataFiles))
	}
	if cur := sl.engine.Load(); cur != nil && cur.revision == rev {
		return cur, 0, nil
	}
	fail := func(problems []Problem) error { return &ReloadError{Revision: rev, Problems: problems} }

	e, err := compile(ctx, files, s.options())
	if err != nil {
		return nil, 0, fail(problemsOf("", err))
	}
	if err := e.addDataFiles(fsys, dataFiles); err != nil {
		return nil, 0, fail(problemsOf("", err))
	}
	// The tests see the folder's data, as opa test FOLDER gives it.
	report, err := runTests(ctx, files, e.folderData, false, e.opts)
	if errors.Is(err, errNoTests) {
		return e, 0, nil
	}
	if err != nil {
		return nil, 0, fail(problemsOf("", err))
	}
	var problems []Problem
	for _, r := range report.Results {
		if r.Pass() || r.Skip {
			continue
		}
		p := Problem{File: r.Location, Message: fmt.Sprintf("test %s.%s failed", r.Package, r.Name)}
		if r.Err != nil {
			p.Message = fmt.Sprintf("test %s.%s: %v", r.Package, r.Name, r.Err)
		}
		if i := strings.LastIndexByte(r.Location, ':'); i > 0 {
			if line, err := strconv.Atoi(r.Location[i+1:]); err == nil {
				p.File, p.Line = r.Location[:i], line
			}
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return nil, 0, fail(problems)
	}
	return e, len(report.Results), nil
}

// options are the engine options of cfg.
func (s *Set) options() []Option {
	return []Option{WithTimeZone(s.cfg.TimeZone), WithAllowedBuiltins(s.cfg.AllowBuiltins),
		WithEvalTimeout(s.cfg.EvalTimeout), WithHeaders(s.cfg.Headers)}
}

// Headers returns the names of the request headers the policies see,
// lower-case and sorted: the gateway need copy only these into
// Request.Headers. The slice is shared by every request; do not modify it.
func (s *Set) Headers() []string { return s.enforced.engine.Load().opts.headerNames }

// swap gives e the gateway's data merged with that of e's own data files,
// and puts it in force in sl. The data is written before the swap, so the
// first decision of e already sees it, derived data included.
func (s *Set) swap(ctx context.Context, sl *slot, e *Engine) error {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	value, err := mergeData(s.data, e.folderData)
	if err != nil {
		return fmt.Errorf("merge the folder's data files with the gateway's data: %w", err)
	}
	if err := e.write(ctx, storage.RootPath, value); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	sl.engine.Store(e)
	return nil
}

// SetData writes value at path in the enforced and the shadow engine, as
// Engine.SetData does, and keeps it for the engines later reloads bring.
// An error of the enforced engine is returned and leaves both as they were;
// the shadow's is recorded as its LastError, since the shadow set must not
// stop the gateway from taking new data.
func (s *Set) SetData(ctx context.Context, path string, value any) error {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	if err := s.enforced.engine.Load().SetData(ctx, path, value); err != nil {
		return err
	}
	p, _ := storage.ParsePath(path) // Engine.SetData has checked it
	s.data = withValue(s.data, p, value)
	if s.shadow == nil {
		return nil
	}
	if err := s.shadow.engine.Load().SetData(ctx, path, value); err != nil {
		s.shadow.mu.Lock()
		s.shadow.status.LastError = &ReloadError{At: time.Now(), Problems: problemsOf("", err)}
		s.shadow.mu.Unlock()
	}
	return nil
}

// Data returns the data document the gateway wrote (SetConfig.Data, then
// SetData): tiers, departments, clients, without the policy folder's data
// files or the derived data. It must not be modified.
func (s *Set) Data() map[string]any {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	return s.data
}

// Status returns the state of both sets and the shadow counters.
func (s *Set) Status() Status {
	st := Status{
		Enforced:      s.enforced.snapshot(),
		Disagreements: s.disagreements.Load(),
		ShadowErrors:  s.shadowErrors.Load(),
		ShadowDropped: s.shadowDropped.Load(),
	}
	if s.memo != nil {
		st.CacheHits, st.CacheMisses = s.memo.hits.Load(), s.memo.misses.Load()
	}
	if s.shadow != nil {
		sh := s.shadow.snapshot()
		st.Shadow = &sh
	}
	return st
}

func (sl *slot) snapshot() SetStatus {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	st := sl.status
	st.Files = slices.Clone(st.Files)
	if st.LastError != nil {
		e := *st.LastError
		e.Problems = slices.Clone(e.Problems)
		st.LastError = &e
	}
	return st
}

// Result is one decision of a Set.
type Result struct {
	// ID identifies the decision in the decision log and the
	// x-sluice-decision-id header: "dec_" and a string unique across
	// processes.
	ID string
	// Revision is the enforced set's revision.
	Revision string
	// Decision is the enforced decision; zero when Decide returns an error.
	Decision Decision
	// Duration is how long the enforced evaluation took, input building
	// included, shadow excluded.
	Duration time.Duration
	// Shadow is the shadow set's decision, as SetConfig.ShadowDone
	// receives it; nil in what Decide returns.
	Shadow *ShadowResult
	// ShadowQueued is set when the shadow set will evaluate the decision
	// off the request path and hand it to SetConfig.ShadowDone, which then
	// logs it: the caller of Decide should not log it too.
	ShadowQueued bool
	// Cached is set when the decision was answered from the decision
	// cache rather than evaluated.
	Cached bool

	at    time.Time
	input ast.Value
	// logClaims are the claims of input.identity the decision log writes
	// as they are.
	logClaims []string
}

// ShadowResult is the shadow set's decision for the same input.
type ShadowResult struct {
	Revision string
	Decision Decision
	// Err is the shadow's evaluation error; it never affects the enforced
	// decision.
	Err error
	// Disagrees is set when the two sets decided differently (see
	// Set.Decide), or when exactly one of them failed.
	Disagrees bool
	Duration  time.Duration
}

// Decide evaluates the enforced set for in, or answers it from the
// decision cache when the parts of in its rules read repeat those of an
// earlier decision with the same data. The error is the enforced set's,
// for the caller to answer policy_error; the Result then still carries
// the decision id and revision to log it with. Errors are never cached.
//
// The shadow set, if any, decides the same input later, on the shadow
// goroutine, which hands the outcome to SetConfig.ShadowDone: a slow
// shadow set adds nothing to a request. When its queue is full the
// decision goes unshadowed and is counted (Status.ShadowDropped).
//
// The two decisions disagree when they differ in allowed, http_status,
// code, limits, department_limits, redact, plugins, response_plugins,
// restore or max_tokens (messages, reasons and headers are free to
// differ). Disagreements and
// shadow errors are counted in Status; logging them is the caller's, or
// the DecisionLog's, which always writes them.
//
// The engines are those Pin gave in, when it did, else those in force.
func (s *Set) Decide(ctx context.Context, in Input) (Result, error) {
	e, shadow := s.engines(&in)
	start := time.Now()
	r := Result{ID: newDecisionID(), Revision: e.revision, at: start}
	r.input = e.input(&in)
	if in.Identity != nil {
		r.logClaims = in.Identity.LogClaims
	}
	d, err := s.decideEnforced(ctx, e, &r)
	r.Decision = d
	r.Duration = time.Since(start)
	if shadow != nil {
		r.ShadowQueued = s.queueShadow(in.RequestID, shadow, r, err)
	}
	return r, err
}

// decideEnforced decides r's input with e, through the decision cache.
func (s *Set) decideEnforced(ctx context.Context, e *Engine, r *Result) (Decision, error) {
	if s.memo == nil || e.memo == nil {
		return e.decide(ctx, r.input)
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, &EvalError{Kind: KindCancelled, Err: err}
	}
	bp := keyBufs.Get().(*[]byte)
	defer keyBufs.Put(bp)
	key, gen, ok := e.memoKey((*bp)[:0], r.input)
	if !ok {
		return e.decide(ctx, r.input)
	}
	*bp = key[:0] // keep the buffer if it grew
	if d, hit := s.memo.get(key); hit {
		r.Cached = true
		return d, nil
	}
	d, err := e.decide(ctx, r.input)
	if err == nil {
		s.memo.put(e, key, gen, d)
	}
	return d, err
}

// pin is the engines one request is decided with, from the first pass to
// the reply phase.
type pin struct {
	set              *Set
	enforced, shadow *Engine
}

// Pin makes every later decision of in, and of its copies, use the engines
// in force now, so that the passes of one request (the first, the one with
// the plugins' findings, the reply's) are decided by one revision even
// while reloads swap others in. It reports whether those engines read
// input.usage (see UsesUsage).
func (s *Set) Pin(in *Input) (usesUsage bool) {
	p := &pin{set: s, enforced: s.enforced.engine.Load()}
	if s.shadow != nil {
		p.shadow = s.shadow.engine.Load()
	}
	in.pin = p
	return p.enforced.UsesUsage() || (p.shadow != nil && p.shadow.UsesUsage())
}

// engines returns the engines to decide in with: those pinned by this set,
// else those in force.
func (s *Set) engines(in *Input) (enforced, shadow *Engine) {
	if p := in.pin; p != nil && p.set == s {
		return p.enforced, p.shadow
	}
	if s.shadow != nil {
		shadow = s.shadow.engine.Load()
	}
	return s.enforced.engine.Load(), shadow
}

func (s *Set) decideShadow(ctx context.Context, e *Engine, input ast.Value, enforced Decision, enforcedErr error) *ShadowResult {
	start := time.Now()
	d, err := e.decide(ctx, input)
	sr := &ShadowResult{Revision: e.revision, Decision: d, Err: err, Duration: time.Since(start)}
	if err != nil {
		s.shadowErrors.Add(1)
	}
	switch {
	case (err == nil) != (enforcedErr == nil):
		sr.Disagrees = true
	case err == nil:
		sr.Disagrees = !sameOutcome(enforced, d)
	}
	if sr.Disagrees {
		s.disagreements.Add(1)
	}
	return sr
}

// Outcome sums a decision up for a log line: allowed, or the denial's
// status and code, with the limits; never an input. Fields are named as
// in the policy contract (policies/README.md), limits written as the
// policy writes them.
func Outcome(d Decision, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	if !d.Allowed {
		return fmt.Sprintf("denied http_status=%d code=%s", d.HTTPStatus, d.Code)
	}
	limits, _ := json.Marshal(d.Limits) // Limits always marshal
	department, _ := json.Marshal(d.DepartmentLimits)
	return fmt.Sprintf("allowed limits=%s department_limits=%s redact=%v plugins=%v response_plugins=%v restore=%v max_tokens=%d regions=%v fallbacks=%v",
		limits, department, d.Redact, d.Plugins, d.ResponsePlugins, d.Restore, d.MaxTokens, d.Regions, d.Fallbacks)
}

// SameOutcome reports whether a and b are the same in what the gateway acts
// on: the fields whose difference makes a shadow disagreement (see
// Set.Decide).
func SameOutcome(a, b Decision) bool { return sameOutcome(a, b) }

// sameOutcome compares what the gateway acts on, leaving out the wording.
func sameOutcome(a, b Decision) bool {
	return a.Allowed == b.Allowed && a.HTTPStatus == b.HTTPStatus && a.Code == b.Code &&
		a.Limits == b.Limits && a.DepartmentLimits == b.DepartmentLimits &&
		slices.Equal(a.Redact, b.Redact) && slices.Equal(a.Plugins, b.Plugins) &&
		slices.Equal(a.ResponsePlugins, b.ResponsePlugins) && a.Restore == b.Restore && a.MaxTokens == b.MaxTokens &&
		slices.Equal(a.Regions, b.Regions) && slices.Equal(a.Fallbacks, b.Fallbacks) && (a.Fallbacks == nil) == (b.Fallbacks == nil)
}

// Explain evaluates the enforced set for in, like Decide, and tells how it
// decided (see Engine.Explain).
func (s *Set) Explain(ctx context.Context, in Input) (Explanation, error) {
	e, _ := s.engines(&in)
	return e.Explain(ctx, in)
}

// Decision ids are a random per-process prefix and a counter: unique across
// replicas without coordination, and one atomic add per decision.
var (
	decisionIDPrefix = func() string {
		b := make([]byte, 6)
		_, _ = rand.Read(b) // never fails: crypto/rand panics rather than return an error
		return "dec_" + hex.EncodeToString(b)
	}()
	decisionCounter atomic.Uint64
)

func newDecisionID() string {
	return decisionIDPrefix + strconv.FormatUint(decisionCounter.Add(1), 36)
}
