package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnreachable wraps the error of a store that could not be reached.
var ErrUnreachable = errors.New("store unreachable")

// unreachable reports whether err says the server could not be reached at
// all (refused, reset, timed out, name not resolved), as opposed to a
// server that answered and refused (a wrong password, a missing database):
// only the first may pass with time.
func unreachable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return false
	}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ce) ||
		errors.Is(err, context.DeadlineExceeded)
}

// OpenPostgresDeferred is OpenPostgres for a server that may be down: when
// PostgreSQL cannot be reached (and only then), it returns a store at once,
// with an error wrapping ErrUnreachable for the caller to log. Each call on
// that store first checks and migrates the database, and fails until it
// can; once it has, the store is an ordinary one. A replica so started
// serves what needs no store (keys it confirmed are not among them: it has
// none) and spools its ledger until the database is back.
func OpenPostgresDeferred(ctx context.Context, dsn string) (Store, error) {
	st, err := OpenPostgres(ctx, dsn)
	if err == nil || !unreachable(err) {
		return st, err
	}
	db, where, perr := openPostgresDB(dsn)
	if perr != nil {
		return nil, perr
	}
	p := &pendingStore{db: db, where: where}
	return p, fmt.Errorf("%w: %w", ErrUnreachable, err)
}

// pendingStore is a PostgreSQL store that was unreachable when opened.
type pendingStore struct {
	db    *sql.DB
	where string

	ready atomic.Pointer[sqlStore] // set once the database was checked and migrated
	mu    sync.Mutex               // held by the one attempt in progress
	last  time.Time                // the last attempt, to space them out
}

// store returns the ready store. Until there is one, one call at a time
// (at most once a second, for at most pendingAttempt) tries to reach and
// migrate the database; the others fail at once rather than wait.
func (p *pendingStore) store(ctx context.Context) (Store, error) {
	if st := p.ready.Load(); st != nil {
		return st, nil
	}
	if !p.mu.TryLock() {
		return nil, fmt.Errorf("postgres %s: %w", p.where, ErrUnreachable)
	}
	defer p.mu.Unlock()
	if st := p.ready.Load(); st != nil {
		return st, nil
	}
	if time.Since(p.last) < time.Second {
		return nil, fmt.Errorf("postgres %s: %w", p.where, ErrUnreachable)
	}
	p.last = time.Now()
	ctx, cancel := context.WithTimeout(ctx, pendingAttempt)
	defer cancel()
	if err := p.db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("postgres %s: %w: %w", p.where, ErrUnreachable, err)
	}
	if err := migrate(ctx, p.db, postgresDialect); err != nil {
		return nil, fmt.Errorf("postgres %s: %w", p.where, err)
	}
	st := &sqlStore{write: p.db, read: p.db, dialect: postgresDialect}
	p.ready.Store(st)
	return st, nil
}

// pendingAttempt bounds one attempt to reach a store that was unreachable.
const pendingAttempt = 5 * time.Second

func (p *pendingStore) CreateClient(ctx context.Context, c Client) error {
	st, err := p.store(ctx)
	if err != nil {
		return err
	}
	return st.CreateClient(ctx, c)
}

func (p *pendingStore) GetClient(ctx context.Context, id string) (Client, error) {
	st, err := p.store(ctx)
	if err != nil {
		return Client{}, err
	}
	return st.GetClient(ctx, id)
}

func (p *pendingStore) ListClients(ctx context.Context) ([]Client, error) {
	st, err := p.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.ListClients(ctx)
}

func (p *pendingStore) CreateKey(ctx context.Context, k Key) error {
	st, err := p.store(ctx)
	if err != nil {
		return err
	}
	return st.CreateKey(ctx, k)
}

func (p *pendingStore) KeyByHash(ctx context.Context, hash [32]byte) (Key, Client, error) {
	st, err := p.store(ctx)
	if err != nil {
		return Key{}, Client{}, err
	}
	return st.KeyByHash(ctx, hash)
}

func (p *pendingStore) RevokeKey(ctx context.Context, id string, at time.Time) error {
	st, err := p.store(ctx)
	if err != nil {
		return err
	}
	return st.RevokeKey(ctx, id, at)
}

func (p *pendingStore) ListKeys(ctx context.Context, clientID string) ([]Key, error) {
	st, err := p.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.ListKeys(ctx, clientID)
}

func (p *pendingStore) InsertUsage(ctx context.Context, events []UsageEvent) error {
	st, err := p.store(ctx)
	if err != nil {
		return err
	}
	return st.InsertUsage(ctx, events)
}

func (p *pendingStore) Report(ctx context.Context, q ReportQuery) ([]ReportRow, error) {
	st, err := p.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.Report(ctx, q)
}

func (p *pendingStore) UsageSince(ctx context.Context, since time.Time) ([]UsageTotal, error) {
	st, err := p.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.UsageSince(ctx, since)
}

func (p *pendingStore) UsageWindows(ctx context.Context, since ...time.Time) ([]ScopeUsage, error) {
	st, err := p.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.UsageWindows(ctx, since...)
}

func (p *pendingStore) UsageSeries(ctx context.Context, q SeriesQuery) ([]SeriesPoint, error) {
	st, err := p.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.UsageSeries(ctx, q)
}

func (p *pendingStore) DenialCounts(ctx context.Context, from, to time.Time) ([]DenialCount, error) {
	st, err := p.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.DenialCounts(ctx, from, to)
}

func (p *pendingStore) Close() error { return p.db.Close() }

func (p *pendingStore) UpdateClient(ctx context.Context, c Client) error {
	st, err := p.store(ctx)
	if err != nil {
		return err
	}
	return st.UpdateClient(ctx, c)
}

func (p *pendingStore) DisableClient(ctx context.Context, id string, at time.Time) error {
	st, err := p.store(ctx)
	if err != nil {
		return err
	}
	return st.DisableClient(ctx, id, at)
}

func (p *pendingStore) DeleteClient(ctx context.Context, id string, at time.Time) error {
	st, err := p.store(ctx)
	if err != nil {
		return err
	}
	return st.DeleteClient(ctx, id, at)
}

func (p *pendingStore) ExpireKey(ctx context.Context, id string, at time.Time) error {
	st, err := p.store(ctx)
	if err != nil {
		return err
	}
	return st.ExpireKey(ctx, id, at)
}

func (p *pendingStore) InsertAudit(ctx context.Context, ev AuditEvent) error {
	st, err := p.store(ctx)
	if err != nil {
		return err
	}
	return st.InsertAudit(ctx, ev)
}

func (p *pendingStore) Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	st, err := p.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.Audit(ctx, q)
}
