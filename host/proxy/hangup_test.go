package proxy

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// tcpPair is a connected loopback pair: the server's end, as fasthttp would
// hold it, and the caller's.
func tcpPair(t testing.TB) (server, caller net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); accepted <- c }()
	caller, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { server.Close(); caller.Close() })
	return server, caller
}

// TestHangupNoticesACallerThatLeaves: the watch's context ends, with
// errCallerLeft, when the caller closes its end; and after stop the
// connection reads normally again, with no deadline left on it.
func TestHangupNoticesACallerThatLeaves(t *testing.T) {
	server, caller := tcpPair(t)
	h := watchHangup(context.Background(), server)
	if h == nil {
		t.Skip("no peek on this platform")
	}
	time.Sleep(2 * hangupAfter)
	caller.Close()
	select {
	case <-h.context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the caller's close was not noticed")
	}
	if !errors.Is(context.Cause(h.context()), errCallerLeft) {
		t.Fatalf("cause %v", context.Cause(h.context()))
	}
	h.stop()
}

func TestHangupStopLeavesTheConnectionUsable(t *testing.T) {
	for _, wait := range []time.Duration{0, 2 * hangupAfter} {
		server, caller := tcpPair(t)
		h := watchHangup(context.Background(), server)
		time.Sleep(wait)
		h.stop()
		if errors.Is(context.Cause(h.context()), errCallerLeft) {
			t.Fatalf("after %v: a caller still there was taken for gone", wait)
		}
		caller.Write([]byte("next request"))
		server.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 32)
		if n, err := server.Read(buf); err != nil || string(buf[:n]) != "next request" {
			t.Fatalf("after %v: read %q, %v", wait, buf[:n], err)
		}
	}
}

// BenchmarkHangup is what watching costs a request whose upstream answers
// before the watch starts (the common case): a context and a timer.
func BenchmarkHangup(b *testing.B) {
	server, _ := tcpPair(b)
	stopping, cancel := context.WithCancelCause(context.Background()) // as the gateway's
	defer cancel(nil)
	b.ReportAllocs()
	for b.Loop() {
		h := watchHangup(stopping, server)
		h.stop()
	}
}

// BenchmarkHangupStarted is what it costs a request that waits longer than
// hangupAfter: the watch runs and is stopped.
func BenchmarkHangupStarted(b *testing.B) {
	server, _ := tcpPair(b)
	b.ReportAllocs()
	for b.Loop() {
		h := watchHangup(context.Background(), server)
		h.timer.Reset(0)
		for {
			h.mu.Lock()
			started := h.started
			h.mu.Unlock()
			if started {
				break
			}
			time.Sleep(time.Microsecond)
		}
		h.stop()
	}
}
