//go:build wasip1

package guest

import (
	"unsafe"

	"github.com/sluicehq/sluice/sdk/abi"
)

// allocs keeps host-requested buffers reachable until sluice_free. Go's garbage
// collector does not move objects, so the address handed out stays valid.
var allocs = map[uint32][]byte{}

//go:wasmexport sluice_abi_version
func sluiceABIVersion() int32 { return abi.Version }

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) uint32 {
	if size == 0 {
		return 0
	}
	buf := make([]byte, size)
	ptr := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	allocs[ptr] = buf
	return ptr
}

// lastAlloc caches the buffer hostBytes found last: the host reuses one input
// buffer for many scans, and a map lookup per call is slow in WebAssembly.
var lastAlloc struct {
	ptr uint32
	buf []byte
}

//go:wasmexport sluice_free
func sluiceFree(ptr uint32) {
	delete(allocs, ptr)
	if ptr == lastAlloc.ptr {
		lastAlloc.ptr, lastAlloc.buf = 0, nil
	}
}

//go:wasmexport sluice_configure
func sluiceConfigure(ptr, size uint32) int32 { return plugin.configure(hostBytes(ptr, size)) }

//go:wasmexport sluice_scan
func sluiceScan(ptr, size uint32) int32 { return plugin.scanInput(hostBytes(ptr, size)) }

//go:wasmexport sluice_output
func sluiceOutput() uint64 {
	if len(plugin.out) == 0 {
		return 0
	}
	ptr := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(plugin.out))))
	return ptr<<32 | uint64(len(plugin.out))
}

// hostBytes returns the buffer the host filled, which must lie inside a buffer
// from sluiceAlloc. The lookup is what keeps a confused host from making the
// guest read outside its own allocations.
func hostBytes(ptr, size uint32) []byte {
	if size == 0 {
		return nil
	}
	buf := lastAlloc.buf
	if ptr != lastAlloc.ptr || buf == nil {
		var ok bool
		if buf, ok = allocs[ptr]; !ok {
			panic("guest: host passed a buffer it did not allocate")
		}
		lastAlloc.ptr, lastAlloc.buf = ptr, buf
	}
	if uint32(len(buf)) < size {
		panic("guest: host passed a buffer it did not allocate")
	}
	return buf[:size]
}

//go:wasmimport sluice log
func sluiceLog(level int32, ptr unsafe.Pointer, size uint32)

func hostLog(level Level, msg string) {
	sluiceLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}
