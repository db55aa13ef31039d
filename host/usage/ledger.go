// Package usage records usage events off the request path and formats usage
// reports.
//
// # What the ledger guarantees
//
// Record hands an event to a bounded queue and returns; one goroutine writes
// the queue to the store in batches (BatchSize events, or whatever arrived
// within FlushInterval of a batch's first event), so a request never waits
// for the database. Nothing is dropped to keep up:
//
//   - A failed write (database restarting, network cut) is retried with
//     exponential backoff (50 ms doubling to 5 s) until it succeeds; the
//     batch and everything recorded meanwhile stay in memory. A retry cannot
//     count a request twice: the store skips request ids it already holds.
//   - When the queue is full, Record blocks until there is room. The memory
//     held is bounded (QueueSize + BatchSize events), no event is lost, and
//     the gateway slows down instead of serving requests it cannot bill.
//     LedgerStats.Blocked counts the Record calls that had to wait, so an
//     operator can see it happen.
//   - Close (on SIGTERM, after the server stops accepting and drains its
//     requests) writes every event recorded before it returns; an event
//     recorded after Close is written synchronously. Only if Close's context
//     ends while the database is still failing are events given up, each
//     logged at error level by request id and counted in LedgerStats.Lost.
//
// What SIGKILL (or a crash, or power loss) can lose is what is in memory and
// not yet durable. With a spool (LedgerOptions.SpoolDir, what the server
// uses), a batch is durable once it is appended and fsynced to the spool,
// which the store writer then reads: the loss is the events recorded in the
// last FlushInterval (200 ms by default), whether or not the database is
// up, and the next start writes what the spool holds. Without one, it is
// the same in normal operation, plus the duration of one write, at most
// BatchSize + QueueSize events (256 + 8192 by default); and while the
// database is failing, every event recorded since the first failed write,
// with the same bound.
package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/host/store"
)

// LedgerOptions tunes a Ledger. Zero fields take their defaults.
type LedgerOptions struct {
	// BatchSize is the most events written in one transaction. Default 256.
	BatchSize int
	// FlushInterval is how long the first event of a batch may wait for
	// others before the batch is written. Default 200ms.
	FlushInterval time.Duration
	// QueueSize is how many events may wait for the writer before Record
	// blocks. Default 8192.
	QueueSize int
	// SpoolDir, when set, keeps every batch in a local file (SpoolFile,
	// fsynced) before it is written to the store, and writes the store from
	// there: an outage of the store fills the disk instead of memory, and a
	// process killed during it loses only the batch not yet spooled (at most
	// FlushInterval of events); the next start writes what it left. Open the
	// ledger with OpenLedger.
	SpoolDir string
}

func (o LedgerOptions) withDefaults() LedgerOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	return o
}

// Retry backoff for failed writes. Variables so that tests can shorten them.
var (
	retryMin = 50 * time.Millisecond
	retryMax = 5 * time.Second
)

// writeTimeout bounds one write attempt, so that a connection that hangs
// (a network cut that no error reports) is retried rather than waited on
// forever.
const writeTimeout = 30 * time.Second

// syncAttempts bounds the retries of a write made by Record after Close, which
// runs on the caller's goroutine and so cannot wait forever.
const syncAttempts = 5

// item is an event, or a flush marker when done is set. Markers travel the
// same queue as events, so a marker is reached only after every event
// recorded before it.
type item struct {
	ev   store.UsageEvent
	done chan struct{}
}

// Ledger batches usage events and writes them to a store on one background
// goroutine, so that a request never waits for the database. It never drops
// an event to keep up: a full queue blocks Record, and a failed write is
// retried until it succeeds or Close's context ends (see the package doc).
// The one exception is an event the store refuses as invalid
// (store.ErrInvalid), which no retry can fix: it is logged at error level
// with its request id, and the rest of its batch is written.
type Ledger struct {
	st   store.Store
	opts LedgerOptions
	log  *slog.Logger

	mu     sync.RWMutex // guards closed and the send side of queue
	closed bool
	queue  chan item

	pending atomic.Int64 // recorded and not yet written
	closing atomic.Bool  // Close was called; closed may not be set yet
	lost    atomic.Int64 // events given up on, each logged by request id
	written atomic.Int64
	retries atomic.Int64
	blocked atomic.Int64

	closeOnce   sync.Once
	abandon     chan struct{} // closed when Close's context ends: stop retrying
	abandonOnce sync.Once
	stopped     chan struct{} // closed when the writer has exited

	// With a spool, run appends batches to it and storeLoop writes them to
	// the store; more wakes storeLoop, collected tells it run is done, and
	// waiters are Flush calls waiting for a count of events to be stored.
	spool     *spool
	more      chan spooled
	collected chan struct{}
	waitMu    sync.Mutex
	waiters   []waiter
}

// spooled is a batch run appended to the spool at off, n bytes long: the
// store writer takes it from memory when it is the next to store.
type spooled struct {
	batch  []store.UsageEvent
	off, n int64
}

type waiter struct {
	stored int64
	done   chan struct{}
}

// NewLedger starts a ledger writing to st, without a spool (opts.SpoolDir
// is ignored). Close it to flush and stop.
func NewLedger(st store.Store, opts LedgerOptions, log *slog.Logger) *Ledger {
	opts.SpoolDir = ""
	l, _ := OpenLedger(st, opts, log)
	return l
}

// OpenLedger starts a ledger writing to st, through a spool in
// opts.SpoolDir when it is set; the events a previous process left in the
// spool are written first. Close it to flush and stop.
func OpenLedger(st store.Store, opts LedgerOptions, log *slog.Logger) (*Ledger, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts = opts.withDefaults()
	l := &Ledger{
		st:      st,
		opts:    opts,
		log:     log,
		queue:   make(chan item, opts.QueueSize),
		abandon: make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if opts.SpoolDir != "" {
		sp, left, err := openSpool(opts.SpoolDir)
		if err != nil {
			return nil, err
		}
		if left > 0 {
			log.Warn("usage events left in the spool by the last run; writing them", "events", left, "spool", sp.path)
		}
		l.spool, l.more, l.collected = sp, make(chan spooled, 1), make(chan struct{})
		l.pending.Add(int64(left))
		go l.storeLoop()
	}
	go l.run()
	return l, nil
}

// Record queues an event. A zero Time is set to now. It blocks while the
// queue is full rather than lose the event. After Close it writes the event
// synchronously.
func (l *Ledger) Record(ev store.UsageEvent) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	l.mu.RLock()
	if !l.closed {
		l.pending.Add(1)
		select {
		case l.queue <- item{ev: ev}:
		default:
			l.blocked.Add(1)
			l.queue <- item{ev: ev}
		}
		l.mu.RUnlock()
		return
	}
	l.mu.RUnlock()

	l.pending.Add(1)
	defer l.pending.Add(-1)
	batch := []store.UsageEvent{ev}
	if err := l.write(batch, syncAttempts); err != nil {
		l.logLost(batch, err)
	}
}

// Flush returns once every event recorded before the call is in the store,
// or when ctx ends.
func (l *Ledger) Flush(ctx context.Context) error {
	// Once Close has begun, its drain covers everything recorded so far.
	// Checking first keeps Flush off the lock that Close may be waiting for.
	if l.closing.Load() {
		return l.waitStopped(ctx)
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return l.waitStopped(ctx)
	}
	done := make(chan struct{})
	select {
	case l.queue <- item{done: done}:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Ledger) waitStopped(ctx context.Context) error {
	select {
	case <-l.stopped:
		return l.lostErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Ledger) lostErr() error {
	if n := l.lost.Load(); n > 0 {
		return fmt.Errorf("usage ledger: %d events could not be written (their request ids are logged)", n)
	}
	return nil
}

// Close writes every queued event and stops the writer. If ctx ends first,
// the writer stops retrying failed writes, logs the request ids it could not
// write, and Close returns ctx's error; later calls report how many events
// were lost. Close is idempotent.
func (l *Ledger) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		// Taking the lock may wait for a Record blocked on a full queue,
		// so it happens off the caller's goroutine to honour ctx.
		go func() {
			l.mu.Lock()
			l.closed = true
			close(l.queue)
			l.mu.Unlock()
		}()
	})
	select {
	case <-l.stopped:
		return l.lostErr()
	case <-ctx.Done():
		l.abandonOnce.Do(func() { close(l.abandon) })
		return ctx.Err()
	}
}

// QueueDepth returns how many recorded events are not yet in the store.
func (l *Ledger) QueueDepth() int { return int(l.pending.Load()) }

// LedgerStats are a ledger's counters since it started, for metrics.
type LedgerStats struct {
	Pending int64 // recorded, not yet in the store
	Written int64 // written to the store
	Retries int64 // write attempts that failed and were retried
	Blocked int64 // Record calls that waited because the queue was full
	Lost    int64 // given up on when Close's context ended; each is logged
}

// Stats returns the ledger's counters.
func (l *Ledger) Stats() LedgerStats {
	return LedgerStats{
		Pending: l.pending.Load(),
		Written: l.written.Load(),
		Retries: l.retries.Load(),
		Blocked: l.blocked.Load(),
		Lost:    l.lost.Load(),
	}
}

// run is the writer goroutine; with a spool, it collects batches into the
// spool and storeLoop writes them.
func (l *Ledger) run() {
	if l.spool != nil {
		defer close(l.collected)
	} else {
		defer close(l.stopped)
	}
	batch := make([]store.UsageEvent, 0, l.opts.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()

	flush := func() {
		if len(batch) == 0 {
			return
		}
		if l.spool != nil && l.spoolBatch(batch) {
			batch = batch[:0]
			timer.Stop()
			return
		}
		if err := l.write(batch, 0); err != nil {
			l.logLost(batch, err)
		}
		l.pending.Add(-int64(len(batch)))
		batch = batch[:0]
		timer.Stop()
	}

	for {
		var (
			it item
			ok bool
		)
		if len(batch) == 0 {
			it, ok = <-l.queue
		} else {
			select {
			case it, ok = <-l.queue:
			case <-timer.C:
				flush()
				continue
			}
		}
		if !ok {
			flush()
			return
		}
		if it.done != nil {
			flush()
			l.whenStored(it.done)
			continue
		}
		batch = append(batch, it.ev)
		if len(batch) == 1 {
			timer.Reset(l.opts.FlushInterval)
		}
		if len(batch) >= l.opts.BatchSize {
			flush()
		}
	}
}

// spoolBatch appends batch to the spool for storeLoop. When the spool
// cannot take it (a full or failing disk), it says so and the batch is
// written to the store directly.
func (l *Ledger) spoolBatch(batch []store.UsageEvent) bool {
	off, n, err := l.spool.append(batch)
	if err != nil {
		l.log.Error("usage spool write failed; writing the batch to the store directly", "events", len(batch), "err", err)
		return false
	}
	select {
	case l.more <- spooled{batch: slices.Clone(batch), off: off, n: n}:
	default:
		// The writer has a batch waiting: it reads this one back.
	}
	return true
}

// whenStored closes done once every event spooled so far is in the store;
// without a spool, at once (run writes synchronously).
func (l *Ledger) whenStored(done chan struct{}) {
	if l.spool == nil {
		close(done)
		return
	}
	appended, stored := l.spool.counts()
	if stored >= appended {
		close(done)
		return
	}
	l.waitMu.Lock()
	l.waiters = append(l.waiters, waiter{stored: appended, done: done})
	l.waitMu.Unlock()
	// storeLoop may have stored them since counts was read.
	l.release()
}

// release closes the waiters whose events are all stored.
func (l *Ledger) release() {
	_, stored := l.spool.counts()
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	kept := l.waiters[:0]
	for _, w := range l.waiters {
		if w.stored <= stored {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	l.waiters = kept
}

// storeLoop writes the spool to the store in order, batch by batch, until
// run has finished and the spool is empty, or Close gives up: then what is
// left stays in the spool for the next start.
func (l *Ledger) storeLoop() {
	defer close(l.stopped)
	defer l.spool.close()
	for {
		batch, used, lines, err := l.spool.next(l.opts.BatchSize)
		if err != nil {
			l.log.Error("usage spool read failed", "err", err)
		}
		if lines == 0 {
			select {
			case sp := <-l.more:
				// Caught up: the batch just spooled is the next to store;
				// take it from memory rather than decode it back.
				if l.spool.at(sp.off) && !l.store(sp.batch, sp.n, len(sp.batch)) {
					return
				}
				continue
			case <-l.collected:
				// run is done; one last look, as it may have appended
				// after the read above.
				if batch, _, lines, _ = l.spool.next(1); lines == 0 {
					l.release()
					return
				}
				continue
			case <-l.abandon:
				return
			}
		}
		if !l.store(batch, used, lines) {
			return
		}
	}
}

// store writes batch, the next used bytes (lines lines) of the spool, to the
// store and marks them consumed. It reports false when the writer must stop
// (Close gave up): what is left stays in the spool.
func (l *Ledger) store(batch []store.UsageEvent, used int64, lines int) bool {
	if len(batch) > 0 {
		if err := l.write(batch, 0); err != nil {
			appended, stored := l.spool.counts()
			l.log.Error("usage events left in the spool for the next start", "events", appended-stored, "spool", l.spool.path, "err", err)
			return false
		}
	}
	if _, err := l.spool.consumed(used, lines); err != nil {
		l.log.Error("usage spool could not be emptied", "err", err)
	}
	l.pending.Add(-int64(len(batch)))
	l.release()
	return true
}

// write inserts batch, retrying with exponential backoff. maxAttempts 0
// retries until success or until Close gives up. Events the store rejects as
// invalid cannot succeed on retry: they are split out and logged, and the
// rest of the batch is still written.
func (l *Ledger) write(batch []store.UsageEvent, maxAttempts int) error {
	backoff := retryMin
	for attempt := 1; ; attempt++ {
		err := l.insert(batch)
		if err == nil {
			l.written.Add(int64(len(batch)))
			return nil
		}
		if errors.Is(err, store.ErrInvalid) {
			return l.writeEach(batch, maxAttempts)
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			return err
		}
		l.retries.Add(1)
		l.log.Warn("usage ledger write failed, retrying",
			"events", len(batch), "first_request_id", batch[0].RequestID,
			"last_request_id", batch[len(batch)-1].RequestID,
			"attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-l.abandon:
			return errors.Join(err, errors.New("ledger closed before the write succeeded"))
		}
		backoff = min(2*backoff, retryMax)
	}
}

// writeEach writes events one by one after a batch was refused as invalid,
// so that one malformed event cannot hold back the others.
func (l *Ledger) writeEach(batch []store.UsageEvent, maxAttempts int) error {
	var errs []error
	for _, ev := range batch {
		err := l.insert([]store.UsageEvent{ev})
		switch {
		case err == nil:
			l.written.Add(1)
		case errors.Is(err, store.ErrInvalid):
			// The error names the request id and the field, no contents.
			l.log.Error("usage event rejected by the store", "request_id", ev.RequestID, "err", err)
		default:
			if err := l.write([]store.UsageEvent{ev}, maxAttempts); err != nil {
				l.logLost([]store.UsageEvent{ev}, err)
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

func (l *Ledger) insert(batch []store.UsageEvent) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return l.st.InsertUsage(ctx, batch)
}

func (l *Ledger) logLost(batch []store.UsageEvent, err error) {
	l.lost.Add(int64(len(batch)))
	ids := make([]string, len(batch))
	for i, ev := range batch {
		ids[i] = ev.RequestID
	}
	l.log.Error("usage events could not be written", "events", len(batch), "request_ids", ids, "err", err)
}
