package server

import (
	"net"
	"testing"
	"time"
)

// TestLingerIsBounded is the caller who keeps sending after its 413, to
// hold a server worker: the lingering close must end within its time bound
// however the caller sends, trickling or flooding.
func TestLingerIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chunk int
		pause time.Duration
	}{
		{"trickle", 1, 50 * time.Millisecond},
		{"flood", 64 << 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := listenLingering("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			go func() {
				buf := make([]byte, tc.chunk)
				for {
					if _, err := client.Write(buf); err != nil {
						return
					}
					time.Sleep(tc.pause)
				}
			}()
			conn, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			conn.(interface{ LingerOnClose() }).LingerOnClose()
			start := time.Now()
			conn.Close()
			if took := time.Since(start); took > lingerTime+2*time.Second {
				t.Fatalf("a lingering close took %v with the caller still sending; the bound is %v", took, lingerTime)
			}
		})
	}
}
