// Command sluice is the Sluice LLM gateway: the server, and the tools that
// manage its clients, keys, reports and plugins.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}
