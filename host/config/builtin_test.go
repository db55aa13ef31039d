package config

import (
	"strings"
	"testing"
)

func TestDefaultServesTheBuiltinPlugins(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Plugins {
		if _, ok := p.Builtin(); !ok {
			t.Errorf("plugin %s: path %q; the default must not depend on the folder it runs in", p.Name, p.Path)
		}
	}
}

func TestBuiltinPluginPath(t *testing.T) {
	c, err := Parse([]byte("plugins:\n  - name: guard\n    path: builtin:promptguard\n"), "sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := c.Plugins[0].Builtin(); !ok || name != "promptguard" {
		t.Fatalf("Builtin() = %q, %v", name, ok)
	}
	_, err = Parse([]byte("plugins:\n  - name: guard\n    path: builtin:virus\n"), "sluice.yaml")
	want := "sluice.yaml: plugins[0].path: builtin:virus is not a built-in plugin; expected builtin:pii, builtin:contentfilter, builtin:promptguard"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
	if _, ok := (Plugin{Path: "plugins/builtin:x.wasm"}).Builtin(); ok {
		t.Fatal("only a path that starts with builtin: names a built-in module")
	}
	if !strings.HasPrefix(Default().Plugins[0].Path, "builtin:") {
		t.Fatal("the default names built-in modules")
	}
}
