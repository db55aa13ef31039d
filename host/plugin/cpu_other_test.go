//go:build !unix

package plugin

// processCPU returns 0: the benchmarks report no processor time here.
func processCPU() int64 { return 0 }
