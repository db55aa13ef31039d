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
		{"conforming plugin", []string{pii}, "", []string{"PASS compile:", "PASS concurrent-scans:", "PASS deadline:", "PASS output-limits:", "PASS stateless:", "13 checks, 13 passed, 0 failed"}},
		{"with a configuration", []string{pii, "--plugin-config", conf}, "", []string{"PASS configure: loaded with the given 19-byte configuration", "0 failed"}},
		{"not a module", []string{junk}, "does not conform", []string{"FAIL compile:", "FAIL exports: not run: compile failed", "13 checks, 0 passed, 13 failed"}},
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

// sluice plugin test holds a module to what the gateway's sandbox enforces,
// and names the violation: the hostile modules a vendor could ship fail it.
func TestPluginTestCommandNamesHostileViolations(t *testing.T) {
	hostilePath := func(name string) string {
		t.Helper()
		path, err := wasmbuild.HostilePath(name)
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	dir := t.TempDir()
	config := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	goModule := hostilePath(wasmbuild.HostileGo)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"spins past its deadline", []string{goModule, "--plugin-config", config("loop.json", `{"always":"loop"}`), "--timeout", "300ms"},
			[]string{"FAIL deadline: sample", "did not finish within the 100ms deadline"}},
		{"keeps state across calls", []string{goModule, "--plugin-config", config("count.json", `{"always":"count"}`)},
			[]string{"FAIL stateless: the module keeps state across calls", "CALL_1", "FAIL output-limits:", `"CALL_2" is not declared`}},
		{"too many findings", []string{goModule, "--plugin-config", config("many.json", `{"always":"many","many":20000}`)},
			[]string{"FAIL output-limits:", "20000 findings, over the 16384 allowed"}},
		{"bad manifest", []string{goModule, "--plugin-config", config("types.json", `{"types":["not a type"]}`)},
			[]string{"FAIL configure:", `finding type "not a type"`}},
		{"start function spins", []string{hostilePath(wasmbuild.HostileStartSpin), "--timeout", "300ms"},
			[]string{"FAIL abi-version: instantiate: the start function did not return within 3s"}},
		{"initialize spins", []string{hostilePath(wasmbuild.HostileSpinInit), "--timeout", "300ms"},
			[]string{"FAIL abi-version:", "_initialize"}},
		{"invalid module", []string{hostilePath(wasmbuild.HostileUndeclaredGlobal)},
			[]string{"FAIL compile:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := pluginCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(append([]string{"test"}, tt.args...))
			err := cmd.ExecuteContext(context.Background())
			if err == nil || !strings.Contains(err.Error(), "does not conform") {
				t.Fatalf("error %v, want the module refused\n%s", err, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output does not contain %q:\n%s", w, out.String())
				}
			}
		})
	}
}
