package plugin

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// cachedFiles returns wazero's cache file in each module folder under dir,
// by the module folder's name.
func cachedFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "validated" {
			return filepath.SkipDir // markers, not compiled code
		}
		if err == nil && d.Type().IsRegular() && d.Name() != cacheRecord {
			rel, _ := filepath.Rel(dir, path)
			files[strings.SplitN(rel, string(filepath.Separator), 2)[0]] = path
		}
		return nil
	})
	return files
}

// TestCompilationCacheRefusesTamperedEntries checks that a cache entry that is
// not the one compiled from a module, whether another module's file copied
// over it, a whole folder copied under its name, or a file changed in place,
// is removed and compiled afresh rather than run, and that the folder is
// created 0700.
func TestCompilationCacheRefusesTamperedEntries(t *testing.T) {
	ctx := context.Background()
	raw, minimal := moduleBytes(t, wasmbuild.HostileRaw), moduleBytes(t, "minimal")
	check := func(t *testing.T, dir string, wantRejected int) {
		t.Helper()
		r, err := NewRuntime(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		p, err := r.Load(ctx, minimal, Options{Name: "minimal"})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if _, err := p.Scan(ctx, []string{"!probe"}); err != nil {
			t.Errorf("Scan after the cache was tampered with: %v", err)
		}
		if got := r.disk.Rejected(); got != wantRejected {
			t.Errorf("rejected cache folders = %d, want %d", got, wantRejected)
		}
	}
	fill := func(t *testing.T) (dir string, files map[string]string) {
		dir = filepath.Join(t.TempDir(), "cache")
		r, err := NewRuntime(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []struct {
			name string
			wasm []byte
		}{{"raw", raw}, {"minimal", minimal}} {
			if _, err := r.Load(ctx, m.wasm, Options{Name: m.name}); err != nil {
				t.Fatal(err)
			}
		}
		r.Close(ctx)
		files = cachedFiles(t, dir)
		if len(files) != 2 {
			t.Fatalf("cache holds %v, want a file for each of two modules", files)
		}
		return dir, files
	}

	t.Run("untouched", func(t *testing.T) {
		dir, _ := fill(t)
		info, err := os.Stat(dir)
		if err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("cache folder mode %v, %v; want 0700", info.Mode().Perm(), err)
		}
		check(t, dir, 0)
	})
	t.Run("file copied over another", func(t *testing.T) {
		dir, files := fill(t)
		own := minimalFolder(t, files, minimal)
		for folder, path := range files {
			if folder != own {
				// raw's compiled code where minimal's was.
				if err := os.WriteFile(files[own], must(os.ReadFile(path)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		check(t, dir, 1)
	})
	t.Run("folder copied under another's name", func(t *testing.T) {
		dir, files := fill(t)
		own := filepath.Join(dir, minimalFolder(t, files, minimal))
		var other string
		for folder := range files {
			if filepath.Join(dir, folder) != own {
				other = filepath.Join(dir, folder)
			}
		}
		os.RemoveAll(own)
		if err := os.CopyFS(own, os.DirFS(other)); err != nil {
			t.Fatal(err)
		}
		check(t, dir, 1)
	})
	t.Run("file changed in place", func(t *testing.T) {
		dir, files := fill(t)
		path := files[minimalFolder(t, files, minimal)]
		b := must(os.ReadFile(path))
		b[len(b)/2] ^= 0xff
		os.WriteFile(path, b, 0o600)
		check(t, dir, 1)
	})
	t.Run("folder writable by others", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cache")
		os.Mkdir(dir, 0o777)
		os.Chmod(dir, 0o777)
		if _, err := NewRuntime(ctx, dir); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Errorf("NewRuntime on a 0777 folder: %v", err)
		}
	})
}

// minimalFolder returns the name of the cache folder of the minimal module.
func minimalFolder(t *testing.T, files map[string]string, minimal []byte) string {
	t.Helper()
	res, err := instrument(minimal, true)
	if err != nil {
		t.Fatal(err)
	}
	name := "sluice-" + hexDigest(res.wasm)
	if _, ok := files[name]; !ok {
		t.Fatalf("no cache folder %s in %v", name, files)
	}
	return name
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestValidatedModulesAreMarkedInTheCache: a restart on the same cache
// folder loads a module it validated before without validating it again,
// and never takes an invalid module for a validated one.
func TestValidatedModulesAreMarkedInTheCache(t *testing.T) {
	ctx := context.Background()
	// A test binary does not know its wazero version; a release binary does
	// (TestReleaseBinaryServesFromAnyFolder checks its markers).
	real := validatorID
	validatorID = func() string { return validationRules + "-wazero-test" }
	t.Cleanup(func() { validatorID = real })
	dir := filepath.Join(t.TempDir(), "cache")
	minimal := moduleBytes(t, "minimal")
	load := func(wasm []byte) (validations int64, err error) {
		r, err := NewRuntime(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(ctx)
		p, err := r.Load(ctx, wasm, Options{Name: "m"})
		if err == nil {
			if _, err := p.Scan(ctx, []string{"!probe"}); err != nil {
				t.Fatalf("Scan: %v", err)
			}
		}
		return r.validations.Load(), err
	}
	if n, err := load(minimal); err != nil || n != 1 {
		t.Fatalf("first load: %d validations, %v; want 1, nil", n, err)
	}
	if n, err := load(minimal); err != nil || n != 0 {
		t.Fatalf("load after a restart: %d validations, %v; want 0: the marker vouches for these bytes", n, err)
	}

	// A module that is not one is refused, and leaves no marker: it is
	// refused the same way again.
	invalid := append([]byte("\x00asm\x01\x00\x00\x00"), 0x01, 0x05, 0x01, 0x60, 0x00, 0x00) // a type section cut short
	for i := range 2 {
		if _, err := load(invalid); err == nil {
			t.Fatalf("load %d of an invalid module succeeded", i+1)
		}
	}
	if (&moduleCache{dir: dir}).validated(sha256.Sum256(invalid)) {
		t.Fatal("an invalid module was marked as validated")
	}
	// One byte more is another module: the marker of the first does not
	// cover it.
	changed := append(slices.Clone(minimal), 0x00, 0x01, 0x00) // a custom section named ""... of length 1 with no name
	if n, _ := load(changed); n != 1 {
		t.Fatalf("a changed module was validated %d times; want 1", n)
	}
	// A marker that is not a regular file (a link, a folder) vouches for
	// nothing.
	r := &moduleCache{dir: dir}
	other := sha256.Sum256([]byte("other module"))
	if err := os.MkdirAll(r.markerPath(other), 0o700); err != nil {
		t.Fatal(err)
	}
	if r.validated(other) {
		t.Fatal("a folder in place of a marker was taken for one")
	}
}
