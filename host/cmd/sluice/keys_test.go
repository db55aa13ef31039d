package main

import (
	"strings"
	"testing"
)

// A key created with a scope from the CLI lists its name and expiry, is
// flagged when it expires within a week, and rotates into a new key while
// the old one is cut to its grace period.
func TestKeysCreateWithScopeAndRotate(t *testing.T) {
	dir := t.TempDir()
	if _, err := run(t, "clients", "create", "--data-dir", dir, "--id", "bot", "--department", "finance"); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "keys", "create", "--data-dir", dir, "--client", "bot", "--name", "ci", "--expires", "3d",
		"--daily-tokens", "5000", "--models", "gpt-4o-mini", "--tag", "team=search")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "expiring") {
		t.Errorf("create does not say when the key expires:\n%s", out)
	}
	out, _ = run(t, "keys", "list", "--data-dir", dir)
	if !strings.Contains(out, "ci") || !strings.Contains(out, "expires soon") {
		t.Fatalf("a key expiring in 3 days is not flagged:\n%s", out)
	}
	oldID := strings.Fields(strings.Split(out, "\n")[1])[0]

	out, err = run(t, "keys", "rotate", "--data-dir", dir, "--key", oldID, "--grace", "0s")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if key := lines[len(lines)-1]; !strings.HasPrefix(key, "sk-sluice-") {
		t.Fatalf("the last line must be the new key:\n%s", out)
	}
	out, _ = run(t, "keys", "list", "--data-dir", dir)
	if strings.Count(out, "ci") < 2 || !strings.Contains(out, "expired") {
		t.Fatalf("after a rotation with no grace, the old key must be expired and the new one named alike:\n%s", out)
	}
	out, err = run(t, "audit", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"client.create", "key.create", "key.rotate", "key.expire"} {
		if !strings.Contains(out, "cli") || !strings.Contains(out, want) {
			t.Errorf("sluice audit does not show the CLI's %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sk-sluice-") && strings.Count(out, "sk-sluice-") != strings.Count(out, `"prefix":"sk-sluice-`) {
		t.Errorf("sluice audit shows more of a key than its prefix:\n%s", out)
	}
	for _, args := range [][]string{
		{"keys", "create", "--data-dir", dir, "--client", "bot", "--expires", "soon"},
		{"keys", "create", "--data-dir", dir, "--client", "bot", "--tag", "novalue"},
		{"keys", "rotate", "--data-dir", dir, "--key", oldID},
	} {
		if _, err := run(t, args...); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
}

func TestAdminTokenCommandMakesAnAcceptedEntry(t *testing.T) {
	out, err := run(t, "admin-token", "--name", "alice", "--role", "operator")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "sluice-admin-") || !strings.Contains(out, "role: operator") || strings.Count(out, token) != 1 {
		t.Fatalf("admin-token printed:\n%s", out)
	}
	if _, err := run(t, "admin-token", "--name", "bob", "--role", "root"); err == nil {
		t.Error("an unknown role was accepted")
	}
}
