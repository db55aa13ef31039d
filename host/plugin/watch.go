package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a Watcher waits after the last change to a
// folder before it reloads: long enough for a copy in several writes to
// finish, short enough that an operator sees the new module at once.
const DefaultDebounce = 250 * time.Millisecond

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Debounce is the quiet time after the last file event before the
	// modules are read. Default DefaultDebounce.
	Debounce time.Duration
	// Logger receives one line per reload attempt. Default slog.Default().
	Logger *slog.Logger
	// Reloaded, if set, is called after each reload attempt the Watcher
	// makes, with its error (nil when the new module is in service).
	Reloaded func(s *Slot, err error)
}

// Watcher reloads Slots when their module files change on disk. It watches
// the folders that hold the files rather than the files, so that a save by
// rename (an editor, `mv`, a Kubernetes ConfigMap's symbolic link swap) is
// seen like a write in place, and it reloads a Slot only when the file's
// SHA-256 digest differs from the last one it tried. A Slot keeps the options
// it was given; with a SHA256 pin, a changed file is refused until the pin is
// changed through Reload.
type Watcher struct {
	fsw    *fsnotify.Watcher
	opts   WatchOptions
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	dirs map[string]*watchedDir
}

type watchedDir struct {
	timer *time.Timer
	files []*watchedFile
}

type watchedFile struct {
	path string
	slot *Slot
	sum  string // digest of the last module read from path
}

// NewWatcher starts a Watcher with no files.
func NewWatcher(opts WatchOptions) (*Watcher, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("plugin watcher: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{fsw: fsw, opts: opts, ctx: ctx, cancel: cancel, done: make(chan struct{}), dirs: map[string]*watchedDir{}}
	go w.run()
	return w, nil
}

// Add reloads s from path whenever the file changes. The module s serves now
// is taken as the file's current content.
func (w *Watcher) Add(path string, s *Slot) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("plugin %s: watch %s: %w", s.Name(), path, err)
	}
	dir := filepath.Dir(abs)
	w.mu.Lock()
	defer w.mu.Unlock()
	d, ok := w.dirs[dir]
	if !ok {
		if err := w.fsw.Add(dir); err != nil {
			return fmt.Errorf("plugin %s: watch %s: %w", s.Name(), dir, err)
		}
		d = &watchedDir{}
		d.timer = time.AfterFunc(time.Hour, func() { w.check(d) })
		d.timer.Stop()
		w.dirs[dir] = d
	}
	d.files = append(d.files, &watchedFile{path: abs, slot: s, sum: s.Status().SHA256})
	return nil
}

// Close stops watching. A reload in progress is canceled.
func (w *Watcher) Close() error {
	w.cancel()
	err := w.fsw.Close()
	<-w.done
	w.mu.Lock()
	for _, d := range w.dirs {
		d.timer.Stop()
	}
	w.mu.Unlock()
	return err
}

func (w *Watcher) run() {
	defer close(w.done)
	for {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			w.mu.Lock()
			if d := w.dirs[filepath.Dir(ev.Name)]; d != nil && relevant(d, ev) {
				d.timer.Reset(w.opts.Debounce)
			}
			w.mu.Unlock()
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.opts.Logger.Warn("plugin watcher", "error", err)
		}
	}
}

// relevant reports whether ev may have changed one of d's files: an event on
// the file's own name, or on a name starting with "..", as Kubernetes uses for
// the folder it swaps in under a mounted ConfigMap. A change of mode alone
// changes no content.
func relevant(d *watchedDir, ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	if strings.HasPrefix(filepath.Base(ev.Name), "..") {
		return true
	}
	for _, f := range d.files {
		if f.path == ev.Name {
			return true
		}
	}
	return false
}

// check reloads each file of d whose content changed. It runs on the
// debounce timer's goroutine; a timer reset while it runs starts another
// check afterwards, which finds nothing new unless the file changed again.
func (w *Watcher) check(d *watchedDir) {
	w.mu.Lock()
	files := append([]*watchedFile(nil), d.files...)
	w.mu.Unlock()
	for _, f := range files {
		if w.ctx.Err() != nil {
			return
		}
		w.checkFile(f)
	}
}

func (w *Watcher) checkFile(f *watchedFile) {
	wasm, err := os.ReadFile(f.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// Between the two steps of a save by rename; the rename's own
			// event brings the watcher back.
			return
		}
		w.report(f.slot, f.slot.failed(fmt.Errorf("plugin %s: reading %s: %w; the module in force stays", f.slot.Name(), f.path, err)))
		return
	}
	sum := sha256.Sum256(wasm)
	digest := hex.EncodeToString(sum[:])
	w.mu.Lock()
	same := digest == f.sum
	f.sum = digest
	w.mu.Unlock()
	if same {
		return
	}
	err = f.slot.Reload(w.ctx, wasm, f.slot.options())
	if errors.Is(err, ErrClosed) {
		return
	}
	w.report(f.slot, err)
}

func (w *Watcher) report(s *Slot, err error) {
	if err != nil {
		w.opts.Logger.Error("plugin module changed on disk but was not loaded", "plugin", s.Name(), "error", err)
	} else {
		st := s.Status()
		w.opts.Logger.Info("plugin module reloaded", "plugin", s.Name(), "sha256", st.SHA256)
	}
	if w.opts.Reloaded != nil {
		w.opts.Reloaded(s, err)
	}
}
