package main

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/sluicehq/sluice/host/builtin"
)

// versionText is what `sluice --version` prints: the release, the Go
// toolchain and platform, and the SHA-256 of each plugin built into the
// binary, so that an operator can tell which modules a binary serves.
func versionText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sluice %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	b.WriteString("built-in plugins:")
	for _, st := range builtin.List() {
		if st.Present {
			fmt.Fprintf(&b, "\n  %s%-14s sha256:%s", builtin.Prefix, st.Name, st.SHA256)
		} else {
			fmt.Fprintf(&b, "\n  %s%-14s missing (this binary was built without it: make build)", builtin.Prefix, st.Name)
		}
	}
	return b.String()
}
