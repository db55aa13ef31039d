package e2e

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReleaseBinaryServesFromAnyFolder is a newcomer's first run: from a
// fresh copy of the source, `make build`, then bin/sluice alone in an empty
// folder serves the demo with no configuration, its plugins and policy taken
// from the binary itself.
func TestReleaseBinaryServesFromAnyFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binary with make")
	}
	src := cloneSource(t)
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	build := exec.CommandContext(bctx, "make", "build", "VERSION=v0.0.0-e2e")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build in a fresh copy: %v\n%s", err, out)
	}
	// make run serves elsewhere with LISTEN=, and passes ARGS to serve.
	dry := exec.Command("make", "-n", "run", "LISTEN=127.0.0.1:9090", "ARGS=--admin-listen 127.0.0.1:9091")
	dry.Dir = src
	if out, err := dry.CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "./bin/sluice serve --listen 127.0.0.1:9090 --admin-listen 127.0.0.1:9091\n") {
		t.Errorf("make -n run LISTEN=… ARGS=…: %v\n%s", err, out)
	}
	sums, err := os.ReadFile(filepath.Join(src, "host/builtin/plugins/SHA256SUMS"))
	if err != nil {
		t.Fatalf("make build pins the embedded plugins in SHA256SUMS: %v", err)
	}
	pinned := map[string]string{} // "pii" -> digest
	for line := range strings.Lines(string(sums)) {
		f := strings.Fields(line)
		pinned[strings.TrimSuffix(f[1], ".wasm")] = f[0]
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	raw, err := os.ReadFile(filepath.Join(src, "bin/sluice"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(src) // nothing of the source tree is left to fall back on
	assertStatic(t, bin)

	version, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(version), "sluice v0.0.0-e2e (go") {
		t.Errorf("--version does not carry the version make build stamps:\n%s", version)
	}
	for name, digest := range pinned {
		if !strings.Contains(string(version), "builtin:"+name) || !strings.Contains(string(version), "sha256:"+digest) {
			t.Errorf("--version does not show builtin:%s with sha256:%s:\n%s", name, digest, version)
		}
	}

	listen, adminListen := freeAddr(t), freeAddr(t)
	cmd := exec.Command("./sluice", "serve", "--listen", listen, "--admin-listen", adminListen)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OPENAI_API_KEY=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("sluice serve's log:\n%s", stderr.String())
		}
	})

	// The banner's curl line is what a newcomer copies.
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(strings.TrimSpace(sc.Text()), "-d '") {
				banner <- b.String()
				io.Copy(io.Discard, stdout)
				return
			}
		}
		banner <- b.String()
	}()
	var text string
	select {
	case text = <-banner:
	case <-time.After(90 * time.Second):
		t.Fatal("sluice serve printed no curl line within 90s")
	}
	m := regexp.MustCompile(`curl (\S+) \\\n\s+-H 'Authorization: Bearer (sk-sluice-\w+)'`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no demo curl line in the banner:\n%s", text)
	}
	url, key := m[1], m[2]
	if url != "http://"+listen+"/v1/chat/completions" {
		t.Errorf("the curl line calls %s, want the --listen address %s", url, listen)
	}

	chat := func(content string) (int, string) {
		body, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini",
			"messages": []map[string]string{{"role": "user", "content": content}}})
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := chat("Hello, Sluice!"); code != http.StatusOK || !strings.Contains(body, "Hello, Sluice!") {
		t.Fatalf("the demo curl: %d %s", code, body)
	}
	// The embedded pii module scans: the README's second demo.
	if code, body := chat("My SSN is 123-45-6789"); code != http.StatusBadRequest || !strings.Contains(body, `"code":"pii_detected"`) {
		t.Fatalf("personal data must be blocked by the built-in pii plugin: %d %s", code, body)
	}

	// The plugins in service are the embedded copies, byte for byte.
	token, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+adminListen+"/admin/plugins", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for name, want := range map[string]string{"pii": pinned["pii"], "content_filter": pinned["contentfilter"]} {
		if !regexp.MustCompile(`"name":"` + name + `"[^}]*"sha256":"` + want + `"`).Match(b) {
			t.Errorf("plugin %s is not served from the embedded module %s:\n%s", name, want, b)
		}
	}

	// The folder holds the binary and the data folder serve made, nothing else.
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "data sluice" {
		t.Errorf("the folder holds %v, want only the binary and its data folder", names)
	}
	// The release binary knows its wazero version, so it marks the modules
	// it validated and a restart does not validate them again.
	markers, _ := filepath.Glob(filepath.Join(dir, "data", "wasm-cache", "validated", "*-wazerov*"))
	if len(markers) != 2 {
		t.Errorf("validation markers %v; want one per plugin the default loads (pii, contentfilter)", markers)
	}
}

// cloneSource copies into a temporary folder the files a clone of the
// working tree would have: those git tracks, and new ones it does not
// ignore. Build outputs (bin/, the embedded plugin copies) are left behind.
func cloneSource(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ls := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	ls.Dir = root
	out, err := ls.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		from := filepath.Join(root, name)
		info, err := os.Lstat(from)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the working tree, or not a file
		}
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "host/builtin/plugins/pii.wasm")); err == nil {
		t.Fatal("the copy must not hold the plugin modules: they are build outputs")
	}
	return dst
}

// assertStatic fails unless bin is a static executable: no interpreter, no
// shared libraries, so that it runs in an image with nothing else in it.
func assertStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("%s is dynamically linked (program header %v); build it with CGO_ENABLED=0", bin, p.Type)
		}
	}
}

// TestBinaryWithoutPluginsSaysSo is `go install ./host/cmd/sluice` in a
// fresh clone, before any `make`: the binary builds from the placeholder,
// and names what it lacks instead of serving without its guardrails.
func TestBinaryWithoutPluginsSaysSo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary from a fresh copy")
	}
	src := cloneSource(t)
	bin := filepath.Join(t.TempDir(), "sluice")
	// -trimpath only to share the build cache with the other builds; the
	// embedded folder is what go install would see.
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	build := exec.CommandContext(bctx, "go", "build", "-trimpath", "-o", bin, "./host/cmd/sluice")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in a fresh copy: %v\n%s", err, out)
	}
	version, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.Contains(string(version), "builtin:pii            missing") {
		t.Fatalf("--version must say the plugins are missing: %v\n%s", err, version)
	}
	// A binary that served instead would run until killed.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	serve := exec.CommandContext(ctx, bin, "serve", "--listen", freeAddr(t), "--admin-listen", freeAddr(t))
	serve.Dir = t.TempDir()
	serve.Env = append(os.Environ(), "OPENAI_API_KEY=")
	out, err := serve.CombinedOutput()
	if code := serve.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("serve without plugins: exit %d, %v\n%s", code, err, out)
	}
	for _, want := range []string{"plugins[0] (pii): builtin:pii is not in this binary", "make plugins", "go install ./host/cmd/sluice"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the error does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "panic") {
		t.Errorf("serve crashed:\n%s", out)
	}
}
