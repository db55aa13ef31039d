//go:build unix

package proxy

import "syscall"

const peekSupported = true

// peekClosed looks at a socket without consuming anything: gone when the
// peer closed it (end of stream or an error such as a reset), again when
// there is nothing to read yet. Bytes waiting (a pipelined request) mean
// the caller is still there, and the watch ends.
func peekClosed(fd uintptr) (gone, again bool) {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return false, true
	case err != nil:
		return true, false
	}
	return n == 0, false
}
