package policy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/sluicehq/sluice/host/policy"
)

// signingKeys returns a new RSA key pair as PEM: private, public.
func signingKeys(t *testing.T) (string, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

// buildBundle writes an OPA bundle of the default policy, its tests, the
// extra .rego files and data, signed with privateKey unless it is "", as
// opa build --signing-key writes one, and returns its bytes.
func buildBundle(t *testing.T, extra map[string]string, data map[string]any, privateKey string) []byte {
	t.Helper()
	return buildBundleWithRoots(t, extra, data, privateKey, nil)
}

// buildBundleWithRoots is buildBundle with the manifest's roots; nil
// leaves them out.
func buildBundleWithRoots(t *testing.T, extra map[string]string, data map[string]any, privateKey string, roots []string) []byte {
	t.Helper()
	b := bundle.Bundle{Data: data}
	add := func(name string, src []byte) {
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + name, Path: "/" + name, Raw: src, Parsed: m})
	}
	for name, f := range defaultWith(t, nil) {
		add(name, f.Data)
	}
	for name, src := range extra {
		add(name, []byte(src))
	}
	if b.Data == nil {
		b.Data = map[string]any{}
	}
	b.Manifest.Init()
	b.Manifest.Revision = "test"
	if roots != nil {
		b.Manifest.Roots = &roots
	}
	if privateKey != "" {
		if err := b.GenerateSignature(bundle.NewSigningConfig(privateKey, "RS256", ""), "default", false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A signed OPA bundle is a policy set: its rules, tests and data load,
// and the set follows the file. An unsigned bundle, or one signed with
// another key, is refused and the last good set stays.
func TestBundleLoadsVerifiedAndReloads(t *testing.T) {
	private, public := signingKeys(t)
	otherPrivate, _ := signingKeys(t)
	ticketing := map[string]any{"ticketing": map[string]any{"departments": []any{"ops"}, "message": "from the bundle"}}
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	put := func(src []byte) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", src, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	put(buildBundle(t, map[string]string{"ticket.rego": ticketRules, "ticket_test.rego": ticketTest}, ticketing, private))

	verify := &policy.BundleVerification{PublicKey: public}
	s := newSet(t, policy.SetConfig{Policies: policy.Source{Bundle: path, Verify: verify}, Data: openTier()})
	ctx := context.Background()
	r, err := s.Decide(ctx, ticketInput("ops"))
	if err != nil || r.Decision.Code != "ticket_required" || r.Decision.Message != "from the bundle" {
		t.Fatalf("decision from the bundle: %+v, %v", r.Decision, err)
	}
	if st := s.Status().Enforced; st.Tests == 0 || !strings.HasPrefix(st.Source, "bundle ") {
		t.Errorf("status %+v, want the bundle's tests run", st)
	}

	for name, src := range map[string][]byte{
		"unsigned":          buildBundle(t, nil, nil, ""),
		"signed by another": buildBundle(t, nil, nil, otherPrivate),
	} {
		put(src)
		if err := s.Reload(ctx); err == nil {
			t.Errorf("%s bundle: reload succeeded", name)
		}
		if r, _ := s.Decide(ctx, ticketInput("ops")); r.Decision.Code != "ticket_required" {
			t.Errorf("%s bundle: the last good set is gone: %+v", name, r.Decision)
		}
	}

	put(buildBundle(t, nil, nil, private)) // the default policy alone
	if err := s.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if r, err := s.Decide(ctx, ticketInput("ops")); err != nil || !r.Decision.Allowed {
		t.Errorf("after the new bundle: %+v, %v", r.Decision, err)
	}
}

// Without verification, an unsigned bundle loads; a bundle file that is no
// bundle does not.
func TestBundleWithoutVerification(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.tar.gz")
	if err := os.WriteFile(path, buildBundle(t, nil, nil, ""), 0o644); err != nil {
		t.Fatal(err)
	}
	newSet(t, policy.SetConfig{Policies: policy.Source{Bundle: path}, Data: openTier()})
	if err := os.WriteFile(path, []byte("not a bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.NewSet(context.Background(), policy.SetConfig{Policies: policy.Source{Bundle: path}}); err == nil {
		t.Error("a file that is no bundle loaded")
	}
}

// Watch follows a bundle file that a deployment replaces.
func TestBundleIsWatched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(path, buildBundle(t, nil, nil, ""), 0o644); err != nil {
		t.Fatal(err)
	}
	reloads := make(chan error, 16)
	s := newSet(t, policy.SetConfig{Policies: policy.Source{Bundle: path}, Data: openTier(),
		Reloaded: func(_ string, err error) { reloads <- err }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Watch(ctx) }()
	time.Sleep(50 * time.Millisecond) // Watch gives no sign that its watch is in place

	ticketing := map[string]any{"ticketing": map[string]any{"departments": []any{"ops"}, "message": "m"}}
	if err := os.WriteFile(path+".tmp", buildBundle(t, map[string]string{"ticket.rego": ticketRules}, ticketing, ""), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		if r, _ := s.Decide(context.Background(), ticketInput("ops")); r.Decision.Code == "ticket_required" {
			return
		}
		select {
		case <-reloads:
		case <-deadline:
			t.Fatalf("the replaced bundle was not loaded: %+v", s.Status().Enforced)
		}
	}
}

// bundleServer serves one bundle with an ETag, answering 304 to a request
// that names it, and counts both kinds of answers.
type bundleServer struct {
	mu              sync.Mutex
	body            []byte
	etag            string
	full, unchanged int
}

func (b *bundleServer) set(body []byte, etag string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.body, b.etag = body, etag
}

func (b *bundleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.Header.Get("If-None-Match") == b.etag {
		b.unchanged++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b.full++
	w.Header().Set("ETag", b.etag)
	w.Write(b.body)
}

func (b *bundleServer) counts() (full, unchanged int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.full, b.unchanged
}

// A signed bundle served over HTTP is downloaded at start and polled with
// its ETag: an unchanged bundle costs a 304 and no reload, a new one is
// verified, tested and put in force, and a server that fails keeps the set
// in force.
func TestBundleFromAServerIsPolled(t *testing.T) {
	private, public := signingKeys(t)
	srv := &bundleServer{}
	srv.set(buildBundle(t, nil, nil, private), `"v1"`)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	reloads := make(chan error, 64)
	s := newSet(t, policy.SetConfig{
		Policies: policy.Source{BundleURL: ts.URL + "/bundles/sluice.tar.gz", Verify: &policy.BundleVerification{PublicKey: public}},
		Data:     openTier(),
		Reloaded: func(_ string, err error) { reloads <- err },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Poll(ctx, 20*time.Millisecond)

	time.Sleep(150 * time.Millisecond)
	if full, unchanged := srv.counts(); full != 1 || unchanged < 2 {
		t.Errorf("unchanged bundle: %d downloads, %d 304s; want the first download only, then 304s", full, unchanged)
	}
	if st := s.Status().Enforced; st.ReloadsOK != 0 {
		t.Errorf("an unchanged bundle reloaded %d times", st.ReloadsOK)
	}

	ticketing := map[string]any{"ticketing": map[string]any{"departments": []any{"ops"}, "message": "v2"}}
	srv.set(buildBundle(t, map[string]string{"ticket.rego": ticketRules}, ticketing, private), `"v2"`)
	deadline := time.After(5 * time.Second)
	for {
		if r, _ := s.Decide(context.Background(), ticketInput("ops")); r.Decision.Message == "v2" {
			break
		}
		select {
		case <-reloads:
		case <-deadline:
			t.Fatalf("the new bundle was not loaded: %+v", s.Status().Enforced)
		}
	}

	ts.Close() // the server goes away: the set stays
	time.Sleep(100 * time.Millisecond)
	if r, _ := s.Decide(context.Background(), ticketInput("ops")); r.Decision.Message != "v2" {
		t.Errorf("after the server went: %+v", r.Decision)
	}
	if st := s.Status().Enforced; st.LastError == nil {
		t.Error("a failing bundle server is not in the status")
	}
}

// A bundle writes only under its manifest's roots, and may not claim the
// documents the gateway writes: a root over data.sluice.tiers (or over
// all of sluice) is refused with the root and the document named, and so
// is data outside the roots. A bundle whose roots keep to its rules and
// its own data loads.
func TestBundleRootsAreRespected(t *testing.T) {
	ticketing := map[string]any{"ticketing": map[string]any{"departments": []any{"ops"}, "message": "from the bundle"}}
	rules := map[string]string{"ticket.rego": ticketRules, "ticket_test.rego": ticketTest}
	own := []string{"sluice/authz", "sluice/authz_test", "sluice/ticket_test", "ticketing"}
	for _, tt := range []struct {
		name  string
		roots []string
		data  map[string]any
		want  string // "" loads
	}{
		{"own roots", own, ticketing, ""},
		{"no roots", nil, ticketing, ""},
		{"root over the gateway's data", []string{"sluice", "ticketing"}, ticketing, `manifest root "sluice" overlaps data.sluice.tiers`},
		{"root at the gateway's data", append([]string{"sluice/tiers"}, own...), ticketing, `manifest root "sluice/tiers" overlaps data.sluice.tiers`},
		{"data outside the roots", []string{"sluice/authz", "sluice/authz_test", "sluice/ticket_test"}, ticketing, "do not permit data at path '/ticketing"},
		{"rules outside the roots", []string{"sluice/authz", "ticketing"}, ticketing, "do not permit 'package sluice.authz_test'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bundle.tar.gz")
			if err := os.WriteFile(path, buildBundleWithRoots(t, rules, tt.data, "", tt.roots), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := policy.NewSet(context.Background(), policy.SetConfig{Policies: policy.Source{Bundle: path}, Data: openTier()})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewSet: %v", err)
				}
				defer s.Close()
				if r, err := s.Decide(context.Background(), ticketInput("ops")); err != nil || r.Decision.Message != "from the bundle" {
					t.Fatalf("decision %+v, %v; want the bundle's data", r.Decision, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewSet: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}
