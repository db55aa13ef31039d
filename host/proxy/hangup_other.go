//go:build !unix

package proxy

const peekSupported = false

func peekClosed(uintptr) (gone, again bool) { return false, false }
