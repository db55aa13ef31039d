//go:build !unix

package textnorm

func cpuTime() int64 { return 0 }
