package server

import (
	"context"
	"io/fs"
	"net/http"
	"path/filepath"
	"testing"
)

// TestFilesAreOwnerOnly starts Sluice with everything it writes under its
// data folder (ledger, decision log, compilation cache, generated admin token,
// demo key) and checks that no file or folder there is readable by anyone
// but its owner.
func TestFilesAreOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(t, dir, open)
	cfg.PluginCacheDir = "" // under the data folder
	cfg.Server.AdminToken = ""
	cfg.Demo.Enabled = true
	h := start(t, cfg)
	cfg.Server.AdminToken = h.srv.AdminToken()
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello")); err != nil {
		t.Fatal(err)
	}
	h.raw("POST", "/v1/chat/completions", "no-such-key", `{}`)
	h.srv.Ledger().Flush(context.Background())

	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		seen[rel] = true
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s is %v, want %v", rel, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".", "sluice.db", "sluice.db-wal", "sluice.db-shm", "decisions.jsonl", "admin.token", "demo.key", "wasm-cache"} {
		if !seen[name] {
			t.Errorf("%s was not written; the test checks nothing for it (wrote %v)", name, seen)
		}
	}
}

// TestReservedLabelIsNoClientID: "other" is the metrics' overflow bucket, so
// a client or department named so would hide in it, or be blamed for it.
func TestReservedLabelIsNoClientID(t *testing.T) {
	h := newHarness(t, open)
	for _, body := range []string{`{"id":"other","department":"research"}`, `{"id":"fine","department":"other"}`} {
		if status, resp := h.admin("POST", "/admin/clients", body); status != http.StatusBadRequest {
			t.Errorf("POST /admin/clients %s: %d %s, want 400", body, status, resp)
		}
	}
}
