//go:build wasip1

// Command wasm is the PII plugin as a Sluice WebAssembly module. Build with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/plugins/pii.wasm ./plugins/pii/wasm
package main

import (
	"github.com/sluicehq/sluice/plugins/pii"
	"github.com/sluicehq/sluice/sdk/guest"
)

func init() {
	guest.DeclareTypes(pii.Types...)
	guest.Register(func(config []byte) (guest.Scanner, error) {
		s, err := pii.New(config)
		if err != nil {
			return nil, err
		}
		var found []pii.Finding
		var out []guest.Finding
		return func(texts [][]byte) ([]guest.Finding, error) {
			out = out[:0]
			for m, text := range texts {
				found = s.Scan(found[:0], text)
				for _, f := range found {
					out = append(out, guest.Finding{Type: f.Type, Message: m, Start: f.Start, End: f.End, Score: f.Score})
				}
			}
			return out, nil
		}, nil
	})
}

func main() {}
