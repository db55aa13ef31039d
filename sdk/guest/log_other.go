//go:build !wasip1

package guest

// hostLog discards messages outside WebAssembly, where there is no host; native
// tests of a plugin's scanning package do not go through this package at all.
func hostLog(Level, string) {}
