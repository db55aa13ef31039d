package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/dgraph-io/ristretto/v2"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/store"
)

// ErrInvalidToken is returned for an identity token that does not verify:
// a bad signature, an unknown issuer, another audience, an expired token.
// Which one is logged at debug level, never told to the caller.
var ErrInvalidToken = errors.New("invalid identity token")

// TokenKeyID is the key id the ledger records for requests authenticated
// by an identity token.
const TokenKeyID = "oidc"

// Tokens authenticates callers by the signed tokens (JWTs) of configured
// identity providers, and maps each token's claims to a client, created on
// its first request and kept in step with the token's department and tier.
type Tokens struct {
	issuers   map[string]*issuer
	store     store.Store
	cache     *ristretto.Cache[string, *Identity]
	ttl       time.Duration
	defTier   string
	createdMu sync.Mutex
	// created are the clients this process knows to exist as the tokens
	// describe them, so that a token's request writes to the store only
	// when its client is new or changed.
	created map[string]store.Client
	// droppedClaims counts the claims BoundClaims left out.
	droppedClaims atomic.Uint64
}

// DroppedClaims counts the claims of verified tokens left out for their size.
func (t *Tokens) DroppedClaims() uint64 { return t.droppedClaims.Load() }

// issuer is one identity provider.
type issuer struct {
	cfg      config.OIDC
	verifier *Verifier
}

// discoveryRetry is how long after a failed discovery the next is tried.
const discoveryRetry = 30 * time.Second

// NewTokens returns the authenticator of cfgs' providers; defaultTier is the
// tier of a token that names none. ttl bounds how long a verified token's
// identity is cached (never past the token's expiry).
func NewTokens(cfgs []config.OIDC, st store.Store, defaultTier string, ttl time.Duration) (*Tokens, error) {
	cache, err := ristretto.NewCache(&ristretto.Config[string, *Identity]{
		NumCounters: 1 << 16, MaxCost: 1 << 13, BufferItems: 64, IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: token cache: %w", err)
	}
	t := &Tokens{issuers: map[string]*issuer{}, store: st, cache: cache, ttl: ttl, defTier: defaultTier, created: map[string]store.Client{}}
	for _, c := range cfgs {
		if c.ClientClaim == "" {
			c.ClientClaim = "sub"
		}
		if c.ClientPrefix == "" {
			c.ClientPrefix = "sso-"
		}
		if c.DefaultDepartment == "" {
			c.DefaultDepartment = "sso"
		}
		if c.ClockSkew == 0 {
			c.ClockSkew = config.Duration(30 * time.Second)
		}
		t.issuers[c.Issuer] = &issuer{cfg: c, verifier: NewVerifier(c.Issuer, c.Audience, c.JWKSURL, c.ClockSkew.D())}
	}
	return t, nil
}

// Close releases the cache.
func (t *Tokens) Close() { t.cache.Close() }

// LooksLikeToken reports whether a bearer credential has the shape of a
// JWT (three base64url parts), as opposed to a Sluice key.
func LooksLikeToken(s string) bool {
	return strings.Count(s, ".") == 2 && !strings.HasPrefix(s, KeyPrefix) && len(s) <= maxTokenBytes
}

// maxTokenBytes bounds a token Sluice will parse.
const maxTokenBytes = 16 << 10

// Authenticate verifies a token and returns the identity of its client:
// ErrInvalidToken when it does not verify, another error when the
// provider's keys or the store cannot be reached.
func (t *Tokens) Authenticate(ctx context.Context, token string) (Identity, error) {
	sum := sha256.Sum256([]byte(token))
	ck := string(sum[:])
	if id, ok := t.cache.Get(ck); ok {
		return *id, nil
	}
	iss, err := unverifiedIssuer(token)
	if err != nil {
		return Identity{}, ErrInvalidToken
	}
	is, ok := t.issuers[iss]
	if !ok {
		return Identity{}, ErrInvalidToken
	}
	claims, expiry, err := is.verifier.Verify(ctx, token)
	if err != nil {
		return Identity{}, err
	}
	client, err := is.client(claims, t.defTier)
	if err != nil {
		return Identity{}, ErrInvalidToken
	}
	if err := t.ensure(ctx, client); err != nil {
		return Identity{}, err
	}
	kept, dropped := BoundClaims(claims)
	t.droppedClaims.Add(uint64(dropped))
	sub, _ := claims["sub"].(string)
	id := Identity{KeyID: TokenKeyID, Client: client, Key: store.Key{ID: TokenKeyID, ClientID: client.ID},
		Token: &Token{Issuer: iss, Subject: sub, Claims: kept, DroppedClaims: dropped, LogClaims: is.cfg.LogClaims}}
	if ttl := min(t.ttl, time.Until(expiry)); ttl > 0 {
		t.cache.SetWithTTL(ck, &id, 1, ttl)
	}
	return id, nil
}

// Forget drops every cached token identity.
func (t *Tokens) Forget() {
	t.cache.Clear()
	t.createdMu.Lock()
	clear(t.created)
	t.createdMu.Unlock()
}

// isFetchError tells a failure to fetch the provider's keys (the caller is
// not at fault: 503) from a token that does not verify (401).
func isFetchError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "fetching keys") || strings.Contains(s, "failed to get keys")
}

// unverifiedIssuer reads a token's iss without verifying anything, only to
// pick the provider whose keys then verify the whole token, iss included.
func unverifiedIssuer(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", ErrInvalidToken
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", ErrInvalidToken
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Iss == "" {
		return "", ErrInvalidToken
	}
	return c.Iss, nil
}

// Verifier checks the signed tokens of one identity provider: signature
// against the provider's published keys, issuer, audience and expiry.
type Verifier struct {
	issuer, audience, jwksURL string
	skew                      time.Duration
	// verifier is made on first use when the signing keys are discovered,
	// so that a provider that is down at start delays only its callers.
	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	retryAt  time.Time
}

// NewVerifier returns the verifier of issuer's tokens for audience; an
// empty jwksURL is discovered from <issuer>/.well-known/openid-configuration.
// skew is how long past its expiry a token still passes.
func NewVerifier(issuer, audience, jwksURL string, skew time.Duration) *Verifier {
	return &Verifier{issuer: issuer, audience: audience, jwksURL: jwksURL, skew: skew}
}

// Verify returns a token's claims and expiry: ErrInvalidToken when it does
// not verify, another error when the provider's keys cannot be fetched.
func (v *Verifier) Verify(ctx context.Context, token string) (map[string]any, time.Time, error) {
	if len(token) > maxTokenBytes {
		return nil, time.Time{}, ErrInvalidToken
	}
	iv, err := v.verifierFor(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	idt, err := iv.Verify(ctx, token)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) || !isFetchError(err) {
			return nil, time.Time{}, ErrInvalidToken
		}
		return nil, time.Time{}, fmt.Errorf("auth: verifying a token of %s: %w", v.issuer, err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, time.Time{}, ErrInvalidToken
	}
	return claims, idt.Expiry, nil
}

// verifierFor returns the issuer's verifier, discovering its keys on first
// use, and again no sooner than discoveryRetry after a failure.
func (v *Verifier) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	if time.Now().Before(v.retryAt) {
		return nil, fmt.Errorf("auth: the keys of %s could not be discovered; retrying at %s", v.issuer, v.retryAt.Format(time.RFC3339))
	}
	// The key set outlives this request: its refreshes must not be
	// cancelled with it.
	bg := context.WithoutCancel(ctx)
	skew := v.skew
	vc := &oidc.Config{ClientID: v.audience, Now: func() time.Time { return time.Now().Add(-skew) }}
	if v.jwksURL != "" {
		v.verifier = oidc.NewVerifier(v.issuer, oidc.NewRemoteKeySet(bg, v.jwksURL), vc)
		return v.verifier, nil
	}
	dctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, v.issuer)
	if err != nil {
		v.retryAt = time.Now().Add(discoveryRetry)
		return nil, fmt.Errorf("auth: discovering the keys of %s: %w", v.issuer, err)
	}
	// The provider's own key set would fetch with dctx, which ends here.
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
		v.retryAt = time.Now().Add(discoveryRetry)
		return nil, fmt.Errorf("auth: the discovery document of %s names no jwks_uri", v.issuer)
	}
	v.verifier = oidc.NewVerifier(v.issuer, oidc.NewRemoteKeySet(bg, meta.JWKSURL), vc)
	return v.verifier, nil
}

// client maps verified claims to a client.
func (is *issuer) client(claims map[string]any, defaultTier string) (store.Client, error) {
	name, _ := claims[is.cfg.ClientClaim].(string)
	if name == "" {
		return store.Client{}, fmt.Errorf("the token has no %s claim", is.cfg.ClientClaim)
	}
	c := store.Client{ID: clientID(is.cfg.ClientPrefix, name), Department: is.cfg.DefaultDepartment, Tier: defaultTier,
		Labels: map[string]string{"issuer": is.cfg.Issuer}}
	if is.cfg.DefaultTier != "" {
		c.Tier = is.cfg.DefaultTier
	}
	if d, _ := claims[is.cfg.DepartmentClaim].(string); is.cfg.DepartmentClaim != "" && validName(d) {
		c.Department = d
	}
	if is.cfg.GroupsClaim != "" {
		groups := map[string]bool{}
		switch g := claims[is.cfg.GroupsClaim].(type) {
		case []any:
			for _, v := range g {
				if s, ok := v.(string); ok {
					groups[s] = true
				}
			}
		case string:
			groups[g] = true
		}
		for _, gt := range is.cfg.GroupTiers {
			if groups[gt.Group] {
				c.Tier = gt.Tier
				break
			}
		}
	}
	return c, nil
}

// clientID is prefix + name when that is a valid, short id of printable
// characters, and prefix + a hash of name otherwise.
func clientID(prefix, name string) string {
	if validName(name) && len(prefix)+len(name) <= 128 {
		return prefix + name
	}
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:12])
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r > 0x7e {
			return false
		}
	}
	return true
}

// ensure creates the token's client when it is new, and brings its
// department and tier in line with the token's when they changed.
func (t *Tokens) ensure(ctx context.Context, c store.Client) error {
	t.createdMu.Lock()
	known, ok := t.created[c.ID]
	t.createdMu.Unlock()
	if ok && known.Department == c.Department && known.Tier == c.Tier {
		return nil
	}
	err := t.store.CreateClient(ctx, store.Client{ID: c.ID, Department: c.Department, Tier: c.Tier, Labels: c.Labels, CreatedAt: time.Now().UTC()})
	if errors.Is(err, store.ErrExists) {
		stored, gerr := t.store.GetClient(ctx, c.ID)
		switch {
		case errors.Is(gerr, store.ErrNotFound):
			return ErrInvalidToken // a deleted client stays deleted
		case gerr != nil:
			return fmt.Errorf("auth: reading the token's client: %w", gerr)
		case !stored.DisabledAt.IsZero():
			return ErrClientDisabled
		case stored.Department != c.Department || stored.Tier != c.Tier:
			stored.Department, stored.Tier = c.Department, c.Tier
			err = t.store.UpdateClient(ctx, stored)
		default:
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("auth: recording the token's client: %w", err)
	}
	t.createdMu.Lock()
	if len(t.created) >= maxKnown {
		clear(t.created)
	}
	t.created[c.ID] = c
	t.createdMu.Unlock()
	return nil
}
