//go:build wasip1

// Command hostile is a misbehaving plugin for host tests. The first text of a
// scan selects the misbehaviour, so one instance pool serves good and bad calls:
//
//	"panic"        the scanner panics (the Go runtime exits the module)
//	"loop"         the scanner never returns
//	"error"        the scanner returns an error
//	"bad-offsets"  a finding that ends past its text
//	"bad-message"  a finding for a message that does not exist
//	"bad-type"     a finding whose type is not an upper-case identifier
//	"log"          logs a message, then behaves normally
//	"escape"       tries files, environment and arguments; reports ESCAPED if any
//	               was visible
//	anything else  one ECHO finding covering the whole first text
//
// A configuration of {"fail":true} makes configure fail.
package main

import (
	"encoding/json"
	"errors"
	"os"

	"github.com/sluicehq/sluice/sdk/guest"
)

func init() {
	guest.Register(func(config []byte) (guest.Scanner, error) {
		var cfg struct{ Fail bool }
		if len(config) > 0 {
			if err := json.Unmarshal(config, &cfg); err != nil {
				return nil, err
			}
		}
		if cfg.Fail {
			return nil, errors.New("refusing this configuration")
		}
		return scan, nil
	})
}

var spin int

func scan(texts [][]byte) ([]guest.Finding, error) {
	if len(texts) == 0 || len(texts[0]) == 0 {
		return nil, nil
	}
	first := texts[0]
	switch string(first) {
	case "panic":
		panic("hostile plugin panics")
	case "loop":
		for {
			spin++
		}
	case "error":
		return nil, errors.New("hostile plugin fails")
	case "bad-offsets":
		return []guest.Finding{{Type: "ECHO", Start: 0, End: len(first) + 10, Score: 1}}, nil
	case "bad-message":
		return []guest.Finding{{Type: "ECHO", Message: len(texts), Start: 0, End: 1, Score: 1}}, nil
	case "bad-type":
		return []guest.Finding{{Type: "echo; drop table", Start: 0, End: 1, Score: 1}}, nil
	case "escape":
		_, fileErr := os.ReadFile("/etc/hostname")
		_, dirErr := os.ReadDir("/")
		if fileErr == nil || dirErr == nil || len(os.Environ()) > 0 || len(os.Args) > 0 {
			return []guest.Finding{{Type: "ESCAPED", Start: 0, End: len(first), Score: 1}}, nil
		}
	case "log":
		guest.Log(guest.LevelWarn, "hostile plugin says hello")
	}
	return []guest.Finding{{Type: "ECHO", Start: 0, End: len(first), Score: 0.5}}, nil
}

func main() {}
