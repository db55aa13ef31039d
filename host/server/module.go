package server

import (
	"fmt"
	"os"

	"github.com/sluicehq/sluice/host/builtin"
	"github.com/sluicehq/sluice/host/config"
)

// readModule reads the module a plugin entry names: a .wasm file, or a module
// built into the binary ("builtin:pii"), which comes with the digest pinned
// when the binary was built.
func readModule(cfg *config.Config, pc config.Plugin) (wasm []byte, pinned string, err error) {
	if name, ok := pc.Builtin(); ok {
		m, err := builtin.Plugin(name)
		return m.Wasm, m.SHA256, err
	}
	wasm, err = os.ReadFile(cfg.Resolve(pc.Path))
	if err != nil {
		return nil, "", fmt.Errorf("%w (build the shipped plugins with `make build`, or name one built into the binary: builtin:pii)", err)
	}
	return wasm, "", nil
}
