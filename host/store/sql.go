package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sluicehq/sluice/host/tags"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// constraint is the kind of integrity violation a driver error reports.
type constraint int

const (
	constraintNone constraint = iota
	constraintUnique
	constraintForeignKey
)

// sqlStore implements Store with SQL that SQLite and PostgreSQL both accept
// ($n placeholders, CAST to BIGINT, ON CONFLICT DO NOTHING). Only opening,
// the schema's few type names and error classification are per database.
type sqlStore struct {
	// write is used for every statement that changes data. For SQLite it
	// holds one connection: the database admits one writer at a time, and
	// queueing writers in Go is cheaper and fairer than busy_timeout polling.
	// For PostgreSQL it is the same pool as read.
	write   *sql.DB
	read    *sql.DB
	dialect dialect
}

var _ Store = (*sqlStore)(nil)

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func (s *sqlStore) CreateClient(ctx context.Context, c Client) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	if err := validateClient(c); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	labels := "{}"
	if len(c.Labels) > 0 {
		b, err := json.Marshal(c.Labels)
		if err != nil {
			return fmt.Errorf("create client %q: encode labels: %w", c.ID, err)
		}
		labels = string(b)
	}
	_, err := s.write.ExecContext(ctx,
		`INSERT INTO clients (id, department, tier, labels, created_at) VALUES ($1, $2, $3, $4, $5)`,
		c.ID, c.Department, c.Tier, labels, nanos(c.CreatedAt))
	if err != nil {
		if s.dialect.classify(err) == constraintUnique {
			return fmt.Errorf("create client %q: %w", c.ID, ErrExists)
		}
		return fmt.Errorf("create client %q: %w", c.ID, err)
	}
	return nil
}

const clientColumns = `id, department, tier, labels, created_at, disabled_at`

// scanner is the part of *sql.Row and *sql.Rows that scan functions need.
type scanner interface{ Scan(dest ...any) error }

func scanClient(sc scanner, extra ...any) (Client, error) {
	var (
		c        Client
		labels   string
		created  int64
		disabled sql.NullInt64
	)
	dest := append([]any{&c.ID, &c.Department, &c.Tier, &labels, &created, &disabled}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return Client{}, err
	}
	if err := decodeLabels(labels, &c.Labels); err != nil {
		return Client{}, fmt.Errorf("client %q: %w", c.ID, err)
	}
	c.CreatedAt = fromNanos(created)
	if disabled.Valid {
		c.DisabledAt = fromNanos(disabled.Int64)
	}
	return c, nil
}

func decodeLabels(s string, into *map[string]string) error {
	if s == "" || s == "{}" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), into); err != nil {
		return fmt.Errorf("decode labels: %w", err)
	}
	return nil
}

func (s *sqlStore) GetClient(ctx context.Context, id string) (Client, error) {
	if err := checkID("client id", id); err != nil {
		return Client{}, fmt.Errorf("get client: %w", err)
	}
	row := s.read.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = $1 AND deleted_at IS NULL`, id)
	c, err := scanClient(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Client{}, fmt.Errorf("client %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Client{}, fmt.Errorf("get client %q: %w", id, err)
	}
	return c, nil
}

func (s *sqlStore) ListClients(ctx context.Context) ([]Client, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+clientColumns+` FROM clients WHERE deleted_at IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	defer rows.Close()
	var out []Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("list clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	// Sorted here because collations differ between databases (see Report).
	slices.SortFunc(out, func(a, b Client) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *sqlStore) CreateKey(ctx context.Context, k Key) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	if err := validateKey(k); err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	var revoked, expires any // NULL while active, NULL for never
	if !k.RevokedAt.IsZero() {
		revoked = nanos(k.RevokedAt)
	}
	if !k.ExpiresAt.IsZero() {
		expires = nanos(k.ExpiresAt)
	}
	scope, err := json.Marshal(k.Scope)
	if err != nil {
		return fmt.Errorf("create key %q: %w", k.ID, err)
	}
	_, err = s.write.ExecContext(ctx,
		`INSERT INTO api_keys (id, client_id, prefix, hash, created_at, revoked_at, name, expires_at, scope, created_by, rotated_from)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.ID, k.ClientID, k.Prefix, hex.EncodeToString(k.Hash[:]), nanos(k.CreatedAt), revoked,
		k.Name, expires, string(scope), k.CreatedBy, k.RotatedFrom)
	if err != nil {
		switch s.dialect.classify(err) {
		case constraintUnique:
			return fmt.Errorf("create key %q: a key with this id or hash %w", k.ID, ErrExists)
		case constraintForeignKey:
			return fmt.Errorf("create key %q: client %q: %w", k.ID, k.ClientID, ErrNotFound)
		}
		return fmt.Errorf("create key %q: %w", k.ID, err)
	}
	return nil
}

const keyColumns = `k.id, k.client_id, k.prefix, k.hash, k.created_at, k.revoked_at, k.name, k.expires_at, k.scope, k.created_by, k.rotated_from`

func scanKey(sc scanner, extra ...any) (Key, error) {
	var (
		k                Key
		hash, scope      string
		created          int64
		revoked, expires sql.NullInt64
	)
	dest := append([]any{&k.ID, &k.ClientID, &k.Prefix, &hash, &created, &revoked,
		&k.Name, &expires, &scope, &k.CreatedBy, &k.RotatedFrom}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return Key{}, err
	}
	if n, err := hex.Decode(k.Hash[:], []byte(hash)); err != nil || n != len(k.Hash) {
		return Key{}, fmt.Errorf("key %q: stored hash is not 32 bytes of hex", k.ID)
	}
	if err := json.Unmarshal([]byte(scope), &k.Scope); err != nil {
		return Key{}, fmt.Errorf("key %q: stored scope is not valid: %w", k.ID, err)
	}
	k.CreatedAt = fromNanos(created)
	if revoked.Valid {
		k.RevokedAt = fromNanos(revoked.Int64)
	}
	if expires.Valid {
		k.ExpiresAt = fromNanos(expires.Int64)
	}
	return k, nil
}

func (s *sqlStore) KeyByHash(ctx context.Context, hash [32]byte) (Key, Client, error) {
	row := s.read.QueryRowContext(ctx,
		`SELECT `+keyColumns+`, c.id, c.department, c.tier, c.labels, c.created_at, c.disabled_at
		 FROM api_keys k JOIN clients c ON c.id = k.client_id
		 WHERE k.hash = $1 AND c.deleted_at IS NULL`, hex.EncodeToString(hash[:]))
	var (
		c        Client
		labels   string
		created  int64
		disabled sql.NullInt64
	)
	k, err := scanKey(row, &c.ID, &c.Department, &c.Tier, &labels, &created, &disabled)
	if errors.Is(err, sql.ErrNoRows) {
		// The hash is not logged or echoed: it identifies a secret.
		return Key{}, Client{}, fmt.Errorf("key by hash: %w", ErrNotFound)
	}
	if err != nil {
		return Key{}, Client{}, fmt.Errorf("key by hash: %w", err)
	}
	if err := decodeLabels(labels, &c.Labels); err != nil {
		return Key{}, Client{}, fmt.Errorf("key by hash: client %q: %w", c.ID, err)
	}
	c.CreatedAt = fromNanos(created)
	if disabled.Valid {
		c.DisabledAt = fromNanos(disabled.Int64)
	}
	return k, c, nil
}

func (s *sqlStore) UpdateClient(ctx context.Context, c Client) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now() // validateClient wants one; it is not written
	}
	if err := validateClient(c); err != nil {
		return fmt.Errorf("update client: %w", err)
	}
	labels := "{}"
	if len(c.Labels) > 0 {
		b, err := json.Marshal(c.Labels)
		if err != nil {
			return fmt.Errorf("update client %q: encode labels: %w", c.ID, err)
		}
		labels = string(b)
	}
	return s.changeClient(ctx, "update client", c.ID,
		`UPDATE clients SET department = $2, tier = $3, labels = $4 WHERE id = $1 AND deleted_at IS NULL`, c.Department, c.Tier, labels)
}

func (s *sqlStore) DisableClient(ctx context.Context, id string, at time.Time) error {
	var disabled any // NULL enables
	if !at.IsZero() {
		if err := checkTime("disable time", at); err != nil {
			return fmt.Errorf("disable client %q: %w", id, err)
		}
		disabled = nanos(at)
	}
	return s.changeClient(ctx, "disable client", id, `UPDATE clients SET disabled_at = $2 WHERE id = $1 AND deleted_at IS NULL`, disabled)
}

func (s *sqlStore) DeleteClient(ctx context.Context, id string, at time.Time) error {
	if err := checkTime("deletion time", at); err != nil {
		return fmt.Errorf("delete client %q: %w", id, err)
	}
	return s.changeClient(ctx, "delete client", id, `UPDATE clients SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL`, nanos(at))
}

// changeClient runs an update of one live client, ErrNotFound when there is
// none.
func (s *sqlStore) changeClient(ctx context.Context, op, id, query string, args ...any) error {
	if err := checkID("client id", id); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	res, err := s.write.ExecContext(ctx, query, append([]any{id}, args...)...)
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s %q: %w", op, id, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) RevokeKey(ctx context.Context, id string, at time.Time) error {
	if err := checkID("key id", id); err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	if at.IsZero() {
		return fmt.Errorf("revoke key %q: %w", id, invalid("revocation time is zero"))
	}
	if err := checkTime("revocation time", at); err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	// The first revocation time wins, so the audit trail keeps when a key
	// really stopped working.
	res, err := s.write.ExecContext(ctx,
		`UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, nanos(at))
	if err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	if n > 0 {
		return nil
	}
	var one int
	err = s.write.QueryRowContext(ctx, `SELECT 1 FROM api_keys WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("revoke key %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	return nil
}

func (s *sqlStore) ExpireKey(ctx context.Context, id string, at time.Time) error {
	if err := checkID("key id", id); err != nil {
		return fmt.Errorf("expire key: %w", err)
	}
	if err := checkTime("expiry", at); err != nil {
		return fmt.Errorf("expire key %q: %w", id, err)
	}
	res, err := s.write.ExecContext(ctx,
		`UPDATE api_keys SET expires_at = $2 WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)`, id, nanos(at))
	if err != nil {
		return fmt.Errorf("expire key %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("expire key %q: %w", id, err)
	} else if n > 0 {
		return nil
	}
	var one int
	err = s.write.QueryRowContext(ctx, `SELECT 1 FROM api_keys WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("expire key %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("expire key %q: %w", id, err)
	}
	return nil
}

func (s *sqlStore) ListKeys(ctx context.Context, clientID string) ([]Key, error) {
	query := `SELECT ` + keyColumns + ` FROM api_keys k`
	var args []any
	if clientID != "" {
		query += ` WHERE k.client_id = $1`
		args = append(args, clientID)
	}
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	slices.SortFunc(out, func(a, b Key) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	if len(out) == 0 && clientID != "" {
		// Tell "no keys yet" from a mistyped client id.
		if _, err := s.GetClient(ctx, clientID); err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
	}
	return out, nil
}

// usageColumns is the number of values in one ledger row.
const usageColumns = 23

// maxInsertRows is the most rows one INSERT carries. 23 × 256 parameters
// are far below the limits of SQLite (32766) and PostgreSQL (65535).
const maxInsertRows = 256

// insertStatements[i] inserts 1<<i rows. A batch is cut into powers of two,
// up to the dialect's insertRows, so that a few statement texts serve every
// batch size and stay prepared.
var insertStatements = func() []string {
	var out []string
	for n := 1; n <= maxInsertRows; n *= 2 {
		var b strings.Builder
		b.WriteString(`INSERT INTO usage_events (
	occurred_at, request_id, client_id, department, key_id, model, endpoint, stream,
	prompt_tokens, completion_tokens, total_tokens, cost_nanos, latency_ms,
	status, code, findings, usage_source, tags, deployment, attempts, cache, saved_nanos, upstream_type
) VALUES `)
		for r := range n {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for c := range usageColumns {
				if c > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "$%d", r*usageColumns+c+1)
			}
			b.WriteByte(')')
		}
		b.WriteString(` ON CONFLICT (request_id) DO NOTHING`)
		out = append(out, b.String())
	}
	return out
}()

func (s *sqlStore) InsertUsage(ctx context.Context, events []UsageEvent) (err error) {
	if len(events) == 0 {
		return nil
	}
	// Validate the whole batch first so that a bad event fails it before
	// any row is written.
	for _, ev := range events {
		if err := validateUsage(ev); err != nil {
			return fmt.Errorf("insert usage: %w", err)
		}
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert usage: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// A statement that this batch runs more than once (SQLite's one-row
	// insert) is prepared on its second use. One run once goes through the
	// driver, which for PostgreSQL keeps it prepared per connection: an
	// explicit prepare would parse the large statement anew every batch.
	stmts := make([]*sql.Stmt, len(insertStatements))
	used := make([]bool, len(insertStatements))
	defer func() {
		for _, st := range stmts {
			if st != nil {
				_ = st.Close()
			}
		}
	}()
	maxShift := bits.Len(uint(s.dialect.insertRows)) - 1
	args := make([]any, 0, min(len(events), s.dialect.insertRows)*usageColumns)
	for rest := events; len(rest) > 0; {
		shift := min(bits.Len(uint(len(rest)))-1, maxShift)
		if used[shift] && stmts[shift] == nil {
			if stmts[shift], err = tx.PrepareContext(ctx, insertStatements[shift]); err != nil {
				return fmt.Errorf("insert usage: prepare: %w", err)
			}
		}
		used[shift] = true
		chunk := rest[:1<<shift]
		rest = rest[len(chunk):]
		args = args[:0]
		for _, ev := range chunk {
			source := ev.UsageSource
			if source == "" {
				source = UsageNone
			}
			args = append(args,
				nanos(ev.Time), ev.RequestID, ev.ClientID, ev.Department, ev.KeyID, ev.Model, ev.Endpoint, ev.Stream,
				ev.PromptTokens, ev.CompletionTokens, ev.TotalTokens, ev.CostNanos, ev.LatencyMS,
				ev.Status, ev.Code, ev.Findings, source, ev.Tags, ev.Deployment, ev.Attempts, ev.Cache, ev.SavedNanos, ev.UpstreamType)
		}
		if stmts[shift] != nil {
			_, err = stmts[shift].ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertStatements[shift], args...)
		}
		if err != nil {
			return fmt.Errorf("insert usage: %d events from request %q: %w", len(chunk), chunk[0].RequestID, err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("insert usage: commit %d events: %w", len(events), err)
	}
	return nil
}

// groupColumns maps ReportQuery.GroupBy to a column. Only these fixed names
// are ever spliced into SQL.
var groupColumns = map[string]string{
	GroupByDepartment:   "department",
	GroupByClient:       "client_id",
	GroupByModel:        "model",
	GroupByEndpoint:     "endpoint",
	GroupByDeployment:   "deployment",
	GroupByUpstreamType: "upstream_type",
	GroupByCache:        "cache",
}

// rangeNanos turns an optional [from, to) into bounds; a zero time leaves
// that side open.
func rangeNanos(from, to time.Time) (lo, hi int64, err error) {
	lo, hi = math.MinInt64, math.MaxInt64
	if !from.IsZero() {
		if err := checkTime("from", from); err != nil {
			return 0, 0, err
		}
		lo = nanos(from)
	}
	if !to.IsZero() {
		if err := checkTime("to", to); err != nil {
			return 0, 0, err
		}
		hi = nanos(to)
	}
	if lo > hi {
		return 0, 0, invalid("from %s is after to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return lo, hi, nil
}

// sums are a ReportRow's columns after Group. PostgreSQL's SUM of BIGINT
// is NUMERIC: the casts keep every column an integer on both databases.
const sums = `COUNT(*),
	CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT),
	CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT),
	CAST(COALESCE(SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM(saved_nanos), 0) AS BIGINT)`

// dest is where rows.Scan puts the columns of sums.
func (r *ReportRow) dest() []any {
	return []any{&r.Requests, &r.PromptTokens, &r.CompletionTokens, &r.TotalTokens, &r.CostNanos, &r.CacheHits, &r.SavedNanos}
}

// forAModel keeps the usage reports to requests of a client for a model;
// see Store.Report. A model lookup (GET /v1/models/{id}) names a model but
// asks nothing of it; rows without a client come from ledgers written
// before such requests were kept out of it.
const forAModel = `model <> '' AND endpoint <> '/v1/models/{id}' AND client_id <> ''`

func (s *sqlStore) Report(ctx context.Context, q ReportQuery) ([]ReportRow, error) {
	tagName, byTag := strings.CutPrefix(q.GroupBy, GroupByTag)
	col, ok := groupColumns[q.GroupBy]
	if byTag {
		col, ok = "tags", tags.Check(tagName, "x") == nil
	}
	if !ok {
		return nil, fmt.Errorf("report: %w", invalid("group by %q: want %s", q.GroupBy, GroupByNames))
	}
	lo, hi, err := rangeNanos(q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	where, args := `occurred_at >= $1 AND occurred_at < $2 AND `+forAModel, []any{lo, hi}
	if q.Tag != "" {
		name, value, _ := strings.Cut(q.Tag, "=")
		if err := tags.Check(name, value); err != nil {
			return nil, fmt.Errorf("report: tag filter: %w", invalid("%v", err))
		}
		// The tag's shape leaves only _ among LIKE's wildcards, escaped here.
		where += ` AND (',' || tags || ',') LIKE $3 ESCAPE '\'`
		args = append(args, "%,"+strings.ReplaceAll(name+"="+value, "_", `\_`)+",%")
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+col+`, `+sums+`
		FROM usage_events WHERE `+where+`
		GROUP BY `+col, args...)
	if err != nil {
		return nil, fmt.Errorf("report by %s: %w", q.GroupBy, err)
	}
	defer rows.Close()
	var out []ReportRow
	for rows.Next() {
		var r ReportRow
		if err := rows.Scan(append([]any{&r.Group}, r.dest()...)...); err != nil {
			return nil, fmt.Errorf("report by %s: %w", q.GroupBy, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report by %s: %w", q.GroupBy, err)
	}
	if byTag {
		out = byTagValue(out, tagName)
	}
	// Sorted here rather than with ORDER BY because collations differ
	// between databases; byte order is the same everywhere.
	slices.SortFunc(out, func(a, b ReportRow) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

func (s *sqlStore) UsageSince(ctx context.Context, since time.Time) ([]UsageTotal, error) {
	lo, _, err := rangeNanos(since, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("usage since: %w", err)
	}
	// MAX(department) picks one department if a client moved within the
	// window; the client index serves the per-client scan.
	rows, err := s.read.QueryContext(ctx, `SELECT client_id, MAX(department),
		CAST(SUM(CASE WHEN usage_source <> 'none' THEN 1 ELSE 0 END) AS BIGINT),
		CAST(SUM(total_tokens) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT)
		FROM usage_events WHERE occurred_at >= $1 AND client_id <> ''
		GROUP BY client_id`, lo)
	if err != nil {
		return nil, fmt.Errorf("usage since: %w", err)
	}
	defer rows.Close()
	var out []UsageTotal
	for rows.Next() {
		var u UsageTotal
		if err := rows.Scan(&u.ClientID, &u.Department, &u.Requests, &u.TotalTokens, &u.CostNanos); err != nil {
			return nil, fmt.Errorf("usage since: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage since: %w", err)
	}
	slices.SortFunc(out, func(a, b UsageTotal) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out, nil
}

func (s *sqlStore) Close() error {
	if s.read == s.write {
		return s.write.Close()
	}
	return errors.Join(s.read.Close(), s.write.Close())
}

// byTagValue folds rows grouped by whole tag strings into rows grouped by
// the value of one tag.
func byTagValue(rows []ReportRow, name string) []ReportRow {
	sums := map[string]*ReportRow{}
	for _, r := range rows {
		v, _ := tags.Value(r.Group, name)
		s, ok := sums[v]
		if !ok {
			s = &ReportRow{Group: v}
			sums[v] = s
		}
		s.Requests += r.Requests
		s.PromptTokens += r.PromptTokens
		s.CompletionTokens += r.CompletionTokens
		s.TotalTokens += r.TotalTokens
		s.CostNanos += r.CostNanos
		s.CacheHits += r.CacheHits
		s.SavedNanos += r.SavedNanos
	}
	out := make([]ReportRow, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	return out
}
