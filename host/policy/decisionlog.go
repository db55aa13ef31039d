package policy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// DecisionLogConfig configures a DecisionLog.
type DecisionLogConfig struct {
	// SampleRate is the share of allowed decisions written, from 0 to 1.
	// Denials, policy errors and shadow disagreements are always written.
	SampleRate float64
	// Buffer is how many entries may wait for the writer; when it is full,
	// entries are dropped and counted rather than slow down requests.
	// Default 4096.
	Buffer int
}

// DecisionLog writes decisions as JSON lines, one per decision, off the
// request path: Record hands the entry to a goroutine through a bounded
// buffer and never waits for the writer. Entries carry the input document
// as the policy saw it, which holds no message text, and never a key; of
// an identity token's claims, only the names, and the values of those
// listed in its provider's log_claims, the others hashed.
//
// A line looks like:
//
//	{"time":"2026-11-28T09:30:00.000001Z","decision_id":"dec_…","request_id":"req_…",
//	 "revision":"3f2a…","duration_us":18,"cached":true,"input":{…},"result":{…decision…},
//	 "shadow":{"revision":"…","result":{…},"disagrees":true,"duration_us":21}}
//
// with "error" instead of "result" when the policy failed, and "cached"
// only when the decision cache answered.
type DecisionLog struct {
	rate    float64
	entries chan logEntry
	done    chan struct{}
	closer  io.Closer // nil unless the log opened the file

	mu     sync.RWMutex // guards closed against Record racing Close
	closed bool

	written atomic.Uint64
	dropped atomic.Uint64
	err     error // the first write error, read after done
}

type logEntry struct {
	requestID string
	r         Result
	err       error
}

// NewDecisionLog starts a log that writes to w. Close flushes it; w is not
// closed.
func NewDecisionLog(w io.Writer, cfg DecisionLogConfig) *DecisionLog {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 4096
	}
	l := &DecisionLog{
		rate:    min(max(cfg.SampleRate, 0), 1),
		entries: make(chan logEntry, cfg.Buffer),
		done:    make(chan struct{}),
	}
	go l.run(w)
	return l
}

// OpenDecisionLog appends to the file at path, creating it (mode 0600:
// decisions name clients and their usage) if needed. Close closes it.
func OpenDecisionLog(path string, cfg DecisionLogConfig) (*DecisionLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("policy: open decision log: %w", err)
	}
	l := NewDecisionLog(f, cfg)
	l.closer = f
	return l, nil
}

// Record logs the decision r of the request requestID, and err if Decide
// failed, unless sampling leaves it out or the buffer is full. It does not
// block. The log keeps r: the caller must not change r's slices and maps
// afterwards.
func (l *DecisionLog) Record(requestID string, r Result, err error) {
	keep := err != nil || !r.Decision.Allowed || (r.Shadow != nil && r.Shadow.Disagrees) ||
		(l.rate > 0 && (l.rate >= 1 || rand.Float64() < l.rate))
	if !keep {
		return
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.dropped.Add(1)
		return
	}
	select {
	case l.entries <- logEntry{requestID: requestID, r: r, err: err}:
	default:
		l.dropped.Add(1)
	}
}

// Dropped is how many entries were lost because the buffer was full or the
// log closed.
func (l *DecisionLog) Dropped() uint64 { return l.dropped.Load() }

// Written is how many entries were written.
func (l *DecisionLog) Written() uint64 { return l.written.Load() }

// Close writes the entries still buffered, flushes, closes the file if
// OpenDecisionLog opened it, and returns the first write error.
func (l *DecisionLog) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.done
		return nil
	}
	l.closed = true
	close(l.entries)
	l.mu.Unlock()
	<-l.done
	err := l.err
	if l.closer != nil {
		err = errors.Join(err, l.closer.Close())
	}
	if err != nil {
		return fmt.Errorf("policy: decision log: %w", err)
	}
	return nil
}

// run writes entries until Close, flushing whenever the buffer runs empty
// so that a quiet log is not left holding lines.
func (l *DecisionLog) run(w io.Writer) {
	defer close(l.done)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	fail := func(err error) {
		if l.err == nil {
			l.err = err
		}
	}
	for e := range l.entries {
		if err := enc.Encode(e.line()); err != nil {
			fail(err)
			continue
		}
		l.written.Add(1)
		if len(l.entries) == 0 {
			if err := bw.Flush(); err != nil {
				fail(err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		fail(err)
	}
}

// logLine is the JSON of one entry.
type logLine struct {
	Time       time.Time  `json:"time"`
	DecisionID string     `json:"decision_id"`
	RequestID  string     `json:"request_id,omitempty"`
	Revision   string     `json:"revision"`
	DurationUS int64      `json:"duration_us"`
	Cached     bool       `json:"cached,omitempty"`
	Input      any        `json:"input"`
	Result     *Decision  `json:"result,omitempty"`
	Error      string     `json:"error,omitempty"`
	Shadow     *logShadow `json:"shadow,omitempty"`
}

type logShadow struct {
	Revision   string    `json:"revision"`
	Result     *Decision `json:"result,omitempty"`
	Error      string    `json:"error,omitempty"`
	Disagrees  bool      `json:"disagrees"`
	DurationUS int64     `json:"duration_us"`
}

func (e logEntry) line() logLine {
	ln := logLine{
		Time:       e.r.at.UTC(),
		DecisionID: e.r.ID,
		RequestID:  e.requestID,
		Revision:   e.r.Revision,
		DurationUS: e.r.Duration.Microseconds(),
		Cached:     e.r.Cached,
	}
	if e.r.input != nil {
		// The input holds no message text by construction: Input has no
		// field for it.
		ln.Input, _ = ast.JSON(e.r.input)
		redactIdentity(ln.Input, e.r.logClaims)
	}
	if e.err != nil {
		ln.Error = e.err.Error()
	} else {
		ln.Result = &e.r.Decision
	}
	if sh := e.r.Shadow; sh != nil {
		ls := &logShadow{Revision: sh.Revision, Disagrees: sh.Disagrees, DurationUS: sh.Duration.Microseconds()}
		if sh.Err != nil {
			ls.Error = sh.Err.Error()
		} else {
			ls.Result = &sh.Decision
		}
		ln.Shadow = ls
	}
	return ln
}
