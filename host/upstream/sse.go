package upstream

import (
	"bufio"
	"bytes"
	"io"
)

var (
	dataPrefix = []byte("data:")
	doneData   = []byte("[DONE]")
)

// sseReader splits a text/event-stream into the data of each event.
type sseReader struct {
	r    *bufio.Reader
	data []byte
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 16<<10)}
}

// next returns the data of the next event (multi-line data joined with "\n"),
// or io.EOF after [DONE] or at the end of input. The slice is valid until the
// next call.
func (s *sseReader) next() ([]byte, error) {
	s.data = s.data[:0]
	have := false
	for {
		line, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: gather it whole.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = s.r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		switch {
		case len(trimmed) == 0 && len(line) > 0:
			if have {
				if bytes.Equal(s.data, doneData) {
					return nil, io.EOF
				}
				return s.data, nil
			}
		case bytes.HasPrefix(trimmed, dataPrefix):
			v := trimmed[len(dataPrefix):]
			if len(v) > 0 && v[0] == ' ' {
				v = v[1:]
			}
			if have {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, v...)
			have = true
		}
		// Comments (":"), event:, id: and retry: lines carry nothing Sluice needs.
		if err != nil {
			if have && !bytes.Equal(s.data, doneData) {
				return s.data, nil
			}
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, err
		}
	}
}
