package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

// run executes the CLI in-process and returns its standard output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestClientsAndKeysShareTheStore(t *testing.T) {
	dir := t.TempDir()
	if _, err := run(t, "clients", "create", "--data-dir", dir, "--id", "billing-bot", "--department", "finance", "--label", "env=prod"); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "keys", "create", "--data-dir", dir, "--client", "billing-bot")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	key := lines[len(lines)-1]
	if !strings.HasPrefix(key, "sk-sluice-") || len(key) != len("sk-sluice-")+32 {
		t.Fatalf("the last line must be the key, got %q", key)
	}
	out, err = run(t, "keys", "list", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, key) || !strings.Contains(out, key[:14]) || !strings.Contains(out, "active") {
		t.Fatalf("keys list must show the prefix, never the key:\n%s", out)
	}
	keyID := strings.Fields(strings.Split(out, "\n")[1])[0]
	if _, err := run(t, "keys", "revoke", "--data-dir", dir, keyID); err != nil {
		t.Fatal(err)
	}
	out, _ = run(t, "keys", "list", "--data-dir", dir, "--client", "billing-bot")
	if !strings.Contains(out, "revoked") {
		t.Fatalf("after revoke:\n%s", out)
	}
	out, _ = run(t, "clients", "list", "--data-dir", dir)
	if !strings.Contains(out, "billing-bot") || !strings.Contains(out, "finance") || !strings.Contains(out, "env=prod") {
		t.Fatalf("clients list:\n%s", out)
	}
}

func TestCLIErrorsAreClear(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"clients", "create", "--data-dir", dir, "--id", "a", "--department", "d", "--tier", "gold"}, `unknown tier "gold"`},
		{[]string{"keys", "create", "--data-dir", dir, "--client", "nobody"}, "nobody"},
		{[]string{"keys", "revoke", "--data-dir", dir, "key_missing"}, "not found"},
		{[]string{"report", "--data-dir", dir, "--from", "yesterday"}, "--from"},
		{[]string{"report", "--data-dir", dir, "--from", "2026-11-01", "--by", "color"}, "department, client, model, endpoint, deployment, upstream_type, cache or tag:NAME"},
	}
	for _, c := range cases {
		_, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("server:\n  listen: 127.0.0.1:1\n  lissen: x\n"), 0o600)
	_, err := run(t, "config", "check", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:3") || !strings.Contains(err.Error(), "server.lissen") {
		t.Fatalf("config check: %v", err)
	}
	good := filepath.Join(dir, "good.yaml")
	example, _ := run(t, "config", "example")
	os.WriteFile(good, []byte(example), 0o600)
	t.Setenv("OPENAI_API_KEY", "")
	if out, err := run(t, "config", "check", good); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("the example must pass its own check: %v %s", err, out)
	}
}

func TestReportOnEmptyLedger(t *testing.T) {
	out, err := run(t, "report", "--data-dir", t.TempDir(), "--from", "2026-11-01", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "department,") {
		t.Fatalf("csv report %q", out)
	}
}

func TestScanCommand(t *testing.T) {
	wasm, err := wasmbuild.Path("pii")
	if err != nil {
		t.Fatal(err)
	}
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetIn(strings.NewReader(`{"id":1,"text":"write to ann@example.com"}` + "\n" + `{"id":"b","text":"nothing"}` + "\n" + "not json\n"))
	cmd.SetArgs([]string{"scan", "--plugin", wasm})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one output line per input line, got:\n%s", out.String())
	}
	var first struct {
		ID    int `json:"id"`
		Found []struct {
			Type, Value string
			Start, End  int
		} `json:"found"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.ID != 1 || len(first.Found) != 1 || first.Found[0].Type != "EMAIL" || first.Found[0].Value != "ann@example.com" ||
		first.Found[0].Start != 9 || first.Found[0].End != 24 {
		t.Fatalf("first line %s", lines[0])
	}
	if !strings.Contains(lines[1], `"found":[]`) || !strings.Contains(lines[2], `"error"`) {
		t.Fatalf("lines 2 and 3:\n%s\n%s", lines[1], lines[2])
	}
}

func TestConfigCheckPrintsEffectiveConfigWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(path, []byte("server:\n  admin_token: very-secret-admin\nstore:\n  driver: postgres\n  dsn: postgres://u:pg-pass@db/sluice\n"), 0o600)
	out, err := run(t, "config", "check", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"very-secret-admin", "pg-pass"} {
		if strings.Contains(out, secret) {
			t.Errorf("config check printed the secret %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"driver: postgres", "default_max_tokens: 1024", "listen: 127.0.0.1:8080"} {
		if !strings.Contains(out, want) {
			t.Errorf("effective configuration lacks %q:\n%s", want, out)
		}
	}
}

// Every command a user can type shows examples in its --help.
func TestEveryCommandHasExamples(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no examples in its --help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCommand())
}
