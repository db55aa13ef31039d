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
// in a folder below it, is written, created, removed or renamed, and those
// whose source is a bundle file whenever it is written or replaced, until
// ctx is done. Each burst of changes gives one Reload, watchDebounce after the
// last change; its outcome goes to SetConfig.Reloaded and Status. Sets read
// from an fs.FS are not watched; with no folder to watch, Watch returns at
// once. The error is for a watch that could not start or broke down.
//
// The folder itself may be replaced: renamed over (mv policies.new
// policies), or a symlink to it swapped (ln -sfn, and the ..data link of a
// mounted Kubernetes ConfigMap). Watch follows the folder's parent for
// that, watches the new folder, reloads, and reports it through
// SetConfig.Rewatched.
func (s *Set) Watch(ctx context.Context) error {
	var roots []*watchRoot
	for _, sl := range []*slot{s.enforced, s.shadow} {
		if sl != nil && sl.src.watched() != "" {
			dir := filepath.Clean(sl.src.watched())
			roots = append(roots, &watchRoot{dir: dir, parent: filepath.Dir(dir), base: filepath.Base(dir)})
		}
	}
	if len(roots) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("policy: watch: %w", err)
	}
	defer w.Close()
	for _, r := range roots {
		// Without the parent, edits are still followed, a replacement of
		// the folder not: say so, and go on.
		if err := w.Add(r.parent); err != nil && s.cfg.Rewatched != nil {
			s.cfg.Rewatched(r.dir, fmt.Errorf("its parent cannot be watched, so a replacement of it will not be seen: %w", err))
		}
		if err := r.watch(w); err != nil {
			return fmt.Errorf("policy: watch %s: %w", r.dir, err)
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
			if r := replacedRoot(roots, ev); r != nil {
				// The folder, or the link to it, was replaced or removed:
				// watch whatever is there now, and reload from it.
				err := r.watch(w)
				if s.cfg.Rewatched != nil {
					s.cfg.Rewatched(r.dir, err)
				}
				timer.Reset(watchDebounce)
				continue
			}
			if isParentEvent(roots, ev) {
				continue // a sibling of a policy folder
			}
			// A folder created (or renamed into place) below a watched one
			// is watched too, and may already hold files.
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && !hidden(ev.Name) {
					if r := rootOf(roots, ev.Name); r != nil {
						_ = r.add(w, ev.Name) // a folder gone again needs no watch
					}
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

// watchRoot is one policy folder as Watch follows it: by its path, which a
// replacement keeps, not by the folder the path led to when the watch
// started.
type watchRoot struct {
	dir, parent, base string
	// resolved is dir with symlinks followed when it was last watched; ""
	// while nothing is there.
	resolved string
	// watched are the folders watched under resolved.
	watched []string
}

// watch drops the watches of the folder dir led to and watches the tree it
// leads to now. A dir that is gone is an error, and is watched again when
// its parent sees it come back.
func (r *watchRoot) watch(w *fsnotify.Watcher) error {
	for _, p := range r.watched {
		_ = w.Remove(p) // the folder may be gone, and its watch with it
	}
	r.watched, r.resolved = nil, ""
	resolved, err := filepath.EvalSymlinks(r.dir)
	if err != nil {
		return err
	}
	r.resolved = resolved
	return r.add(w, resolved)
}

// add watches dir and every folder below it, hidden ones excepted, as
// readRegoFiles skips them: fsnotify watches one folder, not a tree. The
// hidden ..data link of a Kubernetes ConfigMap is renamed in the watched
// folder itself, which is enough to see its swaps.
func (r *watchRoot) add(w *fsnotify.Watcher, dir string) error {
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
		if err := w.Add(path); err != nil {
			return err
		}
		r.watched = append(r.watched, path)
		return nil
	})
}

// replacedRoot returns the root whose folder, or link, ev says was
// created, removed or renamed in its parent; nil for any other event.
func replacedRoot(roots []*watchRoot, ev fsnotify.Event) *watchRoot {
	if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
		return nil
	}
	for _, r := range roots {
		if filepath.Dir(ev.Name) == r.parent && filepath.Base(ev.Name) == r.base {
			return r
		}
	}
	return nil
}

// isParentEvent reports whether ev is about an entry of a root's parent
// other than the root: the parent is watched only to see the root
// replaced.
func isParentEvent(roots []*watchRoot, ev fsnotify.Event) bool {
	for _, r := range roots {
		if filepath.Dir(ev.Name) == r.parent && !within(r.resolved, ev.Name) && filepath.Base(ev.Name) != r.base {
			return true
		}
	}
	return false
}

// rootOf returns the root whose resolved folder holds path.
func rootOf(roots []*watchRoot, path string) *watchRoot {
	for _, r := range roots {
		if within(r.resolved, path) {
			return r
		}
	}
	return nil
}

func within(dir, path string) bool {
	return dir != "" && (path == dir || strings.HasPrefix(path, dir+string(filepath.Separator)))
}

func hidden(path string) bool { return strings.HasPrefix(filepath.Base(path), ".") }
