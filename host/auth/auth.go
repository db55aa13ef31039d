// Package auth turns an API key into the client it belongs to. Keys are random,
// stored only as SHA-256 hashes, and their client contexts are cached in
// ristretto for a bounded time.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/sluicehq/sluice/host/store"
)

// KeyPrefix starts every Sluice key, so that secret scanners can recognise one.
const KeyPrefix = "sk-sluice-"

// keyRandomChars is the number of base62 characters after the prefix:
// 32 × log2(62) ≈ 190 bits of randomness.
const keyRandomChars = 32

// displayPrefixLen is how much of a key listings show.
const displayPrefixLen = len(KeyPrefix) + 4

// DisplayPrefixLen is how much of a key listings show, and what the
// gateway's key limiter counts failed attempts by.
const DisplayPrefixLen = displayPrefixLen

// WellFormed reports whether key has the shape of a Sluice key: only such
// a key is looked up in the store.
func WellFormed(key string) bool {
	return strings.HasPrefix(key, KeyPrefix) && len(key) == len(KeyPrefix)+keyRandomChars
}

// ErrInvalidKey is returned for a missing, unknown or revoked key. The three are
// not told apart, so the answer tells a caller nothing.
var ErrInvalidKey = errors.New("invalid API key")

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewKey makes a new random key for a client. The secret is returned once and
// never stored; the Key carries only its hash and a short display prefix.
func NewKey(clientID string) (secret string, k store.Key, err error) {
	var b strings.Builder
	b.WriteString(KeyPrefix)
	max := big.NewInt(int64(len(alphabet)))
	for range keyRandomChars {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", store.Key{}, fmt.Errorf("auth: reading randomness: %w", err)
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	secret = b.String()
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return "", store.Key{}, fmt.Errorf("auth: reading randomness: %w", err)
	}
	k = store.Key{
		ID:       fmt.Sprintf("key_%x", id),
		ClientID: clientID,
		Prefix:   secret[:displayPrefixLen],
		Hash:     sha256.Sum256([]byte(secret)),
	}
	return secret, k, nil
}

// ErrKeyExpired is returned for a key past its expiry. Only a caller that
// holds the whole secret can learn that it expired, so saying so tells an
// attacker nothing, and tells the key's owner what to do.
var ErrKeyExpired = errors.New("API key expired")

// ErrClientDisabled is returned for a key of a disabled client.
var ErrClientDisabled = errors.New("client disabled")

// Identity is who a request comes from.
type Identity struct {
	KeyID  string
	Client store.Client
	// Key is the key the request came with: its name, expiry and scope.
	Key store.Key
	// Token is set for a caller authenticated by an identity token: its
	// issuer and verified claims.
	Token *Token
}

// cached is what the cache holds for one key hash: an identity, or the fact
// that the hash is unknown (so a flood of bad keys costs no store reads).
type cached struct {
	hash     [32]byte
	identity Identity
	valid    bool
}

// Authenticator checks keys against the store through a ristretto cache.
type Authenticator struct {
	store       store.Store
	cache       *ristretto.Cache[string, *cached]
	ttl         time.Duration
	negativeTTL time.Duration
	now         func() time.Time
	// generation changes on every Forget. A lookup that began before a
	// revocation must not cache what it read after the cache was cleared.
	generation atomic.Uint64
	// hits and misses count lookups the cache answered and those that went
	// to the store.
	hits, misses atomic.Uint64

	// known keeps the keys the store last confirmed, and when, so that they
	// keep working for StaleFor while the store is unreachable after their
	// cache entry lapsed (stale-if-error). storeDown is set by a failed
	// lookup and cleared by one that reached the store.
	knownMu   sync.Mutex
	known     map[[32]byte]knownKey
	staleFor  time.Duration
	storeDown atomic.Bool
	stale     atomic.Uint64
}

type knownKey struct {
	identity Identity
	at       time.Time
}

// StaleFor is how long after the store last confirmed a key it keeps
// working while the store is unreachable: long enough to ride out a database
// restart or failover, short enough that a key revoked on another replica
// meanwhile does not work for long.
const StaleFor = 10 * time.Minute

// maxKnown bounds the keys kept for stale-if-error; past it, the map starts
// over, and the keys not used since fail with the store like before.
const maxKnown = 1 << 16

// StoreDown reports whether the last lookup that went to the store failed.
func (a *Authenticator) StoreDown() bool { return a.storeDown.Load() }

// NoteStore tells the authenticator how a call to the store went other
// than through a key lookup (nil: it answered), so that StoreDown follows
// the store while no key is looked up: from a start with the store
// unreachable, say, until it is back.
func (a *Authenticator) NoteStore(err error) { a.storeDown.Store(err != nil) }

// StaleServed counts the lookups answered from a stale entry while the
// store was unreachable.
func (a *Authenticator) StaleServed() uint64 { return a.stale.Load() }

// CacheStats reports how many lookups the cache answered and how many went
// to the store.
func (a *Authenticator) CacheStats() (hits, misses uint64) { return a.hits.Load(), a.misses.Load() }

// New returns an Authenticator whose cache keeps a client context for at most
// ttl: a key revoked elsewhere works for at most ttl, one revoked through this
// Authenticator stops at once.
func New(st store.Store, ttl time.Duration) (*Authenticator, error) {
	cache, err := ristretto.NewCache(&ristretto.Config[string, *cached]{
		NumCounters:        1 << 17,
		MaxCost:            1 << 14, // entries, not bytes
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: cache: %w", err)
	}
	neg := ttl
	if neg > 5*time.Second {
		neg = 5 * time.Second
	}
	return &Authenticator{store: st, cache: cache, ttl: ttl, negativeTTL: neg, now: time.Now,
		known: map[[32]byte]knownKey{}, staleFor: StaleFor}, nil
}

// Close releases the cache.
func (a *Authenticator) Close() { a.cache.Close() }

// Authenticate returns the identity behind a key, or ErrInvalidKey.
func (a *Authenticator) Authenticate(ctx context.Context, key string) (Identity, error) {
	if !strings.HasPrefix(key, KeyPrefix) || len(key) != len(KeyPrefix)+keyRandomChars {
		return Identity{}, ErrInvalidKey
	}
	hash := sha256.Sum256([]byte(key))
	ck := string(hash[:])
	if c, ok := a.cache.Get(ck); ok && subtle.ConstantTimeCompare(c.hash[:], hash[:]) == 1 {
		a.hits.Add(1)
		if !c.valid {
			return Identity{}, ErrInvalidKey
		}
		return a.usable(c.identity)
	}
	a.misses.Add(1)
	gen := a.generation.Load()
	k, client, err := a.store.KeyByHash(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.remember(gen, ck, &cached{hash: hash}, a.negativeTTL)
		return Identity{}, ErrInvalidKey
	case err != nil:
		a.storeDown.Store(true)
		if id, ok := a.staleIdentity(hash); ok {
			a.stale.Add(1)
			return a.usable(id)
		}
		return Identity{}, fmt.Errorf("auth: looking up key: %w", err)
	}
	a.storeDown.Store(false)
	// The lookup was by hash; comparing the stored hash in constant time keeps
	// any later change of lookup strategy from turning into a timing oracle.
	if subtle.ConstantTimeCompare(k.Hash[:], hash[:]) != 1 || !k.Active() {
		a.remember(gen, ck, &cached{hash: hash}, a.negativeTTL)
		return Identity{}, ErrInvalidKey
	}
	k.Hash = [32]byte{} // an identity travels far; the hash need not
	id := Identity{KeyID: k.ID, Client: client, Key: k}
	a.remember(gen, ck, &cached{hash: hash, identity: id, valid: true}, a.ttl)
	a.knownMu.Lock()
	if a.generation.Load() == gen {
		if len(a.known) >= maxKnown {
			clear(a.known)
		}
		a.known[hash] = knownKey{identity: id, at: a.now()}
	}
	a.knownMu.Unlock()
	return a.usable(id)
}

// usable returns id, or ErrKeyExpired once its key's expiry has passed, or
// ErrClientDisabled: checked at every use, so a cached key stops at its
// expiry to the second.
func (a *Authenticator) usable(id Identity) (Identity, error) {
	if id.Key.Expired(a.now()) {
		return Identity{}, ErrKeyExpired
	}
	if !id.Client.DisabledAt.IsZero() {
		return Identity{}, ErrClientDisabled
	}
	return id, nil
}

// staleIdentity is the identity the store last confirmed for hash, if that
// was within staleFor.
func (a *Authenticator) staleIdentity(hash [32]byte) (Identity, bool) {
	a.knownMu.Lock()
	defer a.knownMu.Unlock()
	k, ok := a.known[hash]
	if !ok || a.now().Sub(k.at) > a.staleFor {
		return Identity{}, false
	}
	return k.identity, true
}

// Known reports whether key is cached as a valid key, without going to the
// store: the cheap check that lets a known client through a limit that
// holds back everyone else at its address.
func (a *Authenticator) Known(key string) bool {
	if !strings.HasPrefix(key, KeyPrefix) || len(key) != len(KeyPrefix)+keyRandomChars {
		return false
	}
	hash := sha256.Sum256([]byte(key))
	c, ok := a.cache.Get(string(hash[:]))
	return ok && c.valid && subtle.ConstantTimeCompare(c.hash[:], hash[:]) == 1
}

// remember caches what a lookup found, unless the cache was cleared since the
// lookup began: then what it found may already be stale.
func (a *Authenticator) remember(gen uint64, key string, c *cached, ttl time.Duration) {
	if a.generation.Load() == gen {
		a.cache.SetWithTTL(key, c, 1, ttl)
	}
}

// Forget drops every cached client context, e.g. after a client's tier changed.
func (a *Authenticator) Forget() {
	a.generation.Add(1)
	a.cache.Clear()
	a.knownMu.Lock()
	clear(a.known)
	a.knownMu.Unlock()
}

// KeyFromHeaders extracts the key from "Authorization: Bearer <key>" or
// "x-api-key: <key>".
func KeyFromHeaders(authorization, xAPIKey []byte) string {
	if len(authorization) > 0 {
		const bearer = "bearer "
		if len(authorization) > len(bearer) && strings.EqualFold(string(authorization[:len(bearer)]), bearer) {
			return strings.TrimSpace(string(authorization[len(bearer):]))
		}
		return ""
	}
	return strings.TrimSpace(string(xAPIKey))
}
