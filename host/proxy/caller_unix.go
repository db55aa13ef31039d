//go:build unix

package proxy

import (
	"syscall"

	"golang.org/x/sys/unix"
)

const canPeek = true

// peerClosed reports whether the peer of conn has closed it: a read that
// neither waits nor consumes finds its end, or an error other than "nothing
// to read yet". Bytes waiting (a pipelined request) mean the peer is there,
// or was: a peer that pipelined a request and then closed is seen only at
// that request's turn.
// A client that closes only its sending side and still reads is taken for
// gone; HTTP clients do not do that while they wait for an answer.
func peerClosed(conn syscall.RawConn) bool {
	var closed bool
	err := conn.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = err == nil && n == 0 || err != nil && err != unix.EAGAIN && err != unix.EWOULDBLOCK && err != unix.EINTR
	})
	return err == nil && closed
}
