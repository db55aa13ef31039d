package server

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/policies"
)

// writeBundle writes, as opa build does, a bundle of the default policy
// and extra files to path, signed with key unless it is nil.
func writeBundle(t *testing.T, path string, extra map[string]string, key *rsa.PrivateKey) {
	t.Helper()
	var b bundle.Bundle
	files := map[string][]byte{}
	for _, name := range []string{"authz.rego", "authz_test.rego"} {
		src, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = src
	}
	for name, src := range extra {
		files[name] = []byte(src)
	}
	for name, src := range files {
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + name, Path: "/" + name, Raw: src, Parsed: m})
	}
	b.Data = map[string]any{}
	b.Manifest.Init()
	if key != nil {
		private := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		if err := b.GenerateSignature(bundle.NewSigningConfig(string(private), "RS256", ""), "default", false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// The gateway enforces a signed OPA bundle, and refuses to reload one
// that is not signed with the configured key.
func TestPolicyFromASignedBundle(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, bundleFile := filepath.Join(dir, "bundle.pem"), filepath.Join(dir, "policy.tar.gz")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		t.Fatal(err)
	}
	writeBundle(t, bundleFile, map[string]string{"retire.rego": retireRule, "retire_test.rego": retireTest}, key)

	cfg := policyConfig(t, open, "", false)
	cfg.Policy.Bundle.File, cfg.Policy.Bundle.PublicKey = bundleFile, keyFile
	h := start(t, cfg)
	c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
	if o := mustAsk(t, c, chat("gpt-4o-mini", "hello")); o.code != "model_retired" {
		t.Fatalf("under the bundle's rule: %s, want model_retired", o)
	}

	writeBundle(t, bundleFile, nil, nil) // unsigned, and without the rule
	if status, body := h.admin("POST", "/admin/policy/reload", ""); status != http.StatusUnprocessableEntity {
		t.Errorf("reload of an unsigned bundle: %d %s, want 422", status, body)
	}
	if o := mustAsk(t, c, chat("gpt-4o-mini", "hello")); o.code != "model_retired" {
		t.Errorf("after the refused bundle: %s, want the signed one still in force", o)
	}
}

// The gateway downloads its bundle from a bundle server, and polls it.
func TestPolicyFromABundleServer(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	dir := t.TempDir()
	keyFile, bundleFile := filepath.Join(dir, "bundle.pem"), filepath.Join(dir, "policy.tar.gz")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		t.Fatal(err)
	}
	writeBundle(t, bundleFile, map[string]string{"retire.rego": retireRule, "retire_test.rego": retireTest}, key)
	var mu sync.Mutex
	etag := `"1"`
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		http.ServeFile(w, r, bundleFile)
	}))
	defer ts.Close()

	cfg := policyConfig(t, open, "", false)
	cfg.Policy.Bundle.URL, cfg.Policy.Bundle.PublicKey = ts.URL+"/sluice.tar.gz", keyFile
	cfg.Policy.Bundle.Poll = config.Duration(50 * time.Millisecond)
	h := start(t, cfg)
	c := h.client(h.addClient(accounts.NewClient{ID: "ops-bot", Department: "ops"}))
	if o := mustAsk(t, c, chat("gpt-4o-mini", "hello")); o.code != "model_retired" {
		t.Fatalf("under the served bundle's rule: %s", o)
	}

	mu.Lock()
	writeBundle(t, bundleFile, nil, key) // the rule withdrawn
	etag = `"2"`
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for mustAsk(t, c, chat("gpt-4o-mini", "hello")).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the new bundle was not polled: %+v", h.policyStatus().Enforced)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
