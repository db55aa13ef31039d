//go:build wasip1

// Command wasm is the content filter plugin as a Sluice WebAssembly module.
// Build with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/plugins/contentfilter.wasm ./plugins/contentfilter/wasm
package main

import (
	"github.com/sluicehq/sluice/plugins/contentfilter"
	"github.com/sluicehq/sluice/sdk/guest"
)

func init() {
	guest.Register(func(config []byte) (guest.Scanner, error) {
		f, err := contentfilter.New(config)
		if err != nil {
			return nil, err
		}
		guest.DeclareTypes(f.Types()...)
		var found []contentfilter.Finding
		var out []guest.Finding
		return func(texts [][]byte) ([]guest.Finding, error) {
			out = out[:0]
			for m, text := range texts {
				found = f.Scan(found[:0], text)
				for _, fd := range found {
					out = append(out, guest.Finding{Type: fd.Type, Message: m, Start: fd.Start, End: fd.End, Score: fd.Score})
				}
			}
			return out, nil
		}, nil
	})
}

func main() {}
