package main

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/builtin"
)

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		out, err := run(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, "sluice "+version+" ("+runtime.Version()+" ") {
			t.Errorf("%v: first line %q, want the version and the Go version", args, strings.SplitN(out, "\n", 2)[0])
		}
		// Each built-in plugin is named with the digest the binary serves
		// it under, or said missing.
		for _, st := range builtin.List() {
			want := "builtin:" + st.Name
			if st.Present {
				want += strings.Repeat(" ", 14-len(st.Name)) + " sha256:" + st.SHA256
			}
			if !strings.Contains(out, want) || (!st.Present && !strings.Contains(out, "missing")) {
				t.Errorf("%v: output does not show %q:\n%s", args, want, out)
			}
		}
	}
}

// Every command's help lists -h, --help as it is typed, and no flag with
// pflag's "[=true|false]".
func TestHelpIsPlain(t *testing.T) {
	var walk func(path []string, c *cobra.Command)
	walk = func(path []string, c *cobra.Command) {
		out, err := run(t, append(path, "--help")...)
		if err != nil {
			t.Errorf("%v --help: %v", path, err)
		}
		if strings.Contains(out, "[=") || !strings.Contains(out, "  -h, --help ") {
			t.Errorf("%v --help:\n%s", path, out)
		}
		for _, sub := range c.Commands() {
			if !sub.Hidden && sub.Name() != "help" {
				walk(append(append([]string{}, path...), sub.Name()), sub)
			}
		}
	}
	walk(nil, rootCommand())

	// The usage column stays aligned once "[=true|false]" is gone.
	out, _ := run(t, "config", "check", "--help")
	cols := map[int]bool{}
	for _, usage := range []string{"also open the store", "help for check", "print nothing when"} {
		for line := range strings.Lines(out) {
			if at := strings.Index(line, usage); at >= 0 {
				cols[at] = true
			}
		}
	}
	if len(cols) != 1 {
		t.Errorf("flag usage not in one column:\n%s", out)
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "complete -o default -F __start_sluice sluice",
		"zsh":  "#compdef sluice",
		"fish": "complete -c sluice",
	} {
		out, err := run(t, "completion", shell)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("completion %s: %v; output lacks %q", shell, err, want)
		}
	}
}

func TestPluginList(t *testing.T) {
	out, err := run(t, "plugin", "list")
	missing := builtin.Missing()
	if (err != nil) != (len(missing) > 0) {
		t.Fatalf("plugin list: %v with %v missing", err, missing)
	}
	for _, st := range builtin.List() {
		want := "builtin:" + st.Name + strings.Repeat(" ", 23-len("builtin:"+st.Name))
		if st.Present {
			want += st.SHA256 + "  " + fmt.Sprint(st.Size)
		} else {
			want += "missing"
		}
		if !strings.Contains(out, want) {
			t.Errorf("plugin list lacks %q:\n%s", want, out)
		}
	}
}
