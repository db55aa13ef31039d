package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditEvent is one change an operator made.
type AuditEvent struct {
	Time time.Time
	// Actor names who made the change: an admin token's name, or "cli".
	Actor string
	// Action is what was done, such as "key.create" or "client.update".
	Action string
	// Target is what it was done to: a client id, a key id, "policy".
	Target string
	// Detail holds the before and after of what changed, never a secret.
	Detail map[string]any
}

// AuditQuery selects audit events in [From, To), newest first, at most
// Limit of them (MaxAuditEvents when 0).
type AuditQuery struct {
	From, To time.Time
	Actor    string // only this actor's, when set
	Limit    int
}

// MaxAuditEvents bounds one audit query.
const MaxAuditEvents = 10_000

func (s *sqlStore) InsertAudit(ctx context.Context, ev AuditEvent) error {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if err := checkTime("audit time", ev.Time); err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	if ev.Actor == "" || ev.Action == "" {
		return fmt.Errorf("insert audit event: %w", invalid("actor and action are required"))
	}
	detail, err := json.Marshal(ev.Detail)
	if err != nil || ev.Detail == nil {
		detail = []byte("{}")
	}
	_, err = s.write.ExecContext(ctx, `INSERT INTO audit_events (occurred_at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)`,
		nanos(ev.Time), ev.Actor, ev.Action, ev.Target, string(detail))
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}

func (s *sqlStore) Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	from, to, err := rangeNanos(q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxAuditEvents {
		limit = MaxAuditEvents
	}
	query := `SELECT occurred_at, actor, action, target, detail FROM audit_events WHERE occurred_at >= $1 AND occurred_at < $2`
	args := []any{from, to}
	if q.Actor != "" {
		query += ` AND actor = $3`
		args = append(args, q.Actor)
	}
	query += fmt.Sprintf(` ORDER BY occurred_at DESC LIMIT %d`, limit)
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var ev AuditEvent
		var at int64
		var detail string
		if err := rows.Scan(&at, &ev.Actor, &ev.Action, &ev.Target, &detail); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		ev.Time = fromNanos(at)
		if err := json.Unmarshal([]byte(detail), &ev.Detail); err != nil {
			return nil, fmt.Errorf("audit: stored detail is not JSON: %w", err)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}
