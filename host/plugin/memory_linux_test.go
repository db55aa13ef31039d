package plugin

import "testing"

// setNoMemfd makes snapshots taken during the test copies, as where the
// kernel's copy-on-write mappings are refused.
func setNoMemfd(t *testing.T) {
	noMemfd.Store(true)
	t.Cleanup(func() { noMemfd.Store(false) })
}
