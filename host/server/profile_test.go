package server

import (
	"bytes"
	"testing"

	"github.com/sluicehq/sluice/host/config"
)

// TestProfilesNeedAnOperator: Go's profiles are on the admin listener, for
// operators and admins only; what they return is a real profile.
func TestProfilesNeedAnOperator(t *testing.T) {
	const viewer, operator = "viewer-token-0123456789", "operator-token-0123456789"
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Server.AdminTokens = []config.AdminToken{
		{Name: "alice", Role: config.RoleViewer, TokenSHA256: tokenHash(viewer)},
		{Name: "ops", Role: config.RoleOperator, TokenSHA256: tokenHash(operator)},
	}
	h := start(t, cfg)
	for _, c := range []struct {
		token, path string
		status      int
	}{
		{"", "/debug/pprof/heap", 401},
		{"not-a-token", "/debug/pprof/", 401},
		{viewer, "/debug/pprof/heap", 403},
		{operator, "/debug/pprof/heap", 200},
		{cfg.Server.AdminToken, "/debug/pprof/allocs", 200},
		{operator, "/debug/pprof/profile?seconds=1", 200},
	} {
		status, body := h.adminAs(c.token, "GET", c.path, "")
		if status != c.status {
			t.Errorf("%s with %q: status %d, want %d (%.80s)", c.path, c.token, status, c.status, body)
			continue
		}
		if status == 200 && !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: not a gzipped profile: %.40q", c.path, body)
		}
	}
}
