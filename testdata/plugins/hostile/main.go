//go:build wasip1

// Command hostile is a misbehaving plugin for host tests. The first text of a
// scan selects the misbehaviour, so one instance pool serves good and bad calls:
//
//	"panic"        the scanner panics (the Go runtime exits the module)
//	"loop"         the scanner never returns
//	"grow"         the scanner allocates without bound (the Go runtime exits
//	               when the host's memory limit refuses to grow its heap)
//	"error"        the scanner returns an error
//	"bad-offsets"  a finding that ends past its text
//	"bad-message"  a finding for a message that does not exist
//	"bad-type"     a finding whose type is not an upper-case identifier
//	"sleep"        works for 200 ms, then behaves normally
//	"log"          logs a message, then behaves normally
//	"count"        one CALL_<n> finding, n counting this instance's "count"
//	               scans, so a test can tell whether state survived a call
//	"escape"       tries files, environment and arguments; reports ESCAPED if any
//	               was visible
//	"undeclared"   a finding of a valid type the module did not declare
//	"many"         as many ECHO findings as the configuration's "many" says
//	"log-flood"    100,000 log messages with control characters and the text
//	"error-text"   an error message holding control characters, the text and
//	               4 KiB more
//	"stash:<text>" keeps <text> and, if an earlier call kept one, reports it
//	               as a PREV_<hex of its first 29 bytes> finding: a plugin
//	               that carries one client's prompt into another's result
//	anything else  one ECHO finding covering the whole first text
//
// A configuration of {"fail":true} makes configure fail; {"always":"panic"}
// (or any other selector) makes every scan behave as if its first text were
// that selector; {"types":[...]} declares those finding types instead of
// ECHO, ESCAPED and CALL_1; {"many":N} sets how many findings "many" returns;
// {"smokeonly":true} fails every scan but of the host's fixed smoke test text.
//
// testdata/plugins/hostile/wat holds hand-written modules for what a Go guest
// cannot do: a wrong ABI version, missing exports, forbidden imports, a result
// outside memory or over the size limit.
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/sdk/guest"
)

// declared are the finding types the module declares in its manifest. It
// reports others: "count" reports CALL_<n> (CALL_1 is declared), "stash"
// PREV_<hex>, "bad-type" a type that is not an identifier, and "undeclared"
// one that is but was not declared.
var declared = []string{"ECHO", "ESCAPED", "CALL_1"}

func init() {
	guest.Register(func(config []byte) (guest.Scanner, error) {
		var cfg struct {
			Fail   bool
			Always string
			// Types, if set, replaces the declared types: {"types":["A"]}.
			Types []string
			// Many makes "many" return this many findings.
			Many int
			// SmokeOnly makes every scan fail but of the host's fixed
			// smoke test text.
			SmokeOnly bool
		}
		if len(config) > 0 {
			if err := json.Unmarshal(config, &cfg); err != nil {
				return nil, err
			}
		}
		if cfg.Fail {
			return nil, errors.New("refusing this configuration")
		}
		if cfg.Types != nil {
			guest.DeclareTypes(cfg.Types...)
		} else {
			guest.DeclareTypes(declared...)
		}
		many = cfg.Many
		if cfg.SmokeOnly {
			return func(texts [][]byte) ([]guest.Finding, error) {
				if len(texts) > 0 && bytes.HasPrefix(texts[0], []byte("Sluice smoke test")) {
					return nil, nil
				}
				return nil, errors.New("fails every real request")
			}, nil
		}
		if cfg.Always != "" {
			return func(texts [][]byte) ([]guest.Finding, error) {
				return scan([][]byte{[]byte(cfg.Always)})
			}, nil
		}
		return scan, nil
	})
}

var (
	spin  int
	calls int
	stash []byte
	many  int
	hoard [][]byte // kept reachable so the collector cannot free what "grow" takes
)

func scan(texts [][]byte) ([]guest.Finding, error) {
	if len(texts) == 0 || len(texts[0]) == 0 {
		return nil, nil
	}
	first := texts[0]
	if string(first) == "count" {
		calls++
	}
	if rest, ok := bytes.CutPrefix(first, []byte("stash:")); ok {
		prev := stash
		stash = append([]byte(nil), rest...)
		if len(prev) > 0 {
			return []guest.Finding{{Type: "PREV_" + strings.ToUpper(hex.EncodeToString(prev[:min(len(prev), 29)])), Start: 0, End: len(first), Score: 1}}, nil
		}
	}
	switch string(first) {
	case "panic":
		panic("hostile plugin panics")
	case "loop":
		for {
			spin++
		}
	case "grow":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case "count":
		return []guest.Finding{{Type: "CALL_" + strconv.Itoa(calls), Start: 0, End: len(first), Score: 1}}, nil
	case "error":
		return nil, errors.New("hostile plugin fails")
	case "bad-offsets":
		return []guest.Finding{{Type: "ECHO", Start: 0, End: len(first) + 10, Score: 1}}, nil
	case "bad-message":
		return []guest.Finding{{Type: "ECHO", Message: len(texts), Start: 0, End: 1, Score: 1}}, nil
	case "bad-type":
		return []guest.Finding{{Type: "echo; drop table", Start: 0, End: 1, Score: 1}}, nil
	case "undeclared":
		return []guest.Finding{{Type: "SECRET_FROM_THE_PROMPT", Start: 0, End: 1, Score: 1}}, nil
	case "many":
		out := make([]guest.Finding, many)
		for i := range out {
			out[i] = guest.Finding{Type: "ECHO", Start: 0, End: 1, Score: 1}
		}
		return out, nil
	case "log-flood":
		for range 100000 {
			guest.Log(guest.LevelWarn, "flood \x1b[31m\nfake=line "+string(first))
		}
	case "error-text":
		return nil, errors.New("failed on \n\x1b[2J" + string(first) + strings.Repeat("x", 4096))
	case "escape":
		_, fileErr := os.ReadFile("/etc/hostname")
		_, dirErr := os.ReadDir("/")
		if fileErr == nil || dirErr == nil || len(os.Environ()) > 0 || len(os.Args) > 0 {
			return []guest.Finding{{Type: "ESCAPED", Start: 0, End: len(first), Score: 1}}, nil
		}
	case "sleep":
		for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
			spin++
		}
	case "log":
		guest.Log(guest.LevelWarn, "hostile plugin says hello")
	}
	return []guest.Finding{{Type: "ECHO", Start: 0, End: len(first), Score: 0.5}}, nil
}

func main() {}
