package usage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/store"
)

func init() {
	// Keep retry tests fast; the backoff shape is what matters.
	retryMin, retryMax = time.Millisecond, 5*time.Millisecond
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// stored returns how many events the store holds and their total tokens.
func stored(t *testing.T, st store.Store) (requests, tokens int64) {
	t.Helper()
	rows, err := st.Report(context.Background(), store.ReportQuery{GroupBy: store.GroupByClient})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		requests += r.Requests
		tokens += r.TotalTokens
	}
	return requests, tokens
}

func ev(id string) store.UsageEvent {
	return store.UsageEvent{
		RequestID: id, ClientID: "alice", Department: "eng", Model: "gpt-4o", Status: 200,
		PromptTokens: 2, CompletionTokens: 1, TotalTokens: 3, CostNanos: 9, UsageSource: store.UsageUpstream,
	}
}

// syncBuffer is a log sink safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func TestLedgerConcurrentRecordLosesNothing(t *testing.T) {
	st := openStore(t)
	// A small queue forces Record to block at times, which must not lose events.
	l := NewLedger(st, LedgerOptions{BatchSize: 64, QueueSize: 128}, nil)
	defer l.Close(context.Background())

	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Record(ev(fmt.Sprintf("g%d-%d", g, i)))
			}
		})
	}
	wg.Wait()
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, tokens := stored(t, st); n != goroutines*each || tokens != 3*goroutines*each {
		t.Errorf("store holds %d events (%d tokens), want %d (%d)", n, tokens, goroutines*each, 3*goroutines*each)
	}
	if d := l.QueueDepth(); d != 0 {
		t.Errorf("QueueDepth after Flush = %d, want 0", d)
	}
}

func TestLedgerWritesAfterFlushInterval(t *testing.T) {
	st := openStore(t)
	l := NewLedger(st, LedgerOptions{FlushInterval: 10 * time.Millisecond}, nil)
	defer l.Close(context.Background())
	for i := range 3 {
		l.Record(ev(fmt.Sprint(i)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.QueueDepth() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n, _ := stored(t, st); n != 3 {
		t.Errorf("store holds %d events without Flush, want 3", n)
	}
}

func TestLedgerCloseFlushes(t *testing.T) {
	st := openStore(t)
	// Neither the batch size nor the interval would write these in time.
	l := NewLedger(st, LedgerOptions{BatchSize: 1000, FlushInterval: time.Hour}, nil)
	for i := range 10 {
		l.Record(ev(fmt.Sprint(i)))
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := stored(t, st); n != 10 {
		t.Errorf("store holds %d events after Close, want 10", n)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}

	l.Record(ev("late"))
	if n, _ := stored(t, st); n != 11 {
		t.Errorf("Record after Close was not written synchronously: %d events, want 11", n)
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Errorf("Flush after Close = %v", err)
	}
}

// flakyStore fails InsertUsage while fail is positive, then writes through.
type flakyStore struct {
	store.Store
	fail  atomic.Int64
	calls atomic.Int64
	gate  chan struct{} // when set, InsertUsage waits for it to close
}

func (f *flakyStore) InsertUsage(ctx context.Context, evs []store.UsageEvent) error {
	f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if f.fail.Add(-1) >= 0 {
		return errors.New("disk I/O error")
	}
	return f.Store.InsertUsage(ctx, evs)
}

func TestLedgerRetriesFailedWrites(t *testing.T) {
	st := &flakyStore{Store: openStore(t)}
	st.fail.Store(3)
	log, logs := testLogger()
	// One batch, written only by Flush, so the call count below is exact.
	l := NewLedger(st, LedgerOptions{FlushInterval: time.Hour}, log)
	defer l.Close(context.Background())

	l.Record(ev("req-1"))
	l.Record(ev("req-2"))
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := stored(t, st); n != 2 {
		t.Errorf("store holds %d events after failed writes, want 2", n)
	}
	if got := st.calls.Load(); got != 4 {
		t.Errorf("InsertUsage called %d times, want 3 failures and 1 success", got)
	}
	out := logs.String()
	if strings.Count(out, "retrying") != 3 || !strings.Contains(out, "req-1") {
		t.Errorf("want three retry warnings naming the request ids, got:\n%s", out)
	}
	if strings.Contains(out, "gpt-4o") {
		t.Errorf("retry log carries event contents beyond request ids:\n%s", out)
	}
}

func TestLedgerRecordBlocksWhenQueueIsFull(t *testing.T) {
	st := &flakyStore{Store: openStore(t), gate: make(chan struct{})}
	l := NewLedger(st, LedgerOptions{BatchSize: 1, QueueSize: 2}, nil)
	defer l.Close(context.Background())

	// One event held by the blocked writer, two in the queue.
	for i := range 3 {
		l.Record(ev(fmt.Sprint(i)))
	}
	returned := make(chan struct{})
	go func() {
		l.Record(ev("overflow"))
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("Record returned while the queue was full; the event could only have been dropped")
	case <-time.After(50 * time.Millisecond):
	}
	if d := l.QueueDepth(); d != 4 {
		t.Errorf("QueueDepth = %d, want 4", d)
	}
	close(st.gate)
	<-returned
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := stored(t, st); n != 4 {
		t.Errorf("store holds %d events, want 4", n)
	}
}

func TestLedgerWritesValidEventsBesideAnInvalidOne(t *testing.T) {
	st := openStore(t)
	log, logs := testLogger()
	l := NewLedger(st, LedgerOptions{}, log)
	defer l.Close(context.Background())

	bad := ev("req-bad")
	bad.PromptTokens = -1
	l.Record(ev("req-a"))
	l.Record(bad)
	l.Record(ev("req-b"))
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := stored(t, st); n != 2 {
		t.Errorf("store holds %d events, want the 2 valid ones", n)
	}
	if out := logs.String(); !strings.Contains(out, "rejected") || !strings.Contains(out, "req-bad") {
		t.Errorf("the rejected event was not logged with its request id:\n%s", out)
	}
}

func TestLedgerCloseGivesUpLoudlyWhenContextEnds(t *testing.T) {
	st := &flakyStore{Store: openStore(t)}
	st.fail.Store(1 << 40)
	log, logs := testLogger()
	l := NewLedger(st, LedgerOptions{}, log)
	l.Record(ev("req-stuck"))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	if err := l.Close(context.Background()); err == nil || !strings.Contains(err.Error(), "1 events could not be written") {
		t.Fatalf("Close after giving up = %v, want the count of lost events", err)
	}
	if out := logs.String(); !strings.Contains(out, "could not be written") || !strings.Contains(out, "req-stuck") {
		t.Errorf("unwritten events were not logged by request id:\n%s", out)
	}
}

func TestFlushHonoursContext(t *testing.T) {
	st := &flakyStore{Store: openStore(t), gate: make(chan struct{})}
	l := NewLedger(st, LedgerOptions{BatchSize: 1}, nil)
	defer func() {
		close(st.gate)
		_ = l.Close(context.Background())
	}()
	l.Record(ev("slow"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush with a stuck store = %v, want DeadlineExceeded", err)
	}
}
