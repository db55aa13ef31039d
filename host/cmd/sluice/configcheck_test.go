package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/builtin"
	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// needBuiltin stops a test that runs the embedded default when this test
// binary carries no plugin modules, saying how to get them.
func needBuiltin(t *testing.T) {
	t.Helper()
	if missing := builtin.Missing(); len(missing) > 0 {
		t.Fatalf("this build lacks the built-in plugins %v: run `make plugins` (make test does) before go test", missing)
	}
}

// checkConfig writes yaml to a file with a shared compilation cache, so
// that each check does not compile the plugins again.
func checkConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	yaml = fmt.Sprintf("plugin_cache_dir: %s\n%s", pluginCacheDir, yaml)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var pluginCacheDir = filepath.Join(os.TempDir(), "sluice-cmd-test-wasm-cache")

func TestConfigCheckLoadsPluginsAndPolicy(t *testing.T) {
	pii, err := wasmbuild.Path("pii")
	if err != nil {
		t.Fatal(err)
	}
	notWasm := filepath.Join(t.TempDir(), "pii.wasm")
	os.WriteFile(notWasm, []byte("#!/bin/sh\necho not a module\n"), 0o600)
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "authz.rego"), []byte("package sluice.authz\n\ndecision := {\"allow\": true\n"), 0o600)
	failing := t.TempDir()
	os.WriteFile(filepath.Join(failing, "authz.rego"), []byte("package sluice.authz\n\ndecision := {\"allow\": false}\n"), 0o600)
	os.WriteFile(filepath.Join(failing, "authz_test.rego"), []byte("package sluice.authz_test\n\nimport data.sluice.authz\n\ntest_allows if authz.decision.allow\n"), 0o600)

	for _, tc := range []struct {
		name, yaml string
		want       []string // every reason, in the error
	}{
		{"missing plugin file", "plugins:\n  - {name: pii, path: /nonexistent/pii.wasm}\n",
			[]string{"plugins[0] (pii)", "/nonexistent/pii.wasm", "no such file"}},
		{"a file that is no module", fmt.Sprintf("plugins:\n  - {name: pii, path: %s}\n", notWasm),
			[]string{"plugins[0] (pii)"}},
		{"pinned digest differs", fmt.Sprintf("plugins:\n  - {name: pii, path: %s, sha256: %s}\n", pii, strings.Repeat("0", 64)),
			[]string{"plugins[0] (pii)", "sha256"}},
		{"policy that does not compile", fmt.Sprintf("plugins: []\npolicy:\n  dir: %s\n", broken),
			[]string{"authz.rego:4", "non-terminated object"}},
		{"policy whose test fails", fmt.Sprintf("plugins: []\npolicy:\n  dir: %s\n", failing),
			[]string{"test_allows"}},
		{"every problem at once", fmt.Sprintf("plugins:\n  - {name: pii, path: /nonexistent/pii.wasm}\npolicy:\n  dir: %s\n", broken),
			[]string{"/nonexistent/pii.wasm", "authz.rego:4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := checkConfig(t, tc.yaml)
			out, err := run(t, "config", "check", path)
			if err == nil {
				t.Fatalf("config check passed:\n%s", out)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
			if strings.Contains(out, "listen:") {
				t.Errorf("a failed check must not print the configuration:\n%s", out)
			}
		})
	}

	path := checkConfig(t, fmt.Sprintf("plugins:\n  - {name: pii, path: %s}\n", pii))
	if out, err := run(t, "config", "check", "--quiet", path); err != nil || out != "" {
		t.Fatalf("--quiet on a valid configuration: %v, printed %q", err, out)
	}
}

func TestConfigCheckBuiltin(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "")
	path := checkConfig(t, "plugins:\n  - {name: guard, path: builtin:promptguard}\n")
	out, err := run(t, "config", "check", path)
	if len(builtin.Missing()) > 0 {
		// A binary built without the modules says so, and how to fix it.
		if err == nil || !strings.Contains(err.Error(), "builtin:promptguard is not in this binary") || !strings.Contains(err.Error(), "make build") {
			t.Fatalf("error = %v", err)
		}
		return
	}
	if err != nil || !strings.Contains(out, "path: builtin:promptguard") {
		t.Fatalf("config check: %v\n%s", err, out)
	}
}

// --connect opens the store and Redis as a start does; without it the check
// touches neither.
func TestConfigCheckConnect(t *testing.T) {
	needBuiltin(t)
	t.Setenv("OPENAI_API_KEY", "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadRedis := ln.Addr().String()
	ln.Close() // nothing listens there now

	data := t.TempDir()
	path := checkConfig(t, fmt.Sprintf("data_dir: %s\nlimits:\n  backend: redis\n  redis: {url: 'redis://%s/0'}\n", data, deadRedis))
	if _, err := run(t, "config", "check", "--quiet", path); err != nil {
		t.Fatalf("without --connect, Redis is not dialled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "sluice.db")); !os.IsNotExist(err) {
		t.Fatalf("without --connect the check must not create the store: %v", err)
	}
	_, err = run(t, "config", "check", "--quiet", "--connect", path)
	if err == nil || !strings.Contains(err.Error(), "limits.redis: "+deadRedis) {
		t.Fatalf("--connect with Redis down: %v", err)
	}

	sqlite := checkConfig(t, fmt.Sprintf("data_dir: %s\n", data))
	if _, err := run(t, "config", "check", "--quiet", "--connect", sqlite); err != nil {
		t.Fatalf("--connect on SQLite: %v", err)
	}
}

// Without a file, config check checks the embedded default, and the global
// --config names one as serve's does.
func TestConfigCheckDefault(t *testing.T) {
	needBuiltin(t)
	t.Setenv("OPENAI_API_KEY", "sk-real-provider-key")
	out, err := run(t, "config", "check")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"path: builtin:pii", "path: builtin:contentfilter", "the embedded default: ok", "max_body_bytes: 4194304"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sk-real-provider-key") {
		t.Errorf("the upstream's API key is printed:\n%s", out)
	}
}
