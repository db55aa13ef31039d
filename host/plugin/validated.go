package plugin

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
)

// Validating a module (wazero's interpreter compiles it, then checkModule
// reads its shape) is the largest part of loading a plugin whose machine code
// is in the on-disk cache: about a fifth of a second for a Go plugin. The
// cache folder keeps a marker per module that passed, so that a restart does
// not validate the same bytes again.
//
// A marker grants nothing its folder's writer does not have already: the
// folder holds the machine code the gateway runs, and whoever can write it can
// replace that code (see cache.go; the folder is refused when group or
// others may write it). A marker is named by the SHA-256 of the module's own
// bytes and by what validated them (the validation rules' version and
// wazero's), so that a new binary with stricter rules validates afresh.

// validationRules names the checks a marker vouches for; change it whenever
// validate or checkModule refuse more than before.
const validationRules = "abi1-r1"

// validatorID is validationRules with the wazero version this binary was
// built with; empty when the build does not say (a test binary does not),
// and then no marker is read or written.
var validatorID = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, dep := range info.Deps {
		if dep.Path == "github.com/tetratelabs/wazero" && dep.Version != "" {
			return validationRules + "-wazero" + dep.Version
		}
	}
	return ""
})

func (c *moduleCache) markerPath(sum [32]byte) string {
	return filepath.Join(c.dir, "validated", validatorID()+"-"+hex.EncodeToString(sum[:]))
}

// validated reports whether the module with the SHA-256 sum passed
// validation before, under the same rules and wazero version.
func (c *moduleCache) validated(sum [32]byte) bool {
	if validatorID() == "" {
		return false
	}
	info, err := os.Lstat(c.markerPath(sum))
	return err == nil && info.Mode().IsRegular() // not a link, not a folder
}

// markValidated records that the module with the SHA-256 sum passed. A
// failure to write costs a validation at the next start, nothing else.
func (c *moduleCache) markValidated(sum [32]byte) {
	if validatorID() == "" {
		return
	}
	path := c.markerPath(sum)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	}
}
