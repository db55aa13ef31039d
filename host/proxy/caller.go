package proxy

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The scans of a request run while its caller waits. A caller that has gone
// (it disconnected, or its own deadline passed and it gave up) waits for
// nothing, and a scan that still waits for a busy plugin, or runs, would
// spend the plugin's capacity on a request that no one will read the answer
// of, ahead of callers that are still there. fasthttp tells a handler
// nothing of a caller that disconnects, so a watcher looks: one goroutine,
// running while any request scans, peeks at each such request's connection
// every callerPoll and cancels the scans of a request whose connection the
// caller closed, or whose deadline passed.

// callerPoll is how often the watcher looks at the connections of requests
// that scan: a cancelled scan ends at most about this long after its
// caller left.
const callerPoll = 10 * time.Millisecond

// Causes of a cancelled scan, from context.Cause.
var (
	errCallerGone     = errors.New("the caller disconnected")
	errCallerDeadline = errors.New("the request's deadline passed")
)

// timeoutHeader is the header in which OpenAI's SDKs send the timeout of a
// request, in seconds: past it the SDK has given up on the answer.
const timeoutHeader = "X-Stainless-Timeout"

// callerDeadline is when the caller of a request gives up on it: the
// arrival plus the timeout it sent, or zero when it sent none. The header
// can only make the caller's own request end sooner.
func callerDeadline(h *fasthttp.RequestHeader, arrived time.Time) time.Time {
	v := h.Peek(timeoutHeader)
	if len(v) == 0 || len(v) > 12 {
		return time.Time{}
	}
	secs, err := strconv.ParseFloat(string(v), 64)
	if err != nil || secs <= 0 || secs > 24*3600 {
		return time.Time{}
	}
	return arrived.Add(time.Duration(secs * float64(time.Second)))
}

// callerWatch cancels the scans of requests whose caller has gone.
type callerWatch struct {
	mu      sync.Mutex
	watched map[*watchedCall]struct{}
	running bool
}

type watchedCall struct {
	since    time.Time       // when the scans began
	conn     syscall.RawConn // nil when the connection cannot be peeked at
	deadline time.Time       // zero: none
	cancel   context.CancelCauseFunc
}

// watch returns a context for the scans of a request on conn, cancelled when
// the caller disconnects or deadline passes, and a function to call when the
// scans are over. Nothing of conn is used after stop returns.
func (w *callerWatch) watch(conn net.Conn, deadline time.Time) (context.Context, func()) {
	var raw syscall.RawConn
	if sc, ok := conn.(syscall.Conn); ok && canPeek {
		raw, _ = sc.SyscallConn()
	}
	if raw == nil && deadline.IsZero() {
		return stepContext, noStop
	}
	c := &watchedCall{since: time.Now(), conn: raw, deadline: deadline}
	var ctx context.Context
	ctx, c.cancel = context.WithCancelCause(stepContext)
	w.mu.Lock()
	if w.watched == nil {
		w.watched = map[*watchedCall]struct{}{}
	}
	w.watched[c] = struct{}{}
	if !w.running {
		w.running = true
		go w.run()
	}
	w.mu.Unlock()
	return ctx, func() {
		w.mu.Lock()
		delete(w.watched, c)
		w.mu.Unlock()
		c.cancel(nil)
	}
}

func noStop() {}

// run looks at the watched requests every callerPoll until none is left.
// The connections are peeked at under w.mu, so that none is used after its
// request's stop has returned.
func (w *callerWatch) run() {
	t := time.NewTicker(callerPoll)
	defer t.Stop()
	for now := range t.C {
		w.mu.Lock()
		if len(w.watched) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		for c := range w.watched {
			switch {
			case !c.deadline.IsZero() && now.After(c.deadline):
				c.cancel(errCallerDeadline)
			case c.conn != nil && now.Sub(c.since) >= callerPoll && peerClosed(c.conn):
				// Scans younger than a poll are not looked at: most end
				// sooner, and a look costs a system call.
				c.cancel(errCallerGone)
			default:
				continue
			}
			delete(w.watched, c)
		}
		w.mu.Unlock()
	}
}
