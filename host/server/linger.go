package server

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// A caller whose body is over the limit is answered 413 before its body has
// been read. Closing a socket that still holds unread data makes the kernel
// send a reset, which can overtake the 413 and leave the caller with
// "connection reset by peer" instead of an answer it can act on. A lingering
// close ends the sending side first, then reads and discards what is still
// coming, within bounds, so that the answer arrives whole.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 4 << 20
)

// lingerListener hands out connections that can be told to linger on close.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// lingerConn is a connection whose Close lingers once LingerOnClose was
// called: after a reply sent before its request was read to the end.
type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

// SyscallConn gives the socket itself, as *net.TCPConn does: the gateway
// watches it for a caller that hangs up while its upstream is silent.
func (c *lingerConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// LingerOnClose makes the next Close a lingering one.
func (c *lingerConn) LingerOnClose() { c.linger.Store(true) }

func (c *lingerConn) Close() error {
	if c.linger.Load() {
		if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
			c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			io.CopyN(io.Discard, c.Conn, lingerBytes)
		}
	}
	return c.Conn.Close()
}

// listenLingering listens on addr for the public listener.
func listenLingering(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return lingerListener{ln}, nil
}
