package accounts

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/host/store"
)

type actorKey struct{}

// WithActor names who makes the changes done with ctx, for the audit log:
// an admin token's name, or "cli".
func WithActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, name)
}

// actorOf is the actor ctx names; changes made without one are recorded as
// "unknown" rather than not at all.
func actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "unknown"
}

// audit records a change that was made. A change that could not be
// recorded is reported as an error, so that no change goes unrecorded
// silently; the change itself stands.
func (s *Service) audit(ctx context.Context, action, target string, detail map[string]any) error {
	ev := store.AuditEvent{Time: s.now().UTC(), Actor: actorOf(ctx), Action: action, Target: target, Detail: detail}
	if err := s.store.InsertAudit(context.WithoutCancel(ctx), ev); err != nil {
		return fmt.Errorf("%s %s was done, but could not be written to the audit log: %w", action, target, err)
	}
	return nil
}

// Audit returns the recorded changes q selects, newest first.
func (s *Service) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, error) {
	return s.store.Audit(ctx, q)
}

func clientDetail(c store.Client) map[string]any {
	return map[string]any{"department": c.Department, "tier": c.Tier, "labels": c.Labels}
}

// keyDetail is what the audit log keeps of a key: never its secret or hash.
func keyDetail(k store.Key) map[string]any {
	d := map[string]any{"client": k.ClientID, "name": k.Name, "prefix": k.Prefix, "limits": limitsJSON(k.Scope.Limits),
		"models": k.Scope.Models, "tags": k.Scope.Tags}
	if !k.ExpiresAt.IsZero() {
		d["expires_at"] = k.ExpiresAt.Format(time.RFC3339)
	}
	if k.RotatedFrom != "" {
		d["rotated_from"] = k.RotatedFrom
	}
	return d
}
