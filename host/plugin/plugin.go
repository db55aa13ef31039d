// Package plugin runs Sluice filter plugins: WebAssembly modules built against
// ABI v1 (sdk/ABI.md) that scan the message texts of a request and return
// findings. Modules run in a wazero sandbox with no filesystem, network,
// environment or arguments, a memory limit and a per-call deadline; a pool of
// instances per plugin serves concurrent scans. An instance that traps, runs
// out of time or memory, or returns a malformed result is closed and never
// reused; the pool makes a fresh one when a call needs it.
//
// # Deadlines
//
// Load first compiles the module's bytes as given, to validate them, and then
// rewrites the module so that a call past its deadline is stopped by checks
// compiled into it (see interrupt.go): at every loop, at the entry of every
// function that calls, after every bulk memory instruction, weighted by its
// length, and in long straight-line code. The start function, _initialize and
// configure run under a deadline too, at load and in every fresh instance.
// wazero's WithCloseOnContextDone leaves machine code for the runtime at every
// loop iteration instead; measured on the PII plugin (BenchmarkInterrupt;
// figures in BENCHMARKS.md), it made scans 1.4 to 1.8 times slower on prose
// and 2.6 to 3.4 times slower on PII-dense text, while the check cost no more
// than the spread between runs of no check at all, and neither stopped a
// spinning guest sooner (BenchmarkInterruptStop). A module the rewriter
// cannot read is refused (ErrUnsupportedModule).
//
// # Reloading
//
// A Slot serves one configured plugin and replaces its module in service:
// Reload verifies a new module against its sha256 pin, compiles it through
// the compilation cache, configures it and makes it scan a fixed text and
// inputs generated for the occasion, and only then swaps it in; scans in flight finish on the old module, which
// is closed after the last of them. A Watcher calls Reload when a module file
// changes on disk.
package plugin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/sluicehq/sluice/sdk/abi"
)

// Finding is one match reported by a plugin: Type is an upper-case identifier
// such as "EMAIL", Message indexes the texts given to Scan, Start and End are
// byte offsets into that text (End exclusive) and Score is in [0,1].
type Finding = abi.Finding

// Errors a Scan can be tested for with errors.Is.
var (
	// ErrTimeout means the plugin did not finish within Options.Timeout.
	ErrTimeout = errors.New("plugin timed out")
	// ErrClosed means the Plugin or its Runtime was closed.
	ErrClosed = errors.New("plugin closed")
	// ErrBusy means every instance was busy and the scan could not wait: the
	// queue was full, or the wait reached Options.QueueTimeout.
	ErrBusy = errors.New("plugin busy")
	// ErrInvalidModule means the module's bytes, as given, are not a valid
	// WebAssembly module: wazero refused to compile them.
	ErrInvalidModule = errors.New("invalid WebAssembly module")
)

// Defaults for zero Options fields.
const (
	DefaultTimeout          = 100 * time.Millisecond
	DefaultMemoryLimitPages = 512 // 32 MiB in 64 KiB pages
	DefaultQueueTimeout     = time.Second
)

// Limits that are not options: they bound what a plugin can make the host do.
const (
	maxInputBytes  = 64 << 20 // texts of one Scan, encoded
	maxOutputBytes = 16 << 20 // result document of one Scan
	minSetupTime   = 2 * time.Second
)

// SetupTimeout bounds setting an instance up (the start function,
// _initialize and configure) for a plugin whose calls are bounded by
// callTimeout: a language runtime's start takes longer than a scan.
func SetupTimeout(callTimeout time.Duration) time.Duration {
	return max(10*callTimeout, minSetupTime)
}

// Runtime compiles and hosts plugins. It owns the compilation cache that all
// its plugins share, so a module is compiled to machine code once per process
// (or once per machine, with an on-disk cache).
type Runtime struct {
	cache wazero.CompilationCache // in memory, without a cache folder
	disk  *moduleCache            // nil without a cache folder
	// validator compiles a module's bytes as given, before any rewriting, to
	// validate them; the interpreter does that in a fraction of the time of
	// the optimising compiler.
	validator wazero.Runtime
	valid     sync.Map // sha256 digests of modules that validated
	// validations counts the modules validated with the interpreter.
	validations atomic.Int64

	mu      sync.Mutex
	plugins map[*Plugin]struct{}
	closed  bool

	mem memoryBudget // the ceiling on all instances' memory (capacity.go)
}

// NewRuntime returns a Runtime. With a non-empty cacheDir, compiled modules
// are kept in that directory across restarts, which turns a cold compile of
// about a second into tens of milliseconds; empty keeps them in memory only.
//
// Each module is cached in a folder of its own, checked against a record of
// its contents before it is used (see cache.go); the folder is created 0700,
// and one that group or others may write is refused.
func NewRuntime(ctx context.Context, cacheDir string) (*Runtime, error) {
	var disk *moduleCache
	if cacheDir != "" {
		var err error
		if disk, err = newModuleCache(cacheDir); err != nil {
			return nil, fmt.Errorf("plugin runtime: compilation cache: %w", err)
		}
	}
	return &Runtime{
		cache:     wazero.NewCompilationCache(),
		disk:      disk,
		validator: wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter()),
		plugins:   map[*Plugin]struct{}{},
	}, nil
}

// validate compiles wasm, untouched, with wazero, and reports ErrInvalidModule
// with wazero's reason if it is not a valid module; then it checks that the
// module has the shape of an ABI v1 plugin (checkModule). A digest that passed
// before is not compiled again.
func (r *Runtime) validate(ctx context.Context, wasm []byte) error {
	sum := sha256.Sum256(wasm)
	if _, ok := r.valid.Load(sum); ok {
		return nil
	}
	if r.disk != nil && r.disk.validated(sum) {
		r.valid.Store(sum, struct{}{})
		return nil
	}
	r.validations.Add(1)
	m, err := r.validator.CompileModule(ctx, wasm)
	if err != nil {
		return fmt.Errorf("%w: compile: %v", ErrInvalidModule, err)
	}
	defer m.Close(ctx)
	if err := checkModule(m); err != nil {
		return err
	}
	r.valid.Store(sum, struct{}{})
	if r.disk != nil {
		r.disk.markValidated(sum)
	}
	return nil
}

// Close closes every plugin loaded by r, then the compilation cache.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	plugins := r.plugins
	r.plugins = nil
	r.mu.Unlock()
	var errs []error
	for p := range plugins {
		errs = append(errs, p.Close(ctx))
	}
	errs = append(errs, r.validator.Close(ctx), r.cache.Close(ctx))
	return errors.Join(errs...)
}

// Options configure one loaded plugin.
type Options struct {
	// Name identifies the plugin in errors and logs. Required.
	Name string
	// Config is the plugin's configuration, JSON, passed to every instance.
	Config []byte
	// Timeout bounds one Scan call inside the plugin. Default DefaultTimeout.
	// Notes: a plugin that times out is stopped and its instance discarded.
	Timeout time.Duration
	// PoolSize is the number of instances that may scan at once. Default
	// GOMAXPROCS. Instances are created on demand, each about 4 ms and a few
	// MiB of memory; the plugin may hold one more than PoolSize, being reset
	// after its call while the others scan.
	PoolSize int
	// MaxQueue bounds the scans waiting for a free instance; a scan beyond it
	// fails at once with ErrBusy. Default 16 × PoolSize.
	// Notes: a plugin that is slow on every call would otherwise gather
	// callers without bound, each holding its request.
	MaxQueue int
	// QueueTimeout bounds a scan's wait for a free instance; past it the scan
	// fails with ErrBusy, as it fails when its context is done.
	// Default DefaultQueueTimeout.
	QueueTimeout time.Duration
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages.
	// Default DefaultMemoryLimitPages (32 MiB).
	MemoryLimitPages uint32
	// Logger receives the plugin's sluice.log messages. Default slog.Default().
	Logger *slog.Logger
	// SHA256 pins the module: when set, a module whose SHA-256 digest, in hex,
	// is not this one is refused before it is compiled. Default: no pin.
	SHA256 string
	// Health says when the plugin's recent calls make it unhealthy (see
	// Health). Default: half of at least 10 calls in the last minute failed.
	Health HealthOptions

	// interrupt says how a spinning guest is stopped; only the benchmark that
	// compares the ways sets it.
	interrupt interruptMode
	// noReset leaves instances as the last call left them, and resetInline
	// resets them on the caller's path, as before the recycler; only the
	// benchmark that measures the reset sets them.
	noReset, resetInline bool
}

// interruptMode is how the host stops a call that runs past its deadline.
type interruptMode int

const (
	// interruptCheck instruments the module with checks of a global (see
	// instrument).
	interruptCheck interruptMode = iota
	// interruptClose lets wazero close the module when the context is done,
	// at the cost of a call into the runtime at every loop iteration; the
	// module is rewritten without checks.
	interruptClose
	// interruptNone cannot stop a spinning guest; benchmarks only.
	interruptNone
)

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PoolSize <= 0 {
		o.PoolSize = runtime.GOMAXPROCS(0)
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 16 * o.PoolSize
	}
	if o.QueueTimeout <= 0 {
		o.QueueTimeout = DefaultQueueTimeout
	}
	if o.MemoryLimitPages == 0 {
		o.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Plugin is a loaded plugin: a compiled module and a pool of configured
// instances. It is safe for concurrent use.
type Plugin struct {
	name    string
	opts    Options
	rt      *Runtime
	wrt     wazero.Runtime          // one per plugin: the memory limit and deadline mode are runtime-wide
	check   bool                    // the module was instrumented with an interrupt check
	start   bool                    // the module has a start function, exported as startExport
	globals []uint32                // indices of the module's mutable globals, exported by the rewriter
	snap    *snapshot               // the configured state every call starts from
	cache   wazero.CompilationCache // the module's own on-disk cache, if any
	module  wazero.CompiledModule
	modCfg  wazero.ModuleConfig
	slots   chan struct{}  // a token per instance allowed to scan
	idle    chan *instance // clean instances, ready for a call
	dirty   chan *instance // instances a call returned, waiting for the recycler
	room    chan struct{}  // a token per instance the plugin may still make
	stop    chan struct{}  // closed by Close: the recycler returns
	// using is held, shared, from a call's slot to the return of its
	// instance, and by Close alone while it closes the instances and unmaps
	// the snapshot under them.
	using     sync.RWMutex
	recycling sync.WaitGroup // the recycler goroutine
	pending   atomic.Int64   // instances given back and not reset yet
	// inlineResets counts down the calls that reset their own instance
	// (see resetsInlineAfterSteal).
	inlineResets atomic.Int32
	sha256       string // hex digest of the module as given to Load
	closed       atomic.Bool
	closeMu      sync.Mutex

	discarded atomic.Uint64 // instances closed after a failed call
	grown     atomic.Uint64 // instances closed because their memory grew past the snapshot
	waiting   atomic.Int64  // scans waiting for a free instance
	rejected  atomic.Uint64 // scans refused with ErrBusy

	health *healthWindow // the plugin's recent calls and faults

	// memMu guards live, the instances counted against the Runtime's
	// memory ceiling, and memClosed, set when Close released them.
	memMu     sync.Mutex
	live      int
	memClosed bool

	types       typeTable  // finding types the module declared in its manifest
	byModule    sync.Map   // api.Module to its *instance, for hostLog
	logLimit    logLimiter // sluice.log messages of all the plugin's instances
	logsDropped atomic.Uint64
}

// Load compiles wasm, checks that it implements ABI v1, and creates and
// configures a first instance so that a bad module or configuration is
// reported now rather than on the first request.
func (r *Runtime) Load(ctx context.Context, wasm []byte, opts Options) (*Plugin, error) {
	if opts.Name == "" {
		return nil, errors.New("plugin: load: Options.Name is required")
	}
	opts = opts.withDefaults()
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("plugin %s: load: %w", opts.Name, ErrClosed)
	}
	sum := sha256.Sum256(wasm)
	digest := hex.EncodeToString(sum[:])
	if opts.SHA256 != "" && !strings.EqualFold(opts.SHA256, digest) {
		return nil, fmt.Errorf("plugin %s: load: module has sha256 %s, but the configuration pins %s; refusing to load it",
			opts.Name, digest, opts.SHA256)
	}

	// Validate the bytes as given: the rewriter adds globals and exports, so
	// it could turn an invalid module (one that writes a global it never
	// declares) into a valid one whose code resets the deadline's budget.
	if err := r.validate(ctx, wasm); err != nil {
		return nil, fmt.Errorf("plugin %s: load: %w", opts.Name, err)
	}
	mode := opts.interrupt
	rewritten, err := instrument(wasm, mode == interruptCheck)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: load: %w", opts.Name, err)
	}
	cache, record := r.cache, func() error { return nil }
	if r.disk != nil {
		var unlock func()
		if cache, record, unlock, err = r.disk.open(hexDigest(rewritten.wasm)); err != nil {
			return nil, fmt.Errorf("plugin %s: load: %w", opts.Name, err)
		}
		defer unlock()
	}
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithMemoryLimitPages(opts.MemoryLimitPages).
		// BenchmarkInterrupt measures what each way of stopping a guest costs.
		WithCloseOnContextDone(mode == interruptClose)
	wrt := wazero.NewRuntimeWithConfig(ctx, rc)
	p := &Plugin{
		name:    opts.Name,
		opts:    opts,
		sha256:  digest,
		rt:      r,
		wrt:     wrt,
		check:   mode == interruptCheck,
		start:   rewritten.start,
		globals: rewritten.globals,
		health:  newHealthWindow(opts.Health),
		slots:   make(chan struct{}, opts.PoolSize),
		idle:    make(chan *instance, opts.PoolSize+spareInstances),
		dirty:   make(chan *instance, opts.PoolSize+spareInstances),
		room:    make(chan struct{}, opts.PoolSize+spareInstances),
		stop:    make(chan struct{}),
		// No WithFS, WithEnv or WithArgs: the plugin sees no files, no
		// environment and no arguments, and has no sockets. Stdout and stderr
		// are discarded by default. Go's wasip1 runtime needs clocks and
		// randomness; real randomness also keeps the guest's map hash seeds
		// unpredictable. No start function: newInstance calls _initialize
		// itself, under a deadline.
		modCfg: wazero.NewModuleConfig().
			WithName("").
			WithStartFunctions().
			WithSysWalltime().
			WithSysNanotime().
			WithRandSource(rand.Reader),
	}
	if r.disk != nil {
		p.cache = cache
	}
	if err := p.init(ctx, rewritten.wasm); err != nil {
		wrt.Close(ctx)
		p.releaseMemory()
		if p.cache != nil {
			p.cache.Close(ctx)
		}
		return nil, fmt.Errorf("plugin %s: load: %w", opts.Name, err)
	}
	// init made the first instance; the others are made on demand.
	for range opts.PoolSize + spareInstances - 1 {
		p.room <- struct{}{}
	}
	p.recycling.Add(1)
	go p.recycler()
	if err := record(); err != nil {
		opts.Logger.Warn("plugin compilation cache not recorded; the next load compiles afresh",
			slog.String("plugin", opts.Name), slog.String("error", err.Error()))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		p.Close(ctx)
		return nil, fmt.Errorf("plugin %s: load: %w", opts.Name, ErrClosed)
	}
	r.plugins[p] = struct{}{}
	return p, nil
}

// yield is the host side of an instrumented module's checks (see
// interrupt.go).
func (p *Plugin) yield(m api.Module) {
	if v, ok := p.byModule.Load(m); ok {
		if w := v.(*instance).watch; w != nil {
			w.yield()
		}
	}
}

func (p *Plugin) init(ctx context.Context, wasm []byte) error {
	if err := instantiateWASI(ctx, p.wrt); err != nil {
		return fmt.Errorf("wasi: %w", err)
	}
	_, err := p.wrt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostLog), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		Export(abi.HostLog).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("host module: %w", err)
	}
	if err := instantiateYield(ctx, p.wrt, p.yield); err != nil {
		return fmt.Errorf("host module: %w", err)
	}
	if p.module, err = p.wrt.CompileModule(ctx, wasm); err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	fresh := func() (*instance, error) { return p.newInstance(ctx) }
	inst, err := p.newCharged(ctx, nil, fresh)
	if err != nil {
		return err
	}
	if err := p.warmUp(ctx, inst); err != nil {
		// Whatever broke the warm-up will show in the first call or the smoke
		// test; the snapshot is taken of an instance that did not run it.
		p.discard(inst)
		if inst, err = p.newCharged(ctx, nil, fresh); err != nil {
			return err
		}
	}
	if p.snap, err = p.takeSnapshot(inst); err != nil {
		p.discard(inst)
		return err
	}
	p.idle <- inst
	return nil
}

// warmUpTexts is what an instance scans before its snapshot is taken: prose
// with things a scanner finds in it, generated by the host, never a
// request's.
var warmUpTexts = []string{
	strings.Repeat("Please mail jane.doe@example.com or call +1 415 555 2671 about card 4111 1111 1111 1111 "+
		"from 10.0.0.1; the meeting notes are attached. ", 12),
	"Sluice warm-up",
}

// warmUp makes inst scan warmUpTexts once, so that the state every call
// starts from is that of an instance that has scanned: a language runtime's
// allocator caches are filled then, and each call would otherwise fill them
// again. A failure is reported; the caller then snapshots a fresh instance.
func (p *Plugin) warmUp(ctx context.Context, inst *instance) error {
	_, _, err := inst.scan(ctx, max(p.opts.Timeout, 100*time.Millisecond), warmUpTexts)
	if err != nil || inst.broken {
		return fmt.Errorf("warm-up scan: %w", err)
	}
	// The input buffer of the snapshot holds zeros, not the warm-up's text.
	if view, ok := inst.mem.Read(inst.inPtr, uint32(abi.TextsSize(warmUpTexts))); ok {
		clear(view)
	}
	return nil
}

// errnoNotsup is WASI's ENOTSUP.
const errnoNotsup = 58

// instantiateWASI instantiates wazero's WASI preview 1 with the functions
// that change the state of file descriptors answering ENOTSUP: the reset
// between calls (reset.go) restores memory and globals, not WASI's
// descriptor table, so a module that closed its standard output in one call
// would have the next call see it closed. A plugin has only stdin, stdout and
// stderr, and language runtimes do not close or renumber them.
func instantiateWASI(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	notSupported := api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = errnoNotsup })
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	for name, params := range map[string][]api.ValueType{
		"fd_close":             {i32},
		"fd_renumber":          {i32, i32},
		"fd_fdstat_set_flags":  {i32, i32},
		"fd_fdstat_set_rights": {i32, i64, i64},
	} {
		b.NewFunctionBuilder().WithGoModuleFunction(notSupported, params, []api.ValueType{i32}).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// exportSignatures are the functions ABI v1 requires, with their types.
var exportSignatures = map[string]struct{ params, results []api.ValueType }{
	abi.ExportVersion:   {nil, []api.ValueType{api.ValueTypeI32}},
	abi.ExportAlloc:     {[]api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	abi.ExportFree:      {[]api.ValueType{api.ValueTypeI32}, nil},
	abi.ExportConfigure: {[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	abi.ExportScan:      {[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	abi.ExportOutput:    {nil, []api.ValueType{api.ValueTypeI64}},
	abi.ExportInit:      {nil, nil},
}

// checkModule reports, all at once, what keeps a compiled module from being a
// v1 plugin, in words a plugin author can act on.
func checkModule(m wazero.CompiledModule) error {
	var problems []string
	exports := m.ExportedFunctions()
	for _, name := range []string{abi.ExportVersion, abi.ExportAlloc, abi.ExportFree, abi.ExportConfigure, abi.ExportScan, abi.ExportOutput, abi.ExportInit} {
		want := exportSignatures[name]
		f, ok := exports[name]
		switch {
		case !ok:
			problems = append(problems, "missing export "+name)
		case !equalTypes(f.ParamTypes(), want.params) || !equalTypes(f.ResultTypes(), want.results):
			problems = append(problems, fmt.Sprintf("export %s has signature %s -> %s, want %s -> %s", name,
				typeNames(f.ParamTypes()), typeNames(f.ResultTypes()), typeNames(want.params), typeNames(want.results)))
		}
	}
	if _, ok := m.ExportedMemories()[abi.ExportMemory]; !ok {
		problems = append(problems, "missing exported memory \"memory\"")
	}
	for _, f := range m.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != wasi_snapshot_preview1.ModuleName && !(mod == abi.HostModule && name == abi.HostLog) {
			problems = append(problems, fmt.Sprintf("imports %s.%s, which Sluice does not provide", mod, name))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("not a Sluice ABI v%d plugin: %s", abi.Version, strings.Join(problems, "; "))
	}
	return nil
}

func equalTypes(a, b []api.ValueType) bool {
	return string(a) == string(b)
}

func typeNames(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return "(" + strings.Join(names, ",") + ")"
}

// Name returns the plugin's name from Options.
func (p *Plugin) Name() string { return p.name }

// SHA256 returns the hex SHA-256 digest of the module p was loaded from.
func (p *Plugin) SHA256() string { return p.sha256 }

// Scan runs the plugin over texts, the ordered message texts of one request,
// and returns its findings, each checked against texts. Calls beyond PoolSize
// wait for a free instance until ctx is done. A plugin that traps, exits or
// overruns its deadline fails the call and its instance is discarded; the
// next call gets a fresh one.
//
// A scan whose ctx ends first, waiting or running, fails with ErrCancelled
// and is not counted against the plugin's health.
func (p *Plugin) Scan(ctx context.Context, texts []string) ([]Finding, error) {
	found, _, err := p.scanCall(ctx, texts, p.opts.Timeout)
	return found, err
}

// scan is a scan that leaves the plugin's health alone: the smoke test's.
func (p *Plugin) scan(ctx context.Context, texts []string, timeout time.Duration) ([]Finding, error) {
	found, _, err := p.run(ctx, texts, timeout)
	return found, err
}

// scanCall is a scan that counts in the plugin's health.
func (p *Plugin) scanCall(ctx context.Context, texts []string, timeout time.Duration) ([]Finding, Call, error) {
	found, call, err := p.run(ctx, texts, timeout)
	if call.Guest > 0 || call.Cancelled {
		p.health.record(time.Now(), call)
	}
	return found, call, err
}

// run is one scan: a free instance, reset to the snapshot, runs it.
func (p *Plugin) run(ctx context.Context, texts []string, timeout time.Duration) (_ []Finding, call Call, _ error) {
	if p.closed.Load() {
		return nil, call, fmt.Errorf("plugin %s: scan: %w", p.name, ErrClosed)
	}
	select {
	case p.slots <- struct{}{}: // the common case, without the cost of a two-way select
	default:
		if err := p.wait(ctx); err != nil {
			call.Cancelled = errors.Is(err, ErrCancelled)
			return nil, call, err
		}
	}
	defer func() { <-p.slots }()
	p.using.RLock()
	defer p.using.RUnlock()
	if p.closed.Load() {
		return nil, call, fmt.Errorf("plugin %s: scan: %w", p.name, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		// The caller left while the scan waited: no instance is spent on it.
		call.Cancelled = true
		return nil, call, fmt.Errorf("plugin %s: %w: %w", p.name, ErrCancelled, err)
	}

	inst, err := p.take(ctx)
	if err != nil {
		if ctx.Err() != nil {
			call.Cancelled = true
			return nil, call, fmt.Errorf("plugin %s: %w: %w", p.name, ErrCancelled, ctx.Err())
		}
		return nil, call, fmt.Errorf("plugin %s: %w", p.name, err)
	}
	inst.logMessages, inst.logBytes = 0, 0
	started := time.Now()
	findings, fault, err := inst.scan(ctx, timeout, texts)
	call.Guest = time.Since(started)
	if err != nil {
		if ctx.Err() != nil {
			// The caller went away or its deadline passed, and the watchdog
			// stopped the guest for it: not the plugin's doing.
			call.Cancelled = true
			err = fmt.Errorf("%w: %w", ErrCancelled, ctx.Err())
		} else {
			call.Fault = fault
		}
	}
	if !inst.broken && !p.opts.noReset && inst.mem.Size() != p.snap.pages*65536 {
		// Memory never shrinks, and a larger memory than the snapshot's
		// would carry this call's pages into the next: give replaces it.
		p.grown.Add(1)
	} else if inst.broken {
		// Its memory and globals may be anything now: give closes it, and a
		// fresh instance is made on demand by a later call.
		p.discarded.Add(1)
		if inst.trace != "" {
			// What the plugin's author needs to fix a crash. The module names
			// its own functions, so the trace is bounded and escaped.
			p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "plugin instance trapped and was discarded",
				slog.String("plugin", p.name), slog.String("trace", guestText([]byte(inst.trace), maxTraceBytes)))
		}
	}
	p.give(inst)
	if err != nil {
		return nil, call, fmt.Errorf("plugin %s: %w", p.name, err)
	}
	return findings, call, nil
}

// discard closes inst, which is never called again, and releases the
// memory it was counted at.
func (p *Plugin) discard(inst *instance) {
	p.byModule.Delete(inst.mod)
	inst.mod.Close(context.Background())
	if inst.charged {
		inst.charged = false
		p.uncharge()
	}
}

// wait waits for a free instance in the bounded queue: until one is free, the
// queue wait reaches QueueTimeout, or ctx is done.
func (p *Plugin) wait(ctx context.Context) error {
	defer p.waiting.Add(-1)
	if n := p.waiting.Add(1); n > int64(p.opts.MaxQueue) {
		p.rejected.Add(1)
		return fmt.Errorf("plugin %s: %w: %d scans already wait for a free instance", p.name, ErrBusy, n-1)
	}
	timer := time.NewTimer(p.opts.QueueTimeout)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("plugin %s: %w while it waited for a free instance: %w", p.name, ErrCancelled, ctx.Err())
	case <-timer.C:
		p.rejected.Add(1)
		return fmt.Errorf("plugin %s: %w: no instance free within %v", p.name, ErrBusy, p.opts.QueueTimeout)
	}
}

// Close releases the plugin's instances and compiled code. Scans that have
// not started their call fail with ErrClosed; Close waits for those in
// flight, each bounded by its deadline, and for the reset in progress,
// because their instances' memory is unmapped with them.
func (p *Plugin) Close(ctx context.Context) error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed.Swap(true) {
		return nil
	}
	close(p.stop)
	p.recycling.Wait()
	p.using.Lock()
	defer p.using.Unlock()
	if p.rt != nil {
		p.rt.mu.Lock()
		delete(p.rt.plugins, p)
		p.rt.mu.Unlock()
	}
	err := p.wrt.Close(ctx)
	p.releaseMemory()
	if p.cache != nil {
		err = errors.Join(err, p.cache.Close(ctx))
	}
	if p.snap != nil {
		p.snap.image.close()
	}
	if err != nil {
		return fmt.Errorf("plugin %s: close: %w", p.name, err)
	}
	return nil
}

// instance is one configured module instance. It serves one call at a time.
type instance struct {
	mod                        api.Module
	mem                        api.Memory
	alloc, free, scanFn, outFn api.Function
	inPtr, inCap               uint32 // input buffer, part of the snapshot
	lm                         *linearMemory
	globals                    []api.MutableGlobal // the module's mutable globals, in the order of Plugin.globals
	stack                      [2]uint64
	memLimit                   uint64    // bytes the memory may grow to
	watch                      *watchdog // nil unless the module is instrumented
	types                      typeTable // the plugin's declared finding types
	logMessages, logBytes      int       // sluice.log use in the current call
	broken                     bool      // trapped, exited or timed out: never reuse
	charged                    bool      // counted against the Runtime's memory ceiling
	trace                      string    // the wasm stack trace of a trap, for the log
}

// instantiate instantiates the module with its memory mapped over img (nil:
// no snapshot yet). No guest code runs: the rewriter moved the start function
// to an export.
func (p *Plugin) instantiate(ctx context.Context, img *memoryImage) (*instance, error) {
	ictx, mapped := instantiateContext(ctx, img)
	mod, err := p.wrt.InstantiateModule(ictx, p.module, p.modCfg)
	if err != nil {
		if p.closed.Load() {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	inst := &instance{
		mod:      mod,
		mem:      mod.Memory(),
		memLimit: uint64(p.opts.MemoryLimitPages) * 65536,
		alloc:    mod.ExportedFunction(abi.ExportAlloc),
		free:     mod.ExportedFunction(abi.ExportFree),
		scanFn:   mod.ExportedFunction(abi.ExportScan),
		outFn:    mod.ExportedFunction(abi.ExportOutput),
	}
	if inst.lm, err = mapped(); err == nil {
		inst.globals, err = p.exportedGlobals(mod)
	}
	if err != nil {
		mod.Close(context.Background())
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	if p.check {
		flag, ok := mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
		if !ok {
			mod.Close(context.Background())
			return nil, errors.New("instantiate: the interrupt global is missing")
		}
		inst.watch = newWatchdog(flag)
	}
	inst.types = p.types
	p.byModule.Store(mod, inst)
	return inst, nil
}

// newInstance instantiates the module, runs its start function, _initialize
// and configure, and allocates its input buffer: the state takeSnapshot saves.
func (p *Plugin) newInstance(ctx context.Context) (*instance, error) {
	inst, err := p.instantiate(ctx, nil)
	if err != nil {
		return nil, err
	}
	// The guest's initialisation could also spin; it gets a longer deadline
	// than a scan because a cold start takes milliseconds.
	ctx, end := inst.guard(ctx, SetupTimeout(p.opts.Timeout))
	var types []string
	types, err = inst.setUp(ctx, p.start, p.opts.Config)
	if err == nil {
		p.types = newTypeTable(types)
		inst.types = p.types
		if inst.inPtr, err = inst.allocate(ctx, inputBufferSize); err == nil {
			inst.inCap = inputBufferSize
		} else {
			err = fmt.Errorf("input buffer: %w", err)
		}
	}
	end()
	if err != nil {
		p.discard(inst)
		return nil, err
	}
	return inst, nil
}

// guard bounds the calls made with the returned context by timeout and by
// ctx, until end is called.
func (inst *instance) guard(ctx context.Context, timeout time.Duration) (_ context.Context, end func()) {
	if inst.watch != nil {
		inst.watch.arm(ctx, timeout)
		return ctx, inst.watch.disarm
	}
	return context.WithTimeout(ctx, timeout)
}

// setUp runs the start function, _initialize, the version check and
// configure, and returns the finding types of the manifest configure left in
// its output.
func (inst *instance) setUp(ctx context.Context, start bool, config []byte) ([]string, error) {
	if start {
		// The module's start function, which wazero would have run inside
		// InstantiateModule, where no deadline reaches it.
		if _, err := inst.call(ctx, inst.mod.ExportedFunction(startExport)); err != nil {
			return nil, fmt.Errorf("start function: %w", err)
		}
	}
	if _, err := inst.call(ctx, inst.mod.ExportedFunction(abi.ExportInit)); err != nil {
		return nil, fmt.Errorf("%s: %w", abi.ExportInit, err)
	}
	v, err := inst.call(ctx, inst.mod.ExportedFunction(abi.ExportVersion))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", abi.ExportVersion, err)
	}
	if int32(uint32(v)) != abi.Version {
		return nil, fmt.Errorf("plugin implements ABI v%d, this host implements v%d", int32(uint32(v)), abi.Version)
	}
	var ptr uint32
	if len(config) > 0 {
		if ptr, err = inst.allocate(ctx, uint32(len(config))); err != nil {
			return nil, fmt.Errorf("configure: %w", err)
		}
		if !inst.mem.Write(ptr, config) {
			return nil, fmt.Errorf("configure: buffer [%d,+%d) outside memory", ptr, len(config))
		}
	}
	status, err := inst.call(ctx, inst.mod.ExportedFunction(abi.ExportConfigure), uint64(ptr), uint64(len(config)))
	if err != nil {
		return nil, fmt.Errorf("configure: %w", err)
	}
	if status != abi.StatusOK {
		return nil, fmt.Errorf("configure rejected: %s", inst.errorMessage(ctx))
	}
	// The manifest is read before free, which may reuse the output's memory.
	doc, err := inst.output(ctx, abi.MaxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("configure: manifest: %w", err)
	}
	types, err := abi.ParseManifest(doc)
	if err != nil {
		return nil, fmt.Errorf("configure: %w", err)
	}
	if ptr != 0 {
		if _, err := inst.call(ctx, inst.free, uint64(ptr)); err != nil {
			return nil, fmt.Errorf("configure: free: %w", err)
		}
	}
	return types, nil
}

// call invokes f without allocating a result slice and returns its first
// result. Any error marks the instance broken: after a trap or exit its state
// cannot be trusted.
func (inst *instance) call(ctx context.Context, f api.Function, params ...uint64) (uint64, error) {
	copy(inst.stack[:], params)
	if err := f.CallWithStack(ctx, inst.stack[:]); err != nil {
		inst.broken = true
		if inst.watch != nil {
			if cause := inst.watch.interrupted(); cause != nil {
				// The trap is the interrupt check's unreachable; the cause says why.
				err = cause
			}
		}
		err = describeCallError(err)
		// wazero appends the guest's stack trace to a trap; errors stay one line.
		if msg, trace, ok := strings.Cut(err.Error(), "\n"); ok {
			inst.trace = trace
			err = firstLine{msg, err}
		}
		if !errors.Is(err, ErrTimeout) && !errors.Is(err, context.Canceled) && memoryFull(inst.mem, inst.memLimit) {
			err = fmt.Errorf("%w; its memory was at %d of %d MiB, so it most likely ran out of memory",
				err, inst.mem.Size()>>20, inst.memLimit>>20)
		}
		return 0, err
	}
	return inst.stack[0], nil
}

// firstLine is an error shown by its first line only, still matching what it
// wraps with errors.Is and errors.As.
type firstLine struct {
	msg string
	err error
}

func (e firstLine) Error() string { return e.msg }
func (e firstLine) Unwrap() error { return e.err }

// memoryFull reports whether mem has grown to within one Go heap arena (4
// MiB, or an eighth of a smaller limit) of limit: a guest that fails there was
// most likely refused memory. wazero does not report a refused memory.grow,
// and a runtime that is refused one exits or traps in its own way, so
// closeness to the limit is the sign.
func memoryFull(mem api.Memory, limit uint64) bool {
	margin := min(4<<20, limit/8)
	return mem != nil && uint64(mem.Size())+margin > limit
}

func describeCallError(err error) error {
	var exit *sys.ExitError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: stopped after its deadline", ErrTimeout)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("stopped because the request was canceled: %w", context.Canceled)
	case errors.As(err, &exit):
		return fmt.Errorf("guest exited with code %d (a crash or panic in the plugin)", exit.ExitCode())
	}
	return fmt.Errorf("guest trapped: %w", err)
}

func (inst *instance) allocate(ctx context.Context, n uint32) (uint32, error) {
	ptr, err := inst.call(ctx, inst.alloc, uint64(n))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", abi.ExportAlloc, err)
	}
	if ptr == 0 {
		inst.broken = true
		return 0, fmt.Errorf("%s(%d) returned 0", abi.ExportAlloc, n)
	}
	return uint32(ptr), nil
}

// output returns a view of the guest's output buffer. The view is valid until
// the next call into the guest.
func (inst *instance) output(ctx context.Context, limit uint32) ([]byte, error) {
	packed, err := inst.call(ctx, inst.outFn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", abi.ExportOutput, err)
	}
	ptr, n := uint32(packed>>32), uint32(packed)
	if n > limit {
		inst.broken = true
		return nil, fmt.Errorf("output of %d bytes exceeds the %d-byte limit", n, limit)
	}
	b, ok := inst.mem.Read(ptr, n)
	if !ok {
		inst.broken = true
		return nil, fmt.Errorf("output [%d,+%d) lies outside guest memory", ptr, n)
	}
	return b, nil
}

// errorMessage fetches the guest's error message after a non-zero status,
// shortened so a plugin cannot put large or binary data into host errors.
func (inst *instance) errorMessage(ctx context.Context) string {
	b, err := inst.output(ctx, maxOutputBytes)
	if err != nil {
		return "(no message: " + err.Error() + ")"
	}
	if len(b) == 0 {
		return "(no message)"
	}
	return guestText(b, maxErrorBytes)
}

// scan runs one call of sluice_scan over texts and says, when it fails, whose
// fault it was: FaultNone when the host refused the input.
func (inst *instance) scan(ctx context.Context, timeout time.Duration, texts []string) ([]Finding, Fault, error) {
	size := abi.TextsSize(texts)
	if size > maxInputBytes {
		return nil, FaultNone, fmt.Errorf("scan input of %d bytes exceeds the %d-byte limit", size, maxInputBytes)
	}
	if inst.watch != nil {
		// Spelled out rather than through guard: a deferred method value would
		// allocate on every scan.
		inst.watch.arm(ctx, timeout)
		defer inst.watch.disarm()
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	ptr := inst.inPtr
	if uint32(size) > inst.inCap {
		// A buffer for this call only: the reset before the next call
		// forgets it, with everything else the call allocated.
		var err error
		if ptr, err = inst.allocate(ctx, uint32(size)); err != nil {
			return nil, callFault(err), err
		}
	}
	// Encode straight into guest memory: Read returns a writable view, and
	// nothing can grow the memory between here and the call.
	view, ok := inst.mem.Read(ptr, uint32(size))
	if !ok {
		inst.broken = true
		return nil, FaultOutput, fmt.Errorf("input buffer [%d,+%d) lies outside guest memory", ptr, size)
	}
	abi.AppendTexts(view[:0], texts)

	status, err := inst.call(ctx, inst.scanFn, uint64(ptr), uint64(size))
	if err != nil {
		return nil, callFault(err), fmt.Errorf("scan: %w", err)
	}
	if status != abi.StatusOK {
		return nil, FaultError, fmt.Errorf("scan failed: %s", inst.errorMessage(ctx))
	}
	out, err := inst.output(ctx, maxOutputBytes)
	if err != nil {
		fault := FaultOutput
		if errors.Is(err, ErrTimeout) {
			fault = FaultTimeout
		}
		return nil, fault, fmt.Errorf("scan result: %w", err)
	}
	findings, err := parseResult(out, texts, inst.types)
	if err != nil {
		// The module answered but broke the contract; a fresh instance will not
		// do better, but this one is not trusted further either.
		inst.broken = true
		return nil, FaultOutput, fmt.Errorf("scan result: %w", err)
	}
	return findings, FaultNone, nil
}

// callFault is the fault of a call into the guest that failed.
func callFault(err error) Fault {
	if errors.Is(err, ErrTimeout) {
		return FaultTimeout
	}
	return FaultTrap
}
