package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// hangupAfter is how long a request waits on its upstream before Sluice
// starts watching the caller's connection: most replies come sooner, and
// they pay for no watcher.
const hangupAfter = 50 * time.Millisecond

// errCallerLeft is the cause of a request's context when its caller closed
// the connection while the request waited on the upstream.
var errCallerLeft = errors.New("the caller closed its connection")

// errWatchOver ends a watch's context when the upstream answered first.
var errWatchOver = errors.New("the upstream answered")

// hangup notices a caller that closes its connection while its request
// waits for the upstream's first byte, so that the upstream call is ended
// and both sockets are freed then, not at the upstream's timeout. fasthttp
// reads nothing from a connection while its handler runs, so a close shows
// only as the socket turning readable with nothing to read; the watcher
// peeks at it without consuming anything.
type hangup struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	conn   net.Conn
	sc     syscall.Conn
	timer  *time.Timer

	mu      sync.Mutex
	started bool
	stopped bool
	done    chan struct{} // made when the watch starts; closed when it ends
}

// watchHangup starts watching conn after hangupAfter. Its context, a child
// of parent, is cancelled with errCallerLeft when the caller goes away
// before stop, and with parent's cause when parent ends first. It returns
// nil (whose context is Background) for a connection it cannot watch.
func watchHangup(parent context.Context, conn net.Conn) *hangup {
	sc, ok := conn.(syscall.Conn)
	if !ok || !peekSupported {
		return nil
	}
	// The socket and the channel are had when the watch starts: most
	// requests are answered before.
	h := &hangup{conn: conn, sc: sc}
	h.ctx, h.cancel = context.WithCancelCause(parent)
	h.timer = time.AfterFunc(hangupAfter, h.watch)
	return h
}

// context is the context the upstream call runs under.
func (h *hangup) context() context.Context {
	if h == nil {
		return context.Background()
	}
	return h.ctx
}

func (h *hangup) watch() {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return
	}
	h.started = true
	h.done = make(chan struct{})
	h.mu.Unlock()
	defer close(h.done)
	raw, err := h.sc.SyscallConn()
	if err != nil {
		return
	}
	gone := false
	// Read returns when the callback says so, or with an error when stop
	// moves the read deadline into the past.
	raw.Read(func(fd uintptr) bool {
		var again bool
		gone, again = peekClosed(fd)
		return !again
	})
	if gone {
		h.cancel(errCallerLeft)
	}
}

// stop ends the watch and its context, and leaves the connection as
// fasthttp expects it: no read in progress, no read deadline (fasthttp sets
// its own before it reads the next request).
func (h *hangup) stop() {
	if h == nil {
		return
	}
	defer h.cancel(errWatchOver)
	if h.timer.Stop() {
		return
	}
	h.mu.Lock()
	h.stopped = true
	started, done := h.started, h.done
	h.mu.Unlock()
	if !started {
		return
	}
	h.conn.SetReadDeadline(time.Unix(1, 0))
	<-done
	h.conn.SetReadDeadline(time.Time{})
}
