// Package guest turns a Go package into a Sluice filter plugin (ABI v1, see
// sdk/ABI.md). A plugin supplies one function from its JSON configuration to a
// Scanner; the package handles memory, the wire encodings and the exports.
//
// A complete plugin main package, built with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared:
//
//	//go:build wasip1
//
//	package main
//
//	import "github.com/sluicehq/sluice/sdk/guest"
//
//	func init() {
//		guest.DeclareTypes("EMAIL") // every type the Scanner may report
//		guest.Register(newScanner)
//	}
//
//	func main() {} // required by the toolchain, never called in a reactor
//
// Register must be called from an init function: the host configures the
// plugin right after the module's _initialize, which is when init functions run.
// The host checks every finding's type against those declared with
// DeclareTypes, and puts the module back to its configured state before every
// scan (sdk/ABI.md, section 3.1): a Scanner keeps nothing from one call to the
// next.
package guest

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/sluicehq/sluice/sdk/abi"
)

// Finding is one match: Type is an upper-case identifier such as "EMAIL",
// Message indexes the texts passed to the Scanner, Start and End are byte
// offsets into that text (End exclusive), and Score is a confidence in [0,1].
type Finding = abi.Finding

// Scanner scans the message texts of one request, in order, and returns its
// findings. The texts alias memory the host reuses: they are valid only until
// the Scanner returns and must not be retained or modified. The returned slice
// is encoded before the next call, so a Scanner may reuse it.
type Scanner func(texts [][]byte) ([]Finding, error)

// NewScanner builds a Scanner from the operator's configuration, the raw JSON
// bytes from the Sluice config (empty when none was given). It runs once per
// plugin instance; an error makes the plugin fail to load, with the message shown
// to the operator.
type NewScanner func(config []byte) (Scanner, error)

// DeclareTypes declares the finding types the plugin reports: the host fails
// any call whose result holds a type that was not declared (sdk/ABI.md,
// section 4.4). Call it from init, or from the NewScanner when the types
// depend on the configuration; the declaration in force when NewScanner
// returns is the plugin's manifest. At most 64 types.
func DeclareTypes(types ...string) {
	plugin.types = append(plugin.types[:0], types...)
}

// Register installs the plugin's constructor. Call it exactly once, from init.
func Register(newScanner NewScanner) {
	if plugin.newScanner != nil {
		panic("guest: Register called twice")
	}
	plugin.newScanner = newScanner
}

// Level is the severity of a log message sent to the host.
type Level int32

// Log levels, mapped by the host to its own levels.
const (
	LevelDebug Level = abi.LevelDebug
	LevelInfo  Level = abi.LevelInfo
	LevelWarn  Level = abi.LevelWarn
	LevelError Level = abi.LevelError
)

// Log sends a message to the host's log. The host truncates long messages.
// Never log the scanned text or matched values: operators' logs must not become
// a copy of the prompts a plugin was asked to protect.
func Log(level Level, msg string) { hostLog(level, msg) }

// plugin is the single instance state: a module instance serves one call at a
// time, so no locking is needed.
var plugin state

type state struct {
	newScanner NewScanner
	types      []string // declared with DeclareTypes
	scan       Scanner
	texts      [][]byte
	result     resultEncoder
	out        []byte // what the host reads after each call: the result or errBuf
	errBuf     []byte
}

// configure implements sluice_configure.
func (s *state) configure(config []byte) int32 {
	s.out = nil
	if s.newScanner == nil {
		return s.fail(errors.New("no scanner registered: call guest.Register from init"))
	}
	// The host's buffer is freed after this call; the constructor may keep what
	// it is given, so it gets a copy.
	scan, err := s.newScanner(append([]byte(nil), config...))
	if err != nil {
		return s.fail(fmt.Errorf("configure: %w", err))
	}
	if scan == nil {
		return s.fail(errors.New("configure: constructor returned a nil Scanner"))
	}
	for _, t := range s.types {
		if err := abi.ValidType(t); err != nil {
			return s.fail(fmt.Errorf("configure: DeclareTypes: %w", err))
		}
	}
	if len(s.types) > abi.MaxTypes {
		return s.fail(fmt.Errorf("configure: DeclareTypes: %d types, more than the %d allowed", len(s.types), abi.MaxTypes))
	}
	s.scan = scan
	// The manifest: what the host checks every finding's type against.
	s.out = abi.AppendManifest(nil, s.types)
	reserveHeap()
	return abi.StatusOK
}

// heapReserve is the free heap configure leaves behind (see reserveHeap).
const heapReserve = 4 << 20

// reserveHeap grows the Go heap by heapReserve and frees it again. The host
// puts the module back to its state after configure before every scan
// (sdk/ABI.md, section 3.1), and replaces an instance whose scan grew its
// memory, which costs milliseconds; a heap with room to spare in that state
// lets scans that allocate, such as those of a PII-dense prompt, run without
// growing it. The memory it takes is virtual until a scan uses it.
func reserveHeap() {
	b := make([]byte, heapReserve)
	keep = b
	keep = nil
	runtime.GC()
}

// keep makes reserveHeap's allocation escape to the heap.
var keep []byte

// scanInput implements sluice_scan.
func (s *state) scanInput(input []byte) int32 {
	s.out = nil
	if s.scan == nil {
		return s.fail(errors.New("scan called before a successful configure"))
	}
	texts, err := abi.DecodeTexts(s.texts[:0], input)
	if err != nil {
		return s.fail(err)
	}
	s.texts = texts
	findings, err := s.scan(texts)
	// Drop the references into the host's buffer. A loop rather than clear,
	// which costs three runtime calls in WebAssembly.
	for i := range texts {
		texts[i] = nil
	}
	if err != nil {
		return s.fail(err)
	}
	if len(findings) == 0 {
		s.out = emptyResult // most scans; saves a call, which WebAssembly makes dear
	} else {
		s.out = s.result.encode(findings)
	}
	return abi.StatusOK
}

func (s *state) fail(err error) int32 {
	s.errBuf = append(s.errBuf[:0], err.Error()...)
	s.out = s.errBuf
	return abi.StatusError
}
