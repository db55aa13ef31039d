package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
)

func TestPluginTestCommand(t *testing.T) {
	pii, err := wasmbuild.Path("pii")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	junk := write("junk.wasm", "not a module")
	conf := write("pii.json", `{"types":["EMAIL"]}`)
	badConf := write("bad.json", `{"types":`)
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantOut []string
	}{
		{"conforming plugin", []string{pii}, "", []string{"PASS compile:", "PASS concurrent-scans:", "10 checks, 10 passed, 0 failed"}},
		{"with a configuration", []string{pii, "--plugin-config", conf}, "", []string{"PASS configure: loaded with the given 19-byte configuration", "0 failed"}},
		{"not a module", []string{junk}, "does not conform", []string{"FAIL compile:", "FAIL exports: not run: compile failed", "10 checks, 0 passed, 10 failed"}},
		{"invalid configuration file", []string{pii, "--plugin-config", badConf}, "not valid JSON", nil},
		{"missing file", []string{filepath.Join(dir, "none.wasm")}, "no such file", nil},
		{"no file", nil, "accepts 1 arg", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := pluginCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(append([]string{"test"}, tt.args...))
			err := cmd.ExecuteContext(context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error: %v\n%s", err, out.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output does not contain %q:\n%s", w, out.String())
				}
			}
		})
	}
}
