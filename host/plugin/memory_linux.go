//go:build linux

package plugin

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// memoryImage is a snapshot of linear memory in a sealed anonymous file
// (memfd), which every instance of the plugin maps copy-on-write: pages a
// call only reads are shared by all instances and by the image, and a page
// an instance wrote is a private copy, which /proc/self/pagemap tells apart.
// A reset copies the image back over exactly those pages.
//
// Copying rather than dropping them (madvise MADV_DONTNEED, which would also
// do) is what keeps a reset cheap: a dropped page costs a copy-on-write fault
// when the next call writes it again, measured at 2 to 3 µs a page here,
// against 75 ns to copy it. The private copies a plugin's calls write
// therefore stay, and each reset copies all of them, whether this call wrote
// them or an earlier one did; when they exceed maxPrivatePages they are all
// dropped at once, so that one call that wrote much does not make every
// later reset slow. The private pages are found with the PAGEMAP_SCAN ioctl
// (Linux 6.7 and later), which returns them as ranges; on an older kernel by
// reading an entry per page, about four times slower for a Go plugin's 3 MiB;
// without a readable pagemap, a reset drops every page.
type memoryImage struct {
	file *os.File // nil when the image is a copy (see takeImage)
	size int
	view []byte // the image, mapped read-only and shared, or the copy
}

// maxPrivatePages bounds the private pages an instance keeps between resets.
const maxPrivatePages = 512

// pagemap is /proc/self/pagemap, or nil if it cannot be read.
var pagemap = sync.OnceValue(func() *os.File {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil
	}
	var entry [8]byte
	if _, err := f.ReadAt(entry[:], 0); err != nil && err != io.EOF {
		f.Close()
		return nil
	}
	return f
})

// Bits of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const (
	pagePresent = 1 << 63
	pageSwapped = 1 << 62
	pageFile    = 1 << 61 // file page or shared anonymous: not a private copy
)

// linearMemory backs one instance's linear memory with a mapping of the
// largest size the memory may grow to, so that it never moves: the snapshot
// image over its start, anonymous zero pages after it.
type linearMemory struct {
	buf     []byte   // the whole mapping
	size    uint64   // current length
	entries []byte   // pagemap entries of the image's pages, for readPrivate
	private [][2]int // byte ranges of private pages, found by reset
	// vec receives PAGEMAP_SCAN's regions. It lives here, on the heap,
	// because the kernel gets its address as a number: an array on the
	// goroutine's stack would move when the stack grows, and the kernel
	// would write to where it was.
	vec [32]pageRegion
}

var _ experimental.LinearMemory = (*linearMemory)(nil)

// Reallocate implements experimental.LinearMemory.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	m.size = size
	return m.buf[:size:size]
}

// Free implements experimental.LinearMemory.
func (m *linearMemory) Free() {
	if m.buf != nil {
		unix.Munmap(m.buf)
		m.buf = nil
	}
}

// memoryAllocator maps the memory of one instantiation, over img if it is
// not nil, and remembers it.
type memoryAllocator struct {
	img *memoryImage
	mem *linearMemory
	err error
}

func (a *memoryAllocator) Allocate(capacity, maximum uint64) experimental.LinearMemory {
	m := &linearMemory{}
	a.mem = m
	if maximum == 0 {
		maximum = capacity
	}
	buf, err := unix.Mmap(-1, 0, int(maximum), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		a.err = fmt.Errorf("map %d bytes of linear memory: %w", maximum, err)
		return m // Reallocate returns nil, and wazero fails the instantiation
	}
	m.buf = buf
	if a.img != nil {
		if err := a.img.mapOnto(m); err != nil {
			a.err = err
			m.Free()
		}
	}
	return m
}

// instantiateContext returns ctx with an allocator that maps img (nil for the
// first instance, before there is a snapshot), and a function that returns the
// memory it mapped.
func instantiateContext(ctx context.Context, img *memoryImage) (context.Context, func() (*linearMemory, error)) {
	a := &memoryAllocator{img: img}
	return experimental.WithMemoryAllocator(ctx, a), func() (*linearMemory, error) {
		if a.err != nil {
			return nil, a.err
		}
		if a.mem == nil || a.mem.buf == nil {
			return nil, fmt.Errorf("the module's memory was not mapped")
		}
		return a.mem, nil
	}
}

// mapOnto maps the image copy-on-write over the start of m.
func (img *memoryImage) mapOnto(m *linearMemory) error {
	if img.size > len(m.buf) {
		return fmt.Errorf("snapshot of %d bytes does not fit a memory of at most %d", img.size, len(m.buf))
	}
	if img.file == nil {
		copy(m.buf, img.view)
		return nil
	}
	_, err := unix.MmapPtr(int(img.file.Fd()), 0, unsafe.Pointer(unsafe.SliceData(m.buf)), uintptr(img.size),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		return fmt.Errorf("map the snapshot: %w", err)
	}
	return nil
}

// takeImage writes the current contents of m to a sealed memfd and maps it
// over m, which then resets to it.
//
// Where memfd_create or the mappings are refused (a sandbox that filters
// system calls), the image is a copy in Go memory instead, and a reset copies
// it back whole, as on other systems.
func takeImage(mem api.Memory, m *linearMemory) (*memoryImage, error) {
	if !noMemfd.Load() {
		if img, err := mappedImage(mem, m); err == nil {
			return img, nil
		}
	}
	size := int(mem.Size())
	return &memoryImage{size: size, view: append([]byte(nil), m.buf[:size]...)}, nil
}

// noMemfd makes takeImage copy; tests set it to run the fallback.
var noMemfd atomic.Bool

func mappedImage(mem api.Memory, m *linearMemory) (*memoryImage, error) {
	size := int(mem.Size())
	fd, err := unix.MemfdCreate("sluice-plugin-snapshot", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sluice-plugin-snapshot")
	img := &memoryImage{file: f, size: size}
	if _, err := f.Write(m.buf[:size]); err != nil {
		f.Close()
		return nil, fmt.Errorf("write snapshot: %w", err)
	}
	// Nothing may change the image once instances map it. F_SEAL_WRITE
	// would wait for transient references the kernel holds on pages just
	// written, and fails with EBUSY on a busy machine; F_SEAL_FUTURE_WRITE
	// (Linux 5.1) refuses every later write without waiting, and the file
	// has been written only by this function.
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_FUTURE_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal snapshot: %w", err)
	}
	view, err := unix.Mmap(fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map snapshot: %w", err)
	}
	img.view = view
	if err := img.mapOnto(m); err != nil {
		img.close()
		return nil, err
	}
	return img, nil
}

// pmScanArg is the kernel's struct pm_scan_arg, and pageRegion its struct
// page_region (include/uapi/linux/fs.h).
type pmScanArg struct {
	size, flags, start, end, walkEnd, vec, vecLen, maxPages       uint64
	categoryInverted, categoryMask, categoryAnyofMask, returnMask uint64
}

type pageRegion struct{ start, end, categories uint64 }

const (
	pagemapScan   = 0xc0606610 // _IOWR('f', 16, struct pm_scan_arg)
	pageIsFile    = 1 << 2
	pageIsPresent = 1 << 3
	pageIsSwapped = 1 << 4
)

// noPagemapScan is set when the kernel does not have PAGEMAP_SCAN.
var noPagemapScan atomic.Bool

// scanPrivate sets m.private to the ranges of private pages in m's first
// size bytes, and reports false if PAGEMAP_SCAN is not available.
func (m *linearMemory) scanPrivate(pm *os.File, size int) bool {
	if noPagemapScan.Load() {
		return false
	}
	vec := &m.vec
	base := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(m.buf))))
	arg := pmScanArg{
		start: base, end: base + uint64(size),
		vec: uint64(uintptr(unsafe.Pointer(&vec[0]))), vecLen: uint64(len(vec)),
		// Not a file page, and present or swapped out.
		categoryInverted: pageIsFile, categoryMask: pageIsFile,
		categoryAnyofMask: pageIsPresent | pageIsSwapped, returnMask: pageIsPresent | pageIsSwapped | pageIsFile,
	}
	arg.size = uint64(unsafe.Sizeof(arg))
	m.private = m.private[:0]
	for arg.start < arg.end {
		n, _, errno := unix.Syscall(unix.SYS_IOCTL, pm.Fd(), pagemapScan, uintptr(unsafe.Pointer(&arg)))
		if errno != 0 {
			noPagemapScan.Store(true)
			return false
		}
		for _, r := range vec[:n] {
			m.private = append(m.private, [2]int{int(r.start - base), int(r.end - base)})
		}
		arg.start = arg.walkEnd
	}
	return true
}

// readPrivate is scanPrivate for kernels without PAGEMAP_SCAN: it reads one
// pagemap entry per page.
func (m *linearMemory) readPrivate(pm *os.File, size int) bool {
	pageSize := os.Getpagesize()
	pages := size / pageSize
	if len(m.entries) < pages*8 {
		m.entries = make([]byte, pages*8)
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.buf)))
	if n, _ := pm.ReadAt(m.entries[:pages*8], int64(base/uintptr(pageSize))*8); n != pages*8 {
		return false
	}
	m.private = m.private[:0]
	for i := range pages {
		e := binary.LittleEndian.Uint64(m.entries[i*8:])
		if e&pageSwapped != 0 || e&pagePresent != 0 && e&pageFile == 0 {
			m.private = append(m.private, [2]int{i * pageSize, (i + 1) * pageSize})
		}
	}
	return true
}

// reset makes the instance's memory read as the image again: it copies the
// image over every page the instance holds a private copy of. The caller has
// checked that the memory has the image's size.
func (m *linearMemory) reset(img *memoryImage, _ api.Memory) bool {
	if img.file == nil {
		copy(m.buf[:img.size], img.view)
		return true
	}
	pm := pagemap()
	if pm == nil || !m.scanPrivate(pm, img.size) && !m.readPrivate(pm, img.size) {
		return unix.Madvise(m.buf[:img.size], unix.MADV_DONTNEED) == nil
	}
	private := 0
	for _, r := range m.private {
		private += r[1] - r[0]
	}
	if private > maxPrivatePages*os.Getpagesize() {
		return unix.Madvise(m.buf[:img.size], unix.MADV_DONTNEED) == nil
	}
	for _, r := range m.private {
		copy(m.buf[r[0]:r[1]], img.view[r[0]:r[1]])
	}
	return true
}

// forget drops every private page of a new instance's memory over the
// image, so that it reads as the image again. Instantiation writes the
// module's data segments over the image (1.3 MiB for a Go module), and those
// pages would otherwise stay private, and be copied back at every reset.
func (m *linearMemory) forget(img *memoryImage) {
	if img.file != nil {
		unix.Madvise(m.buf[:img.size], unix.MADV_DONTNEED)
	}
}

func (img *memoryImage) close() {
	if img != nil && img.file != nil {
		if img.view != nil {
			unix.Munmap(img.view)
		}
		img.file.Close()
	}
}
