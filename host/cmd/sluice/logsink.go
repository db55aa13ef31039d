package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// logSink buffers log output and writes it in batches: with an access line
// per request, a write system call per line costs a visible share of the
// gateway's throughput. What a crash can lose is the last flushInterval of lines.
type logSink struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

const flushInterval = 100 * time.Millisecond

func newLogSink(w io.Writer) *logSink {
	s := &logSink{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *logSink) run() {
	defer close(s.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.flush()
		case <-s.stop:
			return
		}
	}
}

// Write buffers p; a full buffer is written at once.
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *logSink) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}

// Close stops the flusher and writes what is buffered.
func (s *logSink) Close() error {
	close(s.stop)
	<-s.done
	return s.flush()
}
