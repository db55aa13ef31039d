// Package respcache keeps upstream replies for reuse by identical requests:
// a local ristretto cache bounded in bytes, in front of Redis when replicas
// share one. It stores what it is given and knows nothing of guardrails or
// billing; a Redis that fails is a miss, never an error.
package respcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/redis/go-redis/v9"
)

// Entry is one upstream reply as the upstream gave it: the body of a whole
// reply, or the data of each event of a stream, in order.
type Entry struct {
	Body   []byte   `json:"body,omitempty"`
	Chunks [][]byte `json:"chunks,omitempty"`
}

// Size is the bytes an entry takes, as counted against the bounds.
func (e Entry) Size() int64 {
	n := int64(len(e.Body))
	for _, c := range e.Chunks {
		n += int64(len(c)) + 8
	}
	return n
}

// Options configure a Cache. A zero MaxBytes keeps nothing locally.
type Options struct {
	// MaxBytes bounds the local cache.
	MaxBytes int64
	// MaxEntryBytes bounds one entry, locally and in Redis: a larger reply
	// is not cached. Default MaxBytes/16, at most 4 MiB.
	MaxEntryBytes int64
	// RedisURL, when set, shares entries between replicas.
	RedisURL string
	// Timeout bounds one Redis round trip. Default 50ms.
	Timeout time.Duration
	Log     *slog.Logger
}

// DefaultMaxEntryBytes caps MaxEntryBytes when it is not set.
const DefaultMaxEntryBytes = 4 << 20

// Cache is a reply cache; its methods are safe for concurrent use.
type Cache struct {
	local    *ristretto.Cache[string, []byte]
	redis    *redis.Client
	timeout  time.Duration
	maxEntry int64
	log      *slog.Logger
}

// New opens a cache.
func New(o Options) (*Cache, error) {
	if o.MaxBytes < 0 || o.MaxEntryBytes < 0 {
		return nil, errors.New("respcache: sizes must not be negative")
	}
	c := &Cache{timeout: o.Timeout, maxEntry: o.MaxEntryBytes, log: o.Log}
	if c.timeout <= 0 {
		c.timeout = 50 * time.Millisecond
	}
	if c.maxEntry == 0 {
		c.maxEntry = min(o.MaxBytes/16, DefaultMaxEntryBytes)
		if c.maxEntry == 0 {
			c.maxEntry = DefaultMaxEntryBytes
		}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if o.MaxBytes > 0 {
		local, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
			// About one counter per 10 entries of 1 KiB, as ristretto advises.
			NumCounters:        max(o.MaxBytes/100, 1000),
			MaxCost:            o.MaxBytes,
			BufferItems:        64,
			IgnoreInternalCost: true,
		})
		if err != nil {
			return nil, fmt.Errorf("respcache: %w", err)
		}
		c.local = local
	}
	if o.RedisURL != "" {
		opts, err := redis.ParseURL(o.RedisURL)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("respcache: redis url: %w", err)
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = c.timeout, c.timeout, c.timeout
		opts.MaxRetries = -1
		c.redis = redis.NewClient(opts)
	}
	return c, nil
}

// redisPrefix starts every key the cache writes in Redis.
const redisPrefix = "sluice:respcache:"

// Get returns the entry at key, locally or from Redis.
func (c *Cache) Get(ctx context.Context, key string) (Entry, bool) {
	if c == nil {
		return Entry{}, false
	}
	if c.local != nil {
		if b, ok := c.local.Get(key); ok {
			return decode(b)
		}
	}
	if c.redis == nil {
		return Entry{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pipe := c.redis.Pipeline()
	get := pipe.Get(ctx, redisPrefix+key)
	ttl := pipe.PTTL(ctx, redisPrefix+key)
	if _, err := pipe.Exec(ctx); err != nil {
		if !errors.Is(err, redis.Nil) {
			c.log.Warn("response cache: redis read failed; served as a miss", "error", err)
		}
		return Entry{}, false
	}
	b, _ := get.Bytes()
	e, ok := decode(b)
	if ok && c.local != nil {
		if d := ttl.Val(); d > 0 {
			c.local.SetWithTTL(key, b, int64(len(b)), d)
		}
	}
	return e, ok
}

// Set stores e at key for ttl, locally and in Redis; an entry larger than
// the entry bound is not stored. It reports whether e was kept anywhere.
func (c *Cache) Set(ctx context.Context, key string, e Entry, ttl time.Duration) bool {
	if c == nil || ttl <= 0 || e.Size() > c.maxEntry {
		return false
	}
	b, err := json.Marshal(e)
	if err != nil {
		return false
	}
	kept := false
	if c.local != nil && c.local.SetWithTTL(key, b, int64(len(b)), ttl) {
		// A set is buffered; waiting makes it visible to the next request.
		c.local.Wait()
		kept = true
	}
	if c.redis != nil {
		ctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		if err := c.redis.Set(ctx, redisPrefix+key, b, ttl).Err(); err != nil {
			c.log.Warn("response cache: redis write failed; reply not shared", "error", err)
		} else {
			kept = true
		}
	}
	return kept
}

// MaxEntryBytes is the bound of one entry.
func (c *Cache) MaxEntryBytes() int64 { return c.maxEntry }

// Close releases the local cache and the Redis connections.
func (c *Cache) Close() {
	if c == nil {
		return
	}
	if c.local != nil {
		c.local.Close()
	}
	if c.redis != nil {
		c.redis.Close()
	}
}

func decode(b []byte) (Entry, bool) {
	var e Entry
	if json.Unmarshal(b, &e) != nil || (e.Body == nil && e.Chunks == nil) {
		return Entry{}, false
	}
	return e, true
}

// Key is the cache key of a request: the SHA-256 of the scope it may be
// shared within, the caller's endpoint, the model it named and its body as
// canonical JSON (keys sorted, no insignificant whitespace), so that two
// requests differing only in key order or spacing meet. body must be the
// request as the upstream would get it: every parameter that shapes the
// reply is in it.
func Key(scope, endpoint, model string, body []byte) (string, error) {
	canon, err := Canonical(body)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte("v1"), []byte(scope), []byte(endpoint), []byte(model)} {
		h.Write(part)
		h.Write([]byte{0})
	}
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Canonical re-encodes a JSON document with its objects' keys sorted and
// no insignificant whitespace. Numbers keep their text.
func Canonical(body []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("respcache: canonical JSON: %w", err)
	}
	if d.More() {
		return nil, errors.New("respcache: canonical JSON: trailing data")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("respcache: canonical JSON: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
