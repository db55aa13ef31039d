// Package accounts is the one place clients and keys are created, listed and
// revoked, so that the CLI and the admin API apply the same rules.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/auth"
	"github.com/sluicehq/sluice/host/store"
)

// ErrUnknownTier is returned when a client would be given a tier that the
// configuration does not define.
var ErrUnknownTier = errors.New("unknown tier")

// Service manages clients and keys.
type Service struct {
	store       store.Store
	tiers       []string
	defaultTier string
	// auth, when set, forgets cached contexts on revocation so that a
	// revoked key stops working on this process at once.
	auth *auth.Authenticator
	now  func() time.Time
	// changed, when set, is called after a client is created or changed.
	changed func()
	// keysChanged, when set, is called after a change that makes cached
	// keys stale (a revocation, a rotation, a client's update), so that other
	// replicas forget theirs too.
	keysChanged func()
}

// OnKeysChange calls f after every change that makes cached keys stale.
func (s *Service) OnKeysChange(f func()) { s.keysChanged = f }

// stale forgets this process's cached keys and tells the others.
func (s *Service) stale() {
	if s.auth != nil {
		s.auth.Forget()
	}
	if s.keysChanged != nil {
		s.keysChanged()
	}
}

// OnClientChange calls f after every change to the clients, so that what
// is derived from them (the policies' data) can follow at once.
func (s *Service) OnClientChange(f func()) { s.changed = f }

// New returns a Service. tiers are the valid tier names; a is optional.
func New(st store.Store, tiers []string, defaultTier string, a *auth.Authenticator) *Service {
	return &Service{store: st, tiers: tiers, defaultTier: defaultTier, auth: a, now: time.Now}
}

// NewClient is what creating a client takes.
type NewClient struct {
	ID         string            `json:"id"`
	Department string            `json:"department"`
	Tier       string            `json:"tier"`
	Labels     map[string]string `json:"labels"`
}

// CreateClient adds a client; an empty tier means the default tier.
func (s *Service) CreateClient(ctx context.Context, nc NewClient) (store.Client, error) {
	if nc.Tier == "" {
		nc.Tier = s.defaultTier
	}
	if !slices.Contains(s.tiers, nc.Tier) {
		return store.Client{}, fmt.Errorf("%w %q (expected one of: %s)", ErrUnknownTier, nc.Tier, strings.Join(s.tiers, ", "))
	}
	c := store.Client{ID: nc.ID, Department: nc.Department, Tier: nc.Tier, Labels: nc.Labels, CreatedAt: s.now().UTC()}
	if err := s.store.CreateClient(ctx, c); err != nil {
		return store.Client{}, err
	}
	if s.changed != nil {
		s.changed()
	}
	return c, s.audit(ctx, "client.create", c.ID, map[string]any{"after": clientDetail(c)})
}

// CreateKey makes a new key for an existing client. The secret is returned
// once and is not stored.
func (s *Service) CreateKey(ctx context.Context, nk NewKey) (secret string, k store.Key, err error) {
	if _, err := s.store.GetClient(ctx, nk.ClientID); err != nil {
		return "", store.Key{}, fmt.Errorf("client %q: %w", nk.ClientID, err)
	}
	now := s.now().UTC()
	expires, err := nk.expiry(now)
	if err != nil {
		return "", store.Key{}, err
	}
	secret, k, err = auth.NewKey(nk.ClientID)
	if err != nil {
		return "", store.Key{}, err
	}
	k.CreatedAt, k.ExpiresAt = now, expires
	k.Name, k.CreatedBy, k.RotatedFrom = nk.Name, nk.CreatedBy, nk.rotatedFrom
	k.Scope = store.KeyScope{Limits: nk.Limits.store(), Models: nk.Models, Tags: nk.Tags}
	if err := s.store.CreateKey(ctx, k); err != nil {
		return "", store.Key{}, err
	}
	action := "key.create"
	if k.RotatedFrom != "" {
		action = "key.rotate"
	}
	return secret, k, s.audit(ctx, action, k.ID, keyDetail(k))
}

// DefaultGrace is how long a rotated key keeps working beside the new one
// when the rotation names no grace period.
const DefaultGrace = 24 * time.Hour

// RotateKey issues a new key in place of keyID, with the same client,
// name and scope, and keeps the old key working for grace (never longer
// than it would have anyway). The new key's expiry is expires when given
// ("90d" or a date); otherwise a key that expired after a lifetime gets the
// same lifetime from now. A revoked or expired key cannot be rotated: a
// rotation never brings a dead key back.
func (s *Service) RotateKey(ctx context.Context, keyID string, grace time.Duration, expires, by string) (secret string, k store.Key, err error) {
	if grace < 0 {
		return "", store.Key{}, fmt.Errorf("%w: grace must not be negative", ErrInvalidKeyRequest)
	}
	old, err := s.key(ctx, keyID)
	if err != nil {
		return "", store.Key{}, err
	}
	now := s.now().UTC()
	if !old.Active() || old.Expired(now) {
		return "", store.Key{}, fmt.Errorf("%w: key %s is revoked or expired; create a new key instead", ErrInvalidKeyRequest, keyID)
	}
	nk := NewKey{ClientID: old.ClientID, Name: old.Name, Expires: expires, Models: old.Scope.Models, Tags: old.Scope.Tags,
		CreatedBy: by, rotatedFrom: old.ID}
	nk.Limits = limitsJSON(old.Scope.Limits)
	if expires == "" && !old.ExpiresAt.IsZero() {
		nk.Expires = old.ExpiresAt.Sub(old.CreatedAt).String()
	}
	secret, k, err = s.CreateKey(ctx, nk)
	if err != nil {
		return "", store.Key{}, err
	}
	// The new key is stored before the old one is cut short, so a failure
	// in between leaves two working keys, never none.
	if err := s.store.ExpireKey(ctx, old.ID, now.Add(grace)); err != nil {
		return "", store.Key{}, fmt.Errorf("new key %s issued, but the old key's grace could not be set: %w", k.ID, err)
	}
	s.stale()
	return secret, k, s.audit(ctx, "key.expire", old.ID, map[string]any{"expires_at": now.Add(grace).Format(time.RFC3339), "replaced_by": k.ID})
}

// key finds a key by id.
func (s *Service) key(ctx context.Context, id string) (store.Key, error) {
	ks, err := s.store.ListKeys(ctx, "")
	if err != nil {
		return store.Key{}, err
	}
	for _, k := range ks {
		if k.ID == id {
			return k, nil
		}
	}
	return store.Key{}, fmt.Errorf("key %q: %w", id, store.ErrNotFound)
}

// ExpiringSoon counts the active keys that expire within ExpiringWithin.
func (s *Service) ExpiringSoon(ctx context.Context) (int, error) {
	ks, err := s.store.ListKeys(ctx, "")
	if err != nil {
		return 0, err
	}
	now, n := s.now(), 0
	for _, k := range ks {
		if k.Active() && ExpiresSoon(k, now) {
			n++
		}
	}
	return n, nil
}

// RevokeKey revokes a key by id.
func (s *Service) RevokeKey(ctx context.Context, keyID string) error {
	if err := s.store.RevokeKey(ctx, keyID, s.now().UTC()); err != nil {
		return err
	}
	s.stale()
	return s.audit(ctx, "key.revoke", keyID, nil)
}

// ClientUpdate is what updating a client changes; a nil field is kept.
type ClientUpdate struct {
	Department *string            `json:"department"`
	Tier       *string            `json:"tier"`
	Labels     *map[string]string `json:"labels"`
}

// UpdateClient changes a client's department, tier or labels. Its keys
// carry the change from their next request on this replica, and on others
// at once with Redis or within auth.cache_ttl without.
func (s *Service) UpdateClient(ctx context.Context, id string, u ClientUpdate) (store.Client, error) {
	c, err := s.store.GetClient(ctx, id)
	if err != nil {
		return store.Client{}, err
	}
	before := clientDetail(c)
	if u.Department != nil {
		c.Department = *u.Department
	}
	if u.Tier != nil {
		if !slices.Contains(s.tiers, *u.Tier) {
			return store.Client{}, fmt.Errorf("%w %q (expected one of: %s)", ErrUnknownTier, *u.Tier, strings.Join(s.tiers, ", "))
		}
		c.Tier = *u.Tier
	}
	if u.Labels != nil {
		c.Labels = *u.Labels
	}
	if err := s.store.UpdateClient(ctx, c); err != nil {
		return store.Client{}, err
	}
	s.clientsChanged()
	return c, s.audit(ctx, "client.update", c.ID, map[string]any{"before": before, "after": clientDetail(c)})
}

// DisableClient refuses the client's keys (403 client_disabled) until it
// is enabled again; disabled false enables it.
func (s *Service) DisableClient(ctx context.Context, id string, disabled bool) error {
	var at time.Time
	if disabled {
		at = s.now().UTC()
	}
	if err := s.store.DisableClient(ctx, id, at); err != nil {
		return err
	}
	s.clientsChanged()
	action := "client.enable"
	if disabled {
		action = "client.disable"
	}
	return s.audit(ctx, action, id, nil)
}

// DeleteClient deletes a client: its keys stop working, its ledger rows
// stay, and its id cannot be taken again.
func (s *Service) DeleteClient(ctx context.Context, id string) error {
	if err := s.store.DeleteClient(ctx, id, s.now().UTC()); err != nil {
		return err
	}
	s.clientsChanged()
	return s.audit(ctx, "client.delete", id, nil)
}

// clientsChanged makes what is derived from clients follow a change.
func (s *Service) clientsChanged() {
	s.stale()
	if s.changed != nil {
		s.changed()
	}
}

// Clients lists every client.
func (s *Service) Clients(ctx context.Context) ([]store.Client, error) {
	return s.store.ListClients(ctx)
}

// Keys lists the keys of a client, or all keys when clientID is "".
func (s *Service) Keys(ctx context.Context, clientID string) ([]store.Key, error) {
	return s.store.ListKeys(ctx, clientID)
}
