package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long Watch waits after the last change before it
// reloads: editors save in several steps (write a temporary file, rename it
// over the old one, change its mode), and a reload between steps would
// only fail, or test a half-saved set.
const watchDebounce = 200 * time.Millisecond

// Watch reloads the sets whose source is a folder whenever a file in it, or
// in a folder below it, is written, created, removed or renamed, until ctx
// is done. Each burst of changes gives one Reload, watchDebounce after the
// last change; its outcome goes to SetConfig.Reloaded and Status. Sets read
// from an fs.FS are not watched; with no folder to watch, Watch returns at
// once. The error is for a watch that could not start or broke down.
func (s *Set) Watch(ctx context.Context) error {
	var dirs []string
	for _, sl := range []*slot{s.enforced, s.shadow} {
		if sl != nil && sl.src.Dir != "" {
			dirs = append(dirs, sl.src.Dir)
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("policy: watch: %w", err)
	}
	defer w.Close()
	for _, dir := range dirs {
		if err := watchTree(w, dir); err != nil {
			return fmt.Errorf("policy: watch %s: %w", dir, err)
		}
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("policy: watch: watcher closed")
			}
			// A folder created (or renamed into place) below a watched one
			// is watched too, and may already hold files.
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && !hidden(ev.Name) {
					_ = watchTree(w, ev.Name) // a folder gone again needs no watch
				}
			}
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
				continue // touch and chmod change no policy
			}
			timer.Reset(watchDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("policy: watch: watcher closed")
			}
			// An overflow loses events, not the watch: reload to catch up.
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				timer.Reset(watchDebounce)
				continue
			}
			return fmt.Errorf("policy: watch: %w", err)
		case <-timer.C:
			_ = s.Reload(ctx) // reported through Status and SetConfig.Reloaded
		}
	}
}

// watchTree adds dir and every folder below it, hidden ones excepted, as
// readRegoFiles skips them: fsnotify watches one folder, not a tree.
func watchTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != dir && hidden(path) {
			return filepath.SkipDir
		}
		return w.Add(path)
	})
}

func hidden(path string) bool { return strings.HasPrefix(filepath.Base(path), ".") }
