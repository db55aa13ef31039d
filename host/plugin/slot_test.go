package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

func digest(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

func newSlot(t *testing.T, module string, opts Options) *Slot {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "slot"
	}
	s, err := testRuntime.NewSlot(context.Background(), moduleBytes(t, module), opts)
	if err != nil {
		t.Fatalf("NewSlot(%s): %v", module, err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// echoes reports whether a scan through s answers as the hostile Go module
// does (one ECHO finding) rather than as the minimal one (nothing).
func echoes(t *testing.T, s *Slot) bool {
	t.Helper()
	findings, err := s.Scan(context.Background(), []string{"hello"})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return len(findings) == 1 && findings[0].Type == "ECHO"
}

func TestSlotReload(t *testing.T) {
	s := newSlot(t, "minimal", Options{})
	before := s.Status()
	if echoes(t, s) {
		t.Fatal("the minimal module found something")
	}
	hostile := moduleBytes(t, wasmbuild.HostileGo)
	if err := s.Reload(context.Background(), hostile, Options{Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	if !echoes(t, s) {
		t.Error("after Reload, scans do not run on the new module")
	}
	st := s.Status()
	if st.Name != "slot" || st.SHA256 != digest(hostile) || st.Reloads != 1 || st.FailedReloads != 0 || st.LastError != "" {
		t.Errorf("Status() = %+v", st)
	}
	if !st.LoadedAt.After(before.LoadedAt) {
		t.Errorf("LoadedAt %v not after the first load's %v", st.LoadedAt, before.LoadedAt)
	}
}

// TestSlotReloadRefusesBadModules checks that each kind of bad module is
// refused with its reason, leaves the module in force serving, and is
// reported in Status until a good reload clears it.
func TestSlotReloadRefusesBadModules(t *testing.T) {
	hostile := moduleBytes(t, wasmbuild.HostileGo)
	tests := []struct {
		name    string
		wasm    []byte
		opts    Options
		wantErr string
	}{
		{"pin mismatch", hostile, Options{SHA256: digest([]byte("another module"))}, "refusing to load it"},
		{"not wasm", []byte("not a module"), Options{}, "compile"},
		{"wrong ABI version", moduleBytes(t, wasmbuild.HostileABIv2), Options{}, "plugin implements ABI v2"},
		{"missing exports", moduleBytes(t, wasmbuild.HostileMissingExports), Options{}, "missing export sluice_scan"},
		{"configuration rejected", hostile, Options{Config: []byte(`{"fail":true}`)}, "configure rejected: configure: refusing this configuration"},
		{"crashes on a scan", hostile, Options{Config: []byte(`{"always":"panic"}`)}, "smoke test: plugin slot: scan: guest trapped"},
		{"spins on a scan", hostile, Options{Config: []byte(`{"always":"loop"}`), Timeout: 10 * time.Millisecond}, "smoke test: plugin slot: scan: plugin timed out"},
		{"passes only the fixed smoke text", hostile, Options{Config: []byte(`{"smokeonly":true}`)}, "smoke test on generated input 1: plugin slot: scan failed: fails every real request"},
		{"other name", hostile, Options{Name: "other"}, `options name "other"`},
	}
	s := newSlot(t, "minimal", Options{})
	inForce := s.Status().SHA256
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Reload(context.Background(), tt.wasm, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Reload error = %v, want one containing %q", err, tt.wantErr)
			}
			if echoes(t, s) {
				t.Error("the refused module serves scans")
			}
			st := s.Status()
			if st.SHA256 != inForce || st.Reloads != 0 || st.FailedReloads != i+1 || st.LastError != err.Error() || st.LastErrorAt.IsZero() {
				t.Errorf("Status() = %+v", st)
			}
		})
	}
	if err := s.Reload(context.Background(), hostile, Options{}); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.LastError != "" || !st.LastErrorAt.IsZero() || st.Reloads != 1 {
		t.Errorf("after a good reload, Status() = %+v", st)
	}
}

// TestSlotReloadDrainsInFlightScans checks that a scan running during a swap
// finishes on the module it started on, and that this module is closed once
// the scan has returned and not before.
func TestSlotReloadDrainsInFlightScans(t *testing.T) {
	s := newSlot(t, wasmbuild.HostileGo, Options{Timeout: 5 * time.Second})
	old := s.cur.Load().p
	type result struct {
		findings []Finding
		err      error
	}
	done := make(chan result, 1)
	go func() {
		findings, err := s.Scan(context.Background(), []string{"sleep"}) // 200 ms of work
		done <- result{findings, err}
	}()
	// Wait until the scan holds the old version.
	for deadline := time.Now().Add(5 * time.Second); s.cur.Load().refs.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the scan never started")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Reload(context.Background(), moduleBytes(t, "minimal"), Options{}); err != nil {
		t.Fatal(err)
	}
	if old.closed.Load() {
		t.Fatal("the old module was closed while a scan was running on it")
	}
	if echoes(t, s) {
		t.Error("a scan started after the swap ran on the old module")
	}
	r := <-done
	if r.err != nil || len(r.findings) != 1 || r.findings[0].Type != "ECHO" {
		t.Fatalf("in-flight scan = %v, %v; want it finished on the old module", r.findings, r.err)
	}
	for deadline := time.Now().Add(5 * time.Second); !old.closed.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("the old module was not closed after its last scan returned")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSlotReloadUnderLoad swaps modules back and forth while scans run from
// several goroutines: no scan may fail, and every replaced module is closed.
func TestSlotReloadUnderLoad(t *testing.T) {
	modules := [][]byte{moduleBytes(t, "minimal"), moduleBytes(t, wasmbuild.HostileGo)}
	s := newSlot(t, "minimal", Options{PoolSize: 4, Timeout: 5 * time.Second})
	var stop atomic.Bool
	var scans atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				if _, err := s.Scan(context.Background(), []string{"hello"}); err != nil {
					errs <- err
					return
				}
				scans.Add(1)
			}
		})
	}
	var replaced []*Plugin
	for i := range 6 {
		replaced = append(replaced, s.cur.Load().p)
		if err := s.Reload(context.Background(), modules[(i+1)%2], Options{}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("scan during reloads: %v", err)
	}
	if scans.Load() == 0 {
		t.Fatal("no scan ran")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		open := 0
		for _, p := range replaced {
			if !p.closed.Load() {
				open++
			}
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d replaced modules still open", open, len(replaced))
		}
	}
	if st := s.Status(); st.Reloads != 6 {
		t.Errorf("Reloads = %d, want 6", st.Reloads)
	}
}

func TestSlotClose(t *testing.T) {
	s := newSlot(t, wasmbuild.HostileGo, Options{Timeout: 5 * time.Second})
	p := s.cur.Load().p
	done := make(chan error, 1)
	go func() {
		_, err := s.Scan(context.Background(), []string{"sleep"})
		done <- err
	}()
	for s.cur.Load().refs.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Close closes the module only after the last scan on it has returned,
	// so the scan in flight was not cut short.
	if !p.closed.Load() {
		t.Error("Close left the module open")
	}
	if err := <-done; err != nil {
		t.Errorf("scan in flight at Close: %v", err)
	}
	if _, err := s.Scan(context.Background(), []string{"x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Scan after Close: %v, want ErrClosed", err)
	}
	if err := s.Reload(context.Background(), moduleBytes(t, "minimal"), Options{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Reload after Close: %v, want ErrClosed", err)
	}
}

// watchedSlot serves path's module through a Slot reloaded by a Watcher, and
// returns the outcome of every reload the Watcher makes.
func watchedSlot(t *testing.T, path string) (*Slot, <-chan error) {
	t.Helper()
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := testRuntime.NewSlot(context.Background(), wasm, Options{Name: "watched", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	reloads := make(chan error, 16)
	w, err := NewWatcher(WatchOptions{Debounce: 100 * time.Millisecond, Reloaded: func(_ *Slot, err error) { reloads <- err }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.Add(path, s); err != nil {
		t.Fatal(err)
	}
	return s, reloads
}

func nextReload(t *testing.T, reloads <-chan error) error {
	t.Helper()
	select {
	case err := <-reloads:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the watcher made no reload")
		return nil
	}
}

func noReload(t *testing.T, reloads <-chan error) {
	t.Helper()
	select {
	case err := <-reloads:
		t.Fatalf("unexpected reload, error %v", err)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestWatcherReloadsChangedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugin.wasm")
	minimal, hostile, badABI := moduleBytes(t, "minimal"), moduleBytes(t, wasmbuild.HostileGo), moduleBytes(t, wasmbuild.HostileABIv2)
	if err := os.WriteFile(path, minimal, 0o644); err != nil {
		t.Fatal(err)
	}
	s, reloads := watchedSlot(t, path)

	// A save by rename, as editors and deploy tools do it.
	tmp := filepath.Join(dir, ".plugin.wasm.tmp")
	if err := os.WriteFile(tmp, hostile, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if err := nextReload(t, reloads); err != nil {
		t.Fatalf("reload after a save by rename: %v", err)
	}
	if !echoes(t, s) || s.Status().SHA256 != digest(hostile) {
		t.Fatalf("after the rename, Status() = %+v", s.Status())
	}

	// A bad module written in place is refused; the old one stays.
	if err := os.WriteFile(path, badABI, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := nextReload(t, reloads); err == nil || !strings.Contains(err.Error(), "ABI v2") {
		t.Fatalf("reload of a wrong-ABI module: %v, want it refused", err)
	}
	if !echoes(t, s) || s.Status().FailedReloads != 1 {
		t.Fatalf("after a refused module, Status() = %+v", s.Status())
	}

	// A copy in several writes is read once, after the last one.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(minimal); i += 100 {
		if _, err := f.Write(minimal[i:min(i+100, len(minimal))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.Close()
	if err := nextReload(t, reloads); err != nil {
		t.Fatalf("reload after a copy in several writes: %v", err)
	}
	if echoes(t, s) {
		t.Fatal("after the copy, scans do not run on the new module")
	}

	// Touching the file, or rewriting the same bytes, reloads nothing.
	now := time.Now()
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, minimal, 0o644); err != nil {
		t.Fatal(err)
	}
	noReload(t, reloads)
	if st := s.Status(); st.Reloads != 2 || st.FailedReloads != 1 {
		t.Errorf("Status() = %+v, want 2 reloads and 1 failure", st)
	}
}

// TestWatcherFollowsSymlinkSwap mounts the module the way Kubernetes mounts a
// ConfigMap: the file is a link through "..data", a link to a folder that is
// replaced by renaming a new link over it.
func TestWatcherFollowsSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name string, wasm []byte) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "plugin.wasm"), wasm, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", moduleBytes(t, "minimal"))
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "plugin.wasm")
	if err := os.Symlink(filepath.Join("..data", "plugin.wasm"), path); err != nil {
		t.Fatal(err)
	}
	s, reloads := watchedSlot(t, path)

	version("..v2", moduleBytes(t, wasmbuild.HostileGo))
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := nextReload(t, reloads); err != nil {
		t.Fatalf("reload after the link swap: %v", err)
	}
	if !echoes(t, s) {
		t.Errorf("after the link swap, Status() = %+v", s.Status())
	}
}
