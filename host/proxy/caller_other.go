//go:build !unix

package proxy

import "syscall"

// canPeek is false where the connection cannot be peeked at: only a
// request's deadline cancels its scans there.
const canPeek = false

func peerClosed(syscall.RawConn) bool { return false }
