package usage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSpoolKeepsEventsThroughAStoreOutage records events while the store
// fails: within FlushInterval they are on disk, so a process killed then
// loses none; the next ledger on the same folder writes them.
func TestSpoolKeepsEventsThroughAStoreOutage(t *testing.T) {
	dir := t.TempDir()
	st := &flakyStore{Store: openStore(t)}
	st.fail.Store(1 << 40)
	opts := LedgerOptions{SpoolDir: dir, FlushInterval: 10 * time.Millisecond}
	l, err := OpenLedger(st, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		l.Record(ev(fmt.Sprintf("r%d", i)))
	}
	path := filepath.Join(dir, SpoolFile)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Count(b, []byte("\n")) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spool holds %d of %d events", bytes.Count(b, []byte("\n")), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("spool mode: %v %v", fi.Mode(), err)
	}
	// What a SIGKILL leaves: the file. Close gives up at once here, as a
	// killed process would, and must not empty it.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Close(ctx)
	time.Sleep(50 * time.Millisecond)

	good := openStore(t)
	l2, err := OpenLedger(good, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := stored(t, good); got != n {
		t.Fatalf("the store holds %d of the %d events left in the spool", got, n)
	}
	if err := l2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Fatalf("the spool still holds %d bytes once everything is stored", len(b))
	}
}

// TestSpoolLedgerWritesAndEmpties: in normal operation the spool passes
// events through, Flush waits for the store, and a torn last line left by a
// crash is dropped.
func TestSpoolLedgerWritesAndEmpties(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SpoolFile)
	if err := os.WriteFile(path, []byte(`{"RequestID":"left","Time":"2026-12-01T00:00:00Z","ClientID":"alice","Model":"gpt-4o","UsageSource":"upstream","TotalTokens":3}`+"\n"+`{"RequestID":"to`), 0o600); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	l, err := OpenLedger(st, LedgerOptions{SpoolDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		l.Record(ev(fmt.Sprintf("r%d", i)))
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, tokens := stored(t, st); got != 301 || tokens != 3*301 {
		t.Fatalf("store holds %d events (%d tokens), want 301", got, tokens)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Fatalf("the spool holds %q after a flush", b)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
