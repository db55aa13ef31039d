// Package wasmbuild builds the repository's WebAssembly plugins for tests. It
// runs the same command as the Makefile, only when the module is missing or
// older than its sources, and at most once per module per test process.
package wasmbuild

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Path returns the absolute path of <repo root>/bin/plugins/<name>.wasm, first
// building it from ./plugins/<name>/wasm if it is missing or older than any .go
// file under plugins/<name> or sdk.
func Path(name string) (string, error) {
	return build(name, "plugins/"+name+"/wasm", "bin/plugins/"+name+".wasm", "plugins/"+name, "sdk")
}

// TestdataPath is Path for the test-only modules in testdata/plugins/<name>
// (hostile plugins that panic, spin or break the ABI), built into
// bin/testdata/plugins/<name>.wasm.
func TestdataPath(name string) (string, error) {
	return build("testdata:"+name, "testdata/plugins/"+name, "bin/testdata/plugins/"+name+".wasm", "testdata/plugins/"+name, "sdk")
}

// Hostile modules by name, for HostilePath. Each must fail cleanly: at load,
// or per call while the plugin keeps serving other calls.
const (
	// HostileGo is the Go plugin in testdata/plugins/hostile: its first
	// scanned text picks the misbehaviour ("panic", "loop", "grow", "error",
	// "bad-offsets", "bad-message", "bad-type", "count", "log", "escape");
	// any other text gets one ECHO finding.
	HostileGo = "hostile"
	// HostileRaw is a hand-written ABI v1 module whose first scanned text
	// picks a breach of the contract: "!oob" (result outside memory), "!big"
	// (result over the 16 MiB limit), "!trap", "!grow" (memory until the
	// limit, then a trap), "!spin", "!json" (a result that is not JSON),
	// "!fill" (2,000 memory.fill calls of 16 MiB), "!recurse" (a function
	// that calls itself twice per level, 40 levels deep, with no loop); any
	// other text gets an empty result.
	HostileRaw = "raw"
	// HostileABIv2 declares ABI version 2: refused at load.
	HostileABIv2 = "abi-v2"
	// HostileMissingExports lacks sluice_scan and sluice_output and has a
	// wrong sluice_free: refused at load.
	HostileMissingExports = "missing-exports"
	// HostileForbiddenImport imports env.system: refused at load.
	HostileForbiddenImport = "forbidden-import"
	// HostileSpinInit never returns from _initialize: the load fails after
	// its set-up deadline (2 s by default).
	HostileSpinInit = "spin-init"
	// HostileStartSpin has a start function that never returns: the load
	// fails after its set-up deadline.
	HostileStartSpin = "start-spin"
	// HostileUndeclaredGlobal writes a global it does not declare, so it is
	// not a valid module: refused at load before the host rewrites it.
	HostileUndeclaredGlobal = "undeclared-global"
)

// HostilePath returns the absolute path of the hostile test module name (one
// of the Hostile constants). HostileGo is built on demand like TestdataPath;
// the others are hand-written in WebAssembly text, checked in with their
// source as testdata/plugins/hostile/wat/<name>.wasm, so no tool is needed.
func HostilePath(name string) (string, error) {
	if name == HostileGo {
		return TestdataPath(name)
	}
	return checkedIn("testdata/plugins/hostile/wat/" + name + ".wasm")
}

// MinimalPath returns the absolute path of testdata/plugins/minimal/minimal.wasm,
// the smallest ABI v1 module, which finds nothing: what a scan costs the host
// alone.
func MinimalPath() (string, error) {
	return checkedIn("testdata/plugins/minimal/minimal.wasm")
}

func checkedIn(rel string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, filepath.FromSlash(rel))
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	return path, nil
}

type result struct {
	once sync.Once
	path string
	err  error
}

var (
	mu      sync.Mutex
	results = map[string]*result{}
)

func build(key, pkg, out string, sources ...string) (string, error) {
	mu.Lock()
	r, ok := results[key]
	if !ok {
		r = &result{}
		results[key] = r
	}
	mu.Unlock()
	r.once.Do(func() { r.path, r.err = buildOnce(pkg, out, sources) })
	return r.path, r.err
}

func buildOnce(pkg, out string, sources []string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	out = filepath.Join(root, filepath.FromSlash(out))
	if info, err := os.Stat(out); err == nil {
		newest, err := newestSource(root, sources)
		if err != nil {
			return "", err
		}
		if !newest.After(info.ModTime()) {
			return out, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	// Build next to the target and rename, so that test processes of other
	// packages building the same module at once never see a partial file.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".build-*.wasm")
	if err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", tmp.Name(), "./"+pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("wasmbuild: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared ./%s: %w\n%s", pkg, err, stderr.Bytes())
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	return out, nil
}

func repoRoot() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("wasmbuild: go env GOMOD: %w", err)
	}
	path := strings.TrimSpace(string(gomod))
	if path == "" || path == os.DevNull {
		return "", fmt.Errorf("wasmbuild: not inside a Go module")
	}
	return filepath.Dir(path), nil
}

// newestSource returns the latest modification time of the .go files under dirs.
func newestSource(root string, dirs []string) (time.Time, error) {
	var newest time.Time
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.ModTime().After(newest) {
				newest = info.ModTime()
			}
			return nil
		})
		if err != nil {
			return time.Time{}, fmt.Errorf("wasmbuild: %w", err)
		}
	}
	return newest, nil
}
