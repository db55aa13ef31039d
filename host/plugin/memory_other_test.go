//go:build !linux

package plugin

import "testing"

// setNoMemfd does nothing: snapshots are copies here anyway.
func setNoMemfd(*testing.T) {}
