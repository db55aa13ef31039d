// Package builtin holds the plugin modules built into the sluice binary, so
// that a configuration can name `builtin:pii` instead of a file and the
// binary serves its default configuration from any folder.
//
// The modules are build outputs: `make build` copies bin/plugins/*.wasm into
// plugins/ with a SHA256SUMS file written at the same time, and the Go build
// embeds that folder. A module is served only if its bytes match the digest
// pinned there, and a binary built without them (a fresh clone's `go build`)
// says which modules it lacks and how to build them.
package builtin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
)

// Prefix marks a plugin path that names a built-in module: "builtin:pii".
const Prefix = "builtin:"

// Names are the plugins a binary built with `make build` carries.
var Names = []string{"pii", "contentfilter", "promptguard"}

// Known reports whether name is one of Names.
func Known(name string) bool { return slices.Contains(Names, name) }

//go:embed plugins
var embedded embed.FS

// Module is one built-in plugin module.
type Module struct {
	Name string
	// SHA256 is the hex digest pinned when the binary was built.
	SHA256 string
	Wasm   []byte
}

// Status is what a binary carries of one built-in plugin.
type Status struct {
	Name    string
	Present bool
	SHA256  string // "" when not present
	Size    int
	// Err says why the module cannot be served ("" when it can).
	Err string
}

// catalog is the modules of one plugins folder, checked against its sums.
type catalog struct {
	modules map[string]Module
	errs    map[string]error
}

// shipped reads the embedded folder once. It is a function, not a variable
// set at init, so that a program that only calls Known links no module.
func shipped() *catalog {
	shippedOnce.Do(func() {
		sub, err := fs.Sub(embedded, "plugins")
		if err != nil {
			panic(err) // the embed pattern above names this folder
		}
		shippedCatalog = readCatalog(sub)
	})
	return shippedCatalog
}

var (
	shippedOnce    sync.Once
	shippedCatalog *catalog
)

// Plugin returns the built-in module name ("pii", not "builtin:pii").
func Plugin(name string) (Module, error) { return shipped().plugin(name) }

// List reports every built-in plugin, present or not, in the order of Names.
func List() []Status { return shipped().list() }

// Missing names the built-in plugins this binary cannot serve.
func Missing() []string {
	var out []string
	for _, st := range List() {
		if st.Err != "" {
			out = append(out, st.Name)
		}
	}
	return out
}

func readCatalog(fsys fs.FS) *catalog {
	c := &catalog{modules: map[string]Module{}, errs: map[string]error{}}
	sums, err := fs.ReadFile(fsys, "SHA256SUMS")
	pinned := map[string]string{}
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(sums))
		for sc.Scan() {
			// sha256sum's format: digest, two spaces (or space and '*'), file name.
			digest, file, ok := strings.Cut(sc.Text(), " ")
			if ok {
				pinned[strings.TrimLeft(file, " *")] = strings.ToLower(digest)
			}
		}
	}
	for _, name := range Names {
		file := name + ".wasm"
		wasm, err := fs.ReadFile(fsys, file)
		if err != nil {
			c.errs[name] = fmt.Errorf("%s%s is not in this binary: it was built without the plugin modules; "+
				"build it with `make build` (or run `make plugins` before `go build`/`go install ./host/cmd/sluice`), "+
				"or give the path of a .wasm file instead", Prefix, name)
			continue
		}
		sum := sha256.Sum256(wasm)
		digest := hex.EncodeToString(sum[:])
		switch want, ok := pinned[file]; {
		case !ok:
			c.errs[name] = fmt.Errorf("%s%s has no digest pinned in the binary's SHA256SUMS; build it with `make build`", Prefix, name)
			continue
		case want != digest:
			c.errs[name] = fmt.Errorf("%s%s does not match the digest pinned when the binary was built (sha256 %s, pinned %s); build it again with `make build`",
				Prefix, name, digest, want)
			continue
		}
		c.modules[name] = Module{Name: name, SHA256: digest, Wasm: wasm}
	}
	return c
}

func (c *catalog) plugin(name string) (Module, error) {
	if !Known(name) {
		return Module{}, fmt.Errorf("%s%s is not a built-in plugin; expected one of %s", Prefix, name, strings.Join(prefixed(), ", "))
	}
	if err := c.errs[name]; err != nil {
		return Module{}, err
	}
	return c.modules[name], nil
}

func (c *catalog) list() []Status {
	out := make([]Status, 0, len(Names))
	for _, name := range Names {
		st := Status{Name: name}
		if m, ok := c.modules[name]; ok {
			st.Present, st.SHA256, st.Size = true, m.SHA256, len(m.Wasm)
		} else {
			st.Err = c.errs[name].Error()
		}
		out = append(out, st)
	}
	return out
}

func prefixed() []string {
	out := make([]string, len(Names))
	for i, n := range Names {
		out[i] = Prefix + n
	}
	return out
}
