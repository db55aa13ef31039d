package proxy

import (
	"errors"
	"io"
	"testing"

	"github.com/valyala/fasthttp"
)

// scriptedEvents yields its chunks, then its end.
type scriptedEvents struct {
	chunks [][]byte
	end    error
}

func (s *scriptedEvents) Next() ([]byte, error) {
	if len(s.chunks) == 0 {
		return nil, s.end
	}
	c := s.chunks[0]
	s.chunks = s.chunks[1:]
	return c, nil
}
func (s *scriptedEvents) Close() {}
func (s *scriptedEvents) Abort() {}

func TestOnlyACompletedStreamIsKept(t *testing.T) {
	chunks := func() [][]byte { return [][]byte{[]byte(`{"a":1}`), []byte(`{"b":2}`)} }
	tests := []struct {
		name  string
		end   error
		limit int64
		kept  bool
	}{
		{"completed", io.EOF, 0, true},
		{"broken", errors.New("connection reset"), 0, false},
		{"larger than an entry", io.EOF, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kept [][]byte
			r := &recordedEvents{Events: &scriptedEvents{chunks: chunks(), end: tt.end}, limit: tt.limit,
				keep: func(c [][]byte) { kept = c }}
			for {
				if _, err := r.Next(); err != nil {
					break
				}
			}
			r.Next() // a read past the end keeps nothing twice
			if (kept != nil) != tt.kept {
				t.Fatalf("kept %q, want kept=%v", kept, tt.kept)
			}
			if tt.kept && (len(kept) != 2 || string(kept[1]) != `{"b":2}`) {
				t.Errorf("kept %q", kept)
			}
		})
	}
}

func TestCacheControlDirectives(t *testing.T) {
	tests := []struct {
		header      string
		read, write bool
	}{
		{"", true, true},
		{"max-age=0", true, true},
		{"no-cache", false, true},
		{"No-Store", false, false},
		{"private, no-store", false, false},
		{"no-cachex", true, true},
	}
	for _, tt := range tests {
		var h fasthttp.RequestHeader
		if tt.header != "" {
			h.Set("Cache-Control", tt.header)
		}
		if read, write := cacheControl(&h); read != tt.read || write != tt.write {
			t.Errorf("Cache-Control %q: read %v write %v, want %v %v", tt.header, read, write, tt.read, tt.write)
		}
	}
}
