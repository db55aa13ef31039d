package usage

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" for the raw connections below

	"github.com/sluicehq/sluice/host/internal/testenv"
	"github.com/sluicehq/sluice/host/store"
)

// db is a real database for the ledger tests: the SQLite file or a schema of
// its own on the test PostgreSQL server.
type db struct {
	name string
	st   store.Store
	raw  *sql.DB // the same database through the bare driver
}

func sqliteDB(t testing.TB) db {
	path := filepath.Join(t.TempDir(), "sluice.db")
	st, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return db{name: "sqlite", st: st, raw: rawOpen(t, "sqlite", path)}
}

// postgresDB opens a store in a new schema, dropped when the test ends, so
// that packages testing in parallel against one server never meet.
func postgresDB(t testing.TB) db {
	dsn := testenv.PostgresSchema(t)
	st, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return db{name: "postgres", st: st, raw: rawOpen(t, "pgx", dsn)}
}

func rawOpen(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	d, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

var dbs = []struct {
	name string
	open func(testing.TB) db
}{{"sqlite", sqliteDB}, {"postgres", postgresDB}}

func eachDB(t *testing.T, test func(t *testing.T, d db)) {
	for _, d := range dbs {
		t.Run(d.name, func(t *testing.T) { test(t, d.open(t)) })
	}
}

// TestLedgerCloseUnderLoadWritesEveryRecordedEvent is the SIGTERM path:
// writers keep recording while Close runs and after it returns; every
// Record call that returned must be in the store, exactly once.
func TestLedgerCloseUnderLoadWritesEveryRecordedEvent(t *testing.T) {
	eachDB(t, func(t *testing.T, d db) {
		l := NewLedger(d.st, LedgerOptions{BatchSize: 64, QueueSize: 256}, nil)
		var (
			recorded atomic.Int64
			next     atomic.Int64
			stop     = make(chan struct{})
			wg       sync.WaitGroup
		)
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					l.Record(ev(fmt.Sprintf("req-%d", next.Add(1))))
					recorded.Add(1)
				}
			})
		}
		time.Sleep(150 * time.Millisecond)
		if err := l.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		atClose := recorded.Load()
		time.Sleep(20 * time.Millisecond) // a few synchronous writes after Close
		close(stop)
		wg.Wait()

		n, _ := stored(t, d.st)
		if n != recorded.Load() {
			t.Errorf("store holds %d events, %d were recorded (%d before Close returned)", n, recorded.Load(), atClose)
		}
		if s := l.Stats(); s.Lost != 0 || s.Pending != 0 || s.Written != n {
			t.Errorf("Stats = %+v, want nothing lost or pending and %d written", s, n)
		}
		if atClose < 100 {
			t.Errorf("only %d events recorded before Close: the load did not run", atClose)
		}
	})
}

// TestLedgerSurvivesADatabaseOutage takes the ledger's table away for a
// while on the real database: writes fail, the events wait in memory, and
// all of them are written once the table is back.
func TestLedgerSurvivesADatabaseOutage(t *testing.T) {
	eachDB(t, func(t *testing.T, d db) {
		l := NewLedger(d.st, LedgerOptions{BatchSize: 8, QueueSize: 16, FlushInterval: time.Millisecond}, nil)
		defer l.Close(context.Background())
		l.Record(ev("before"))
		if err := l.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := d.raw.Exec(`ALTER TABLE usage_events RENAME TO usage_events_away`); err != nil {
			t.Fatal(err)
		}
		const during = 40 // more than the queue holds: Record must block, not drop
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range during {
				l.Record(ev(fmt.Sprintf("during-%d", i)))
			}
		}()
		deadline := time.Now().Add(10 * time.Second)
		// Record blocks once the queue is full, which can come before the
		// first failed write is retried: wait for both.
		for s := l.Stats(); (s.Blocked == 0 || s.Retries == 0) && time.Now().Before(deadline); s = l.Stats() {
			time.Sleep(5 * time.Millisecond)
		}
		if s := l.Stats(); s.Retries == 0 || s.Blocked == 0 {
			t.Errorf("during the outage Stats = %+v: want failed writes retried and Record blocked", s)
		}
		if _, err := d.raw.Exec(`ALTER TABLE usage_events_away RENAME TO usage_events`); err != nil {
			t.Fatal(err)
		}
		<-done
		if err := l.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n, _ := stored(t, d.st); n != during+1 {
			t.Errorf("store holds %d events after the outage, want %d", n, during+1)
		}
		if s := l.Stats(); s.Lost != 0 {
			t.Errorf("Stats = %+v, want nothing lost", s)
		}
	})
}

// BenchmarkLedger measures the ledger's sustained throughput into each
// database with the default options: events recorded from 8 goroutines
// until all are in the store.
func BenchmarkLedger(b *testing.B) {
	for _, db := range dbs {
		b.Run(db.name, func(b *testing.B) {
			d := db.open(b)
			l := NewLedger(d.st, LedgerOptions{}, nil)
			var next atomic.Int64
			start := time.Now()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l.Record(ev(fmt.Sprintf("%s-%d", d.name, next.Add(1))))
				}
			})
			if err := l.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(next.Load())/time.Since(start).Seconds(), "events/s")
		})
	}
}
