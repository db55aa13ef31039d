//go:build wasip1

// Command empty is a Go plugin that finds nothing. Benchmarks use it to
// measure what one scan costs through the host and the Go guest SDK, apart
// from any scanning.
package main

import "github.com/sluicehq/sluice/sdk/guest"

func init() {
	guest.Register(func([]byte) (guest.Scanner, error) {
		return func([][]byte) ([]guest.Finding, error) { return nil, nil }, nil
	})
}

func main() {}
