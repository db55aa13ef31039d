package config

import (
	"strings"

	"github.com/sluicehq/sluice/host/builtin"
)

// Builtin returns the name of the module built into the binary that the
// plugin's path names ("pii" for "builtin:pii"), and whether it names one.
func (p Plugin) Builtin() (string, bool) {
	return strings.CutPrefix(p.Path, builtin.Prefix)
}
