package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/sluicehq/sluice/host/store"
)

// SpoolFile is the name of the spool in LedgerOptions.SpoolDir.
const SpoolFile = "ledger.spool"

// spool is the ledger's queue on disk: the events recorded and not yet in
// the store, one JSON object a line, appended and fsynced once per batch,
// read back in order by the store writer, and emptied whenever the writer
// has caught up. A process killed while the store is failing leaves its
// events there, and the next start writes them; the store skips request
// ids it already holds, so an event written twice counts once.
type spool struct {
	mu   sync.Mutex
	f    *os.File
	path string
	// size is the file's length, read how far the writer has consumed it.
	size, read int64
	// appended and stored count events since the spool was opened.
	appended, stored int64
	buf              bytes.Buffer
	rbuf             []byte // next's, reused: only the store writer reads
}

// maxSpoolLine bounds one event's line; a longer one is taken for damage.
const maxSpoolLine = 1 << 20

// openSpool opens the spool in dir (0600, in a 0700 folder), keeping the
// events a previous process left in it and dropping a torn last line (a
// crash in the middle of an append). It returns how many it kept.
func openSpool(dir string) (*spool, int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("usage spool: %w", err)
	}
	path := filepath.Join(dir, SpoolFile)
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, 0, fmt.Errorf("usage spool: %w", err)
	}
	var kept []store.UsageEvent
	for _, line := range bytes.Split(old, []byte("\n")) {
		var ev store.UsageEvent
		if len(line) > 0 && json.Unmarshal(line, &ev) == nil && ev.RequestID != "" {
			kept = append(kept, ev)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("usage spool: %w", err)
	}
	s := &spool{f: f, path: path}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("usage spool: %w", err)
	}
	if len(kept) > 0 {
		if _, _, err := s.append(kept); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	return s, len(kept), nil
}

// append writes batch at the end and fsyncs it; it returns the offset and
// length of what it wrote.
func (s *spool) append(batch []store.UsageEvent) (off, n int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	enc := json.NewEncoder(&s.buf)
	for i := range batch {
		if err := enc.Encode(&batch[i]); err != nil {
			return 0, 0, fmt.Errorf("usage spool: %w", err)
		}
	}
	if _, err := s.f.WriteAt(s.buf.Bytes(), s.size); err != nil {
		return 0, 0, fmt.Errorf("usage spool: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("usage spool: %w", err)
	}
	off, n = s.size, int64(s.buf.Len())
	s.size += n
	s.appended += int64(len(batch))
	return off, n, nil
}

// at reports whether the writer has consumed the spool up to off exactly:
// then the batch appended at off is the next to store, and the writer may
// take it from memory instead of reading it back.
func (s *spool) at(off int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read == off
}

// next reads up to max events after what the writer consumed, how many
// bytes they take and how many lines (a damaged line is skipped, and
// counted).
func (s *spool) next(max int) ([]store.UsageEvent, int64, int, error) {
	s.mu.Lock()
	off, end := s.read, s.size
	s.mu.Unlock()
	if off >= end {
		return nil, 0, 0, nil
	}
	size := int(min(end-off, int64(max)*1024+maxSpoolLine))
	if cap(s.rbuf) < size {
		s.rbuf = make([]byte, size)
	}
	chunk := s.rbuf[:size]
	n, err := s.f.ReadAt(chunk, off)
	if n == 0 && err != nil {
		return nil, 0, 0, fmt.Errorf("usage spool: %w", err)
	}
	chunk = chunk[:n]
	var (
		out   []store.UsageEvent
		used  int64
		lines int
	)
	for lines < max {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			break
		}
		line := chunk[:i]
		chunk = chunk[i+1:]
		used += int64(i + 1)
		lines++
		var ev store.UsageEvent
		if json.Unmarshal(line, &ev) == nil {
			out = append(out, ev)
		}
	}
	if used == 0 {
		// A line longer than any event: skip what was read.
		used, lines = int64(n), 1
	}
	return out, used, lines, nil
}

// consumed notes that the writer stored the n lines of the next used
// bytes, and empties the file once it has caught up. It returns the total of
// events stored since the spool was opened.
func (s *spool) consumed(used int64, n int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read += used
	s.stored += int64(n)
	if s.read < s.size {
		return s.stored, nil
	}
	s.read, s.size = 0, 0
	if err := s.f.Truncate(0); err != nil {
		return s.stored, fmt.Errorf("usage spool: %w", err)
	}
	return s.stored, nil
}

func (s *spool) counts() (appended, stored int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended, s.stored
}

func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}
