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
	// changed, when set, is called after a client is created.
	changed func()
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
	return c, nil
}

// CreateKey makes a new key for an existing client. The secret is returned
// once and is not stored.
func (s *Service) CreateKey(ctx context.Context, clientID string) (secret string, k store.Key, err error) {
	if _, err := s.store.GetClient(ctx, clientID); err != nil {
		return "", store.Key{}, fmt.Errorf("client %q: %w", clientID, err)
	}
	secret, k, err = auth.NewKey(clientID)
	if err != nil {
		return "", store.Key{}, err
	}
	k.CreatedAt = s.now().UTC()
	if err := s.store.CreateKey(ctx, k); err != nil {
		return "", store.Key{}, err
	}
	return secret, k, nil
}

// RevokeKey revokes a key by id.
func (s *Service) RevokeKey(ctx context.Context, keyID string) error {
	if s.auth != nil {
		return s.auth.Revoke(ctx, keyID)
	}
	return s.store.RevokeKey(ctx, keyID, s.now().UTC())
}

// Clients lists every client.
func (s *Service) Clients(ctx context.Context) ([]store.Client, error) {
	return s.store.ListClients(ctx)
}

// Keys lists the keys of a client, or all keys when clientID is "".
func (s *Service) Keys(ctx context.Context, clientID string) ([]store.Key, error) {
	return s.store.ListKeys(ctx, clientID)
}
