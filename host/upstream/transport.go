package upstream

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// callKey is the fasthttp.Request user value through which Send hands a
// call's state to the transport.
type callKey struct{}

// callState is what Send and the transport share of one call: its
// deadline, and the connection it holds, so that a call its caller gave up
// on can be ended by closing that connection. fasthttp's client takes no
// context; closing the socket is the one way to stop a call in flight.
type callState struct {
	deadline time.Time
	// firstByte, when not zero, is the deadline of the reply's first byte
	// (before deadline).
	firstByte time.Time
	// release gives a streamed reply's connection back (reuse) or closes
	// it, once the body stream is closed.
	release func(reuse bool)

	mu        sync.Mutex
	conn      net.Conn
	cancelled bool
}

// attach records the connection the call is about to use. It returns false
// when the call was cancelled already.
func (c *callState) attach(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancelled {
		return false
	}
	c.conn = conn
	return true
}

// detach forgets the connection before it goes back to the pool, where a
// late cancel must not close it under another call.
func (c *callState) detach() {
	c.mu.Lock()
	c.conn = nil
	c.mu.Unlock()
}

// cancel ends the call: its connection, if it has one, is closed, and a
// connection it would take later is refused.
func (c *callState) cancel() {
	c.mu.Lock()
	c.cancelled = true
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

func (c *callState) isCancelled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cancelled
}

// idleConn is a connection to an upstream whose reads, once a reply has
// begun, wait at most idle for data. Before the reply's first byte only the
// call's own deadline applies: a model may think for a long time before it
// answers, but once it has started, a silence of idle is a stall.
type idleConn struct {
	net.Conn
	idle     time.Duration
	deadline time.Time // the call's deadline; zero for none
	begun    bool      // a byte of the current reply was read
	pushed   time.Time // when the idle deadline was last moved
	early    bool      // the read deadline is the first byte's, before deadline
}

// awaitReply starts a new reply on the connection: until its first byte,
// reads wait until firstByte, or the call's deadline when that is zero or
// later.
func (c *idleConn) awaitReply(deadline, firstByte time.Time) error {
	c.deadline, c.begun, c.pushed, c.early = deadline, false, time.Time{}, false
	if !firstByte.IsZero() && (deadline.IsZero() || firstByte.Before(deadline)) {
		c.early = true
		return c.Conn.SetReadDeadline(firstByte)
	}
	return c.Conn.SetReadDeadline(deadline)
}

func (c *idleConn) Read(p []byte) (int, error) {
	if c.begun && c.idle > 0 {
		// Moving the deadline costs a timer update; do it when a sixteenth
		// of the idle time has passed, so that a stall is caught between
		// idle and 17/16 idle.
		if now := time.Now(); now.Sub(c.pushed) >= c.idle/16 {
			d := now.Add(c.idle)
			if !c.deadline.IsZero() && c.deadline.Before(d) {
				d = c.deadline
			}
			if err := c.Conn.SetReadDeadline(d); err != nil {
				return 0, err
			}
			c.pushed = now
		}
	}
	n, err := c.Conn.Read(p)
	if n > 0 && !c.begun {
		c.begun = true
		if c.early {
			// The reply has begun: the call's deadline, and the idle
			// timeout from the next read.
			c.early = false
			if derr := c.Conn.SetReadDeadline(c.deadline); err == nil {
				err = derr
			}
		}
	}
	return n, err
}

// transport is fasthttp's default round trip, with what Sluice needs of
// it: the call's connection is known to the call (to cancel it), and reads
// follow the idle timeout once the reply has begun.
type transport struct{}

var errCancelled = errors.New("call cancelled")

func (transport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	call, _ := req.UserValue(callKey{}).(*callState)
	if call == nil {
		return fasthttp.DefaultTransport.RoundTrip(hc, req, resp)
	}
	var wait time.Duration
	if !call.deadline.IsZero() {
		if wait = time.Until(call.deadline); wait <= 0 {
			return false, fasthttp.ErrTimeout
		}
	}
	cc, err := hc.AcquireConn(wait, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	if !call.attach(conn) {
		hc.CloseConn(cc)
		return false, errCancelled
	}
	fail := func(retry bool, err error) (bool, error) {
		call.detach()
		hc.CloseConn(cc)
		if call.isCancelled() {
			return false, errCancelled
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, fasthttp.ErrTimeout
		}
		return retry, err
	}
	resp.ParseNetConn(conn)
	if err := conn.SetWriteDeadline(call.deadline); err != nil {
		return fail(true, err)
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		return fail(true, err)
	}
	if ic, ok := conn.(*idleConn); ok {
		err = ic.awaitReply(call.deadline, call.firstByte)
	} else {
		err = conn.SetReadDeadline(call.deadline)
	}
	if err != nil {
		return fail(true, err)
	}
	br := hc.AcquireReader(conn)
	if err := resp.ReadLimitBody(br, hc.MaxResponseBodySize); err != nil {
		hc.ReleaseReader(br)
		return fail(!errors.Is(err, fasthttp.ErrBodyTooLarge), err)
	}
	keep := !req.ConnectionClose() && !resp.ConnectionClose()
	release := func(reuse bool) {
		hc.ReleaseReader(br)
		call.detach()
		if reuse && keep {
			hc.ReleaseConn(cc)
		} else {
			hc.CloseConn(cc)
		}
	}
	if resp.StreamBody && resp.BodyStream() != nil {
		// The stream's reader releases the connection when it is done:
		// for reuse when the stream was read to its end, closed otherwise.
		call.release = release
		return false, nil
	}
	release(true)
	return false, nil
}
