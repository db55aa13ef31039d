package plugintest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/sdk/abi"
)

// rawRuntime drives a module through the ABI by hand, without host/plugin, so
// that the suite can observe what the host hides: the version number, the
// status of a configure call, and the result document before it is validated.
// It also restates the ABI's export table independently of the host, so that a
// conformance run holds both sides to sdk/ABI.md.
type rawRuntime struct {
	rt      wazero.Runtime
	module  wazero.CompiledModule
	timeout time.Duration
	// setup bounds the start function, _initialize and configure, as the
	// gateway bounds them (plugin.SetupTimeout).
	setup time.Duration
}

func newRawRuntime(ctx context.Context, wasm []byte, timeout time.Duration) (*rawRuntime, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithMemoryLimitPages(plugin.DefaultMemoryLimitPages).
		// Close the module when a call's context ends: a spinning guest must
		// not hang the suite.
		WithCloseOnContextDone(true))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("wasi: %w", err)
	}
	_, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}),
			[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		Export(abi.HostLog).
		Instantiate(ctx)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("host module: %w", err)
	}
	m, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	return &rawRuntime{rt: rt, module: m, timeout: timeout, setup: plugin.SetupTimeout(timeout)}, nil
}

func (r *rawRuntime) close(ctx context.Context) { r.rt.Close(ctx) }

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// requiredExports is the export table of sdk/ABI.md section 2, in its order.
var requiredExports = []struct {
	name            string
	params, results []api.ValueType
}{
	{abi.ExportInit, nil, nil},
	{abi.ExportVersion, nil, []api.ValueType{i32}},
	{abi.ExportAlloc, []api.ValueType{i32}, []api.ValueType{i32}},
	{abi.ExportFree, []api.ValueType{i32}, nil},
	{abi.ExportConfigure, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	{abi.ExportScan, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	{abi.ExportOutput, nil, []api.ValueType{i64}},
}

// exportProblems lists, in words a plugin author can act on, every way the
// module's exports and imports differ from ABI v1.
func (r *rawRuntime) exportProblems() []string {
	var problems []string
	funcs := r.module.ExportedFunctions()
	for _, want := range requiredExports {
		f, ok := funcs[want.name]
		switch {
		case !ok:
			problems = append(problems, "missing export "+want.name)
		case string(f.ParamTypes()) != string(want.params) || string(f.ResultTypes()) != string(want.results):
			problems = append(problems, fmt.Sprintf("export %s is %s -> %s, want %s -> %s", want.name,
				typeNames(f.ParamTypes()), typeNames(f.ResultTypes()), typeNames(want.params), typeNames(want.results)))
		}
	}
	if _, ok := r.module.ExportedMemories()[abi.ExportMemory]; !ok {
		problems = append(problems, `missing exported memory "memory"`)
	}
	if _, ok := r.module.ExportedFunctions()["_start"]; ok {
		problems = append(problems, "exports _start: build a reactor (-buildmode=c-shared), not a command")
	}
	for _, f := range r.module.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != wasi_snapshot_preview1.ModuleName && (mod != abi.HostModule || name != abi.HostLog) {
			problems = append(problems, fmt.Sprintf("imports %s.%s, which Sluice does not provide", mod, name))
		}
	}
	return problems
}

func typeNames(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return "(" + strings.Join(names, ",") + ")"
}

// rawInstance is one instance of the module, initialised but not configured.
type rawInstance struct {
	r   *rawRuntime
	mod api.Module
}

// instantiate creates an instance and runs _initialize.
func (r *rawRuntime) instantiate(ctx context.Context) (*rawInstance, error) {
	// A module's start function runs inside InstantiateModule: it gets the
	// call timeout too, so that one that never returns fails its check.
	ictx, cancel := context.WithTimeout(ctx, r.setup)
	defer cancel()
	mod, err := r.rt.InstantiateModule(ictx, r.module, wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime())
	if err != nil {
		if errors.Is(ictx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("instantiate: the start function did not return within %v; the gateway refuses such a module at load", r.setup)
		}
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return nil, fmt.Errorf("instantiate: %s", msg)
	}
	inst := &rawInstance{r: r, mod: mod}
	if _, err := inst.call(ctx, abi.ExportInit); err != nil {
		inst.close(ctx)
		return nil, err
	}
	return inst, nil
}

func (inst *rawInstance) close(ctx context.Context) { inst.mod.Close(ctx) }

// call invokes an export under the suite's timeout and returns its first result.
func (inst *rawInstance) call(ctx context.Context, name string, params ...uint64) (uint64, error) {
	f := inst.mod.ExportedFunction(name)
	if f == nil {
		return 0, fmt.Errorf("missing export %s", name)
	}
	timeout := inst.r.timeout
	if name == abi.ExportInit || name == abi.ExportConfigure {
		timeout = inst.r.setup
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := f.Call(ctx, params...)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("%s: did not return within %v", name, timeout)
		}
		// wazero appends the guest's stack trace; one line is enough here.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return 0, fmt.Errorf("%s trapped: %s", name, msg)
	}
	if len(res) == 0 {
		return 0, nil
	}
	return res[0], nil
}

// invoke writes input into a buffer from sluice_alloc (none when input is
// empty), calls export (sluice_configure or sluice_scan) on it, frees the
// buffer, and returns the status and a copy of the output.
func (inst *rawInstance) invoke(ctx context.Context, export string, input []byte) (status uint32, out []byte, err error) {
	var ptr uint64
	if len(input) > 0 {
		if ptr, err = inst.call(ctx, abi.ExportAlloc, uint64(len(input))); err != nil {
			return 0, nil, err
		}
		if uint32(ptr) == 0 {
			return 0, nil, fmt.Errorf("%s(%d) returned 0", abi.ExportAlloc, len(input))
		}
		if !inst.mod.Memory().Write(uint32(ptr), input) {
			return 0, nil, fmt.Errorf("%s(%d) returned %d, outside memory", abi.ExportAlloc, len(input), uint32(ptr))
		}
	}
	st, err := inst.call(ctx, export, ptr, uint64(len(input)))
	if err != nil {
		return 0, nil, err
	}
	packed, err := inst.call(ctx, abi.ExportOutput)
	if err != nil {
		return 0, nil, err
	}
	optr, n := uint32(packed>>32), uint32(packed)
	b, ok := inst.mod.Memory().Read(optr, n)
	if !ok {
		return 0, nil, fmt.Errorf("%s returned [%d,+%d), outside memory", abi.ExportOutput, optr, n)
	}
	out = append([]byte(nil), b...)
	if ptr != 0 {
		if _, err := inst.call(ctx, abi.ExportFree, ptr); err != nil {
			return 0, nil, err
		}
	}
	return uint32(st), out, nil
}
