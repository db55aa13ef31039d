package builtin

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"testing/fstest"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestCatalog(t *testing.T) {
	pii := []byte("\x00asm pii module")
	cf := []byte("\x00asm contentfilter module")
	fsys := fstest.MapFS{
		"README.md":          {Data: []byte("placeholder")},
		"pii.wasm":           {Data: pii},
		"contentfilter.wasm": {Data: []byte("\x00asm swapped after the build")},
		"SHA256SUMS": {Data: []byte(digest(pii) + "  pii.wasm\n" +
			digest(cf) + "  contentfilter.wasm\n")},
	}
	c := readCatalog(fsys)

	m, err := c.plugin("pii")
	if err != nil || string(m.Wasm) != string(pii) || m.SHA256 != digest(pii) {
		t.Fatalf("pii = %q %s, %v; want the embedded module with its pinned digest", m.Wasm, m.SHA256, err)
	}
	for _, tc := range []struct{ name, want string }{
		// A module whose bytes differ from the digest pinned at build time is refused.
		{"contentfilter", "does not match the digest pinned"},
		// A binary built without the modules says so and how to build them.
		{"promptguard", "is not in this binary: it was built without the plugin modules; build it with `make build`"},
		{"virus-scanner", "builtin:virus-scanner is not a built-in plugin; expected one of builtin:pii, builtin:contentfilter, builtin:promptguard"},
	} {
		if _, err := c.plugin(tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("plugin(%q) error = %v, want it to say %q", tc.name, err, tc.want)
		}
	}

	list := c.list()
	if len(list) != len(Names) || !list[0].Present || list[0].SHA256 != digest(pii) || list[1].Present || list[2].Err == "" {
		t.Fatalf("list = %+v", list)
	}
}

func TestCatalogWithoutSums(t *testing.T) {
	c := readCatalog(fstest.MapFS{"pii.wasm": {Data: []byte("\x00asm")}})
	if _, err := c.plugin("pii"); err == nil || !strings.Contains(err.Error(), "no digest pinned") {
		t.Fatalf("a module without its pinned digest must be refused, got %v", err)
	}
}

// TestEmbedded holds the binary's own copy to its pins: whatever this build
// carries is either served with a digest or named missing with a reason.
func TestEmbedded(t *testing.T) {
	for _, st := range List() {
		switch {
		case st.Present && len(st.SHA256) != 64:
			t.Errorf("%s: present without a digest: %+v", st.Name, st)
		case !st.Present && st.Err == "":
			t.Errorf("%s: missing without a reason: %+v", st.Name, st)
		}
		t.Logf("%s present=%v sha256=%s %s", st.Name, st.Present, st.SHA256, st.Err)
	}
}
