package proxy

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// loopback returns both ends of a TCP connection on 127.0.0.1.
func loopback(t testing.TB) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// The watch cancels a request's context when its caller closes the
// connection, and not while the caller is there, whether it waits or sends
// the bytes of a pipelined request.
func TestCallerWatchSeesADisconnect(t *testing.T) {
	if !canPeek {
		t.Skip("connections cannot be peeked at here")
	}
	var w callerWatch
	server, client := loopback(t)
	ctx, stop := w.watch(server, time.Time{})
	defer stop()
	time.Sleep(5 * callerPoll)
	if ctx.Err() != nil {
		t.Fatalf("cancelled while the caller waits: %v", context.Cause(ctx))
	}
	pipelined, other := loopback(t)
	pctx, pstop := w.watch(pipelined, time.Time{})
	defer pstop()
	other.Write([]byte("GET / HTTP/1.1\r\n"))
	time.Sleep(5 * callerPoll)
	if pctx.Err() != nil {
		t.Fatalf("cancelled while the caller sends: %v", context.Cause(pctx))
	}
	client.Close()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not cancelled after the caller closed its connection")
	}
	if !errors.Is(context.Cause(ctx), errCallerGone) {
		t.Errorf("cause %v", context.Cause(ctx))
	}
}

// The watch cancels a request's context at its deadline.
func TestCallerWatchHonoursTheDeadline(t *testing.T) {
	var w callerWatch
	ctx, stop := w.watch(nil, time.Now().Add(30*time.Millisecond))
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not cancelled at the deadline")
	}
	if !errors.Is(context.Cause(ctx), errCallerDeadline) {
		t.Errorf("cause %v", context.Cause(ctx))
	}
}

// BenchmarkCallerWatch is what watching a request's connection while it
// scans adds to the request: "none" is a request with nothing to watch (the
// cost of asking), "tcp" one on a real connection.
func BenchmarkCallerWatch(b *testing.B) {
	server, _ := loopback(b)
	var w callerWatch
	for _, c := range []struct {
		name string
		conn net.Conn
	}{{"none", nil}, {"tcp", server}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, stop := w.watch(c.conn, time.Time{})
				stop()
			}
		})
	}
}
