package guest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/abi"
)

// newState returns plugin state with a scanner that reports each text that
// contains "secret", as the exports would drive it.
func newState() *state {
	return &state{newScanner: func(config []byte) (Scanner, error) {
		if string(config) == "bad" {
			return nil, errors.New("bad config")
		}
		return func(texts [][]byte) ([]Finding, error) {
			var out []Finding
			for m, t := range texts {
				if i := bytes.Index(t, []byte("secret")); i >= 0 {
					out = append(out, Finding{Type: "SECRET", Message: m, Start: i, End: i + 6, Score: 1})
				}
				if string(t) == "fail" {
					return nil, errors.New("scanner failed")
				}
			}
			return out, nil
		}, nil
	}}
}

func TestStateScan(t *testing.T) {
	s := newState()
	if status := s.configure(nil); status != abi.StatusOK {
		t.Fatalf("configure = %d, %s", status, s.out)
	}
	input := abi.AppendTexts(nil, []string{"hello", "my secret"})
	if status := s.scanInput(input); status != abi.StatusOK {
		t.Fatalf("scan = %d, %s", status, s.out)
	}
	want := `{"findings":[{"type":"SECRET","message":1,"start":3,"end":9,"score":1}]}`
	if string(s.out) != want {
		t.Errorf("output = %s, want %s", s.out, want)
	}
	for _, text := range s.texts[:cap(s.texts)] {
		if text != nil {
			t.Fatal("state keeps references into the host's input buffer after the call")
		}
	}
}

func TestStateErrors(t *testing.T) {
	tests := []struct {
		name    string
		run     func(*state) int32
		wantOut string
	}{
		{"scan before configure", func(s *state) int32 { return s.scanInput(abi.AppendTexts(nil, nil)) }, "before a successful configure"},
		{"configure rejected", func(s *state) int32 { return s.configure([]byte("bad")) }, "configure: bad config"},
		{"no scanner registered", func(s *state) int32 { s.newScanner = nil; return s.configure(nil) }, "call guest.Register"},
		{"malformed input", func(s *state) int32 { s.configure(nil); return s.scanInput([]byte{1}) }, "malformed texts"},
		{"scanner error", func(s *state) int32 { s.configure(nil); return s.scanInput(abi.AppendTexts(nil, []string{"fail"})) }, "scanner failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newState()
			status := tt.run(s)
			if status != abi.StatusError || !strings.Contains(string(s.out), tt.wantOut) {
				t.Errorf("status %d, output %q; want StatusError and %q", status, s.out, tt.wantOut)
			}
		})
	}
}
