package config

import (
	"strings"
	"time"
)

// Cache tunes the reply cache. Which requests are cached, for how long and
// shared with whom is the policy's decision (tiers' cache_ttl and
// cache_scope in the default policy); this says where replies are kept.
type Cache struct {
	// MaxBytes bounds the replies kept in this process. Default 64 MiB; 0
	// keeps none locally (Redis only, when set).
	MaxBytes *int64 `yaml:"max_bytes"`
	// MaxEntryBytes bounds one reply: a larger one is not cached. Default
	// a sixteenth of max_bytes, at most 4 MiB.
	MaxEntryBytes int64 `yaml:"max_entry_bytes"`
	// Redis shares replies between replicas: a redis:// URL. Default
	// limits.redis.url when limits.backend is redis; "off" keeps replies
	// local even then.
	Redis string `yaml:"redis"`
	// Timeout bounds one Redis round trip: past it the request is a miss
	// (or its reply is not shared). Default 50ms.
	Timeout Duration `yaml:"timeout"`
}

// DefaultCacheMaxBytes is cache.max_bytes when it is not set.
const DefaultCacheMaxBytes = 64 << 20

// CacheMaxBytes is cache.max_bytes, or its default.
func (c *Config) CacheMaxBytes() int64 {
	if c.Cache.MaxBytes == nil {
		return DefaultCacheMaxBytes
	}
	return *c.Cache.MaxBytes
}

// CacheRedisURL is the Redis the reply cache shares replies through, ""
// for none.
func (c *Config) CacheRedisURL() string {
	switch {
	case c.Cache.Redis == "off":
		return ""
	case c.Cache.Redis != "":
		return c.Cache.Redis
	case c.Limits.Backend == "redis":
		return c.Limits.Redis.URL
	}
	return ""
}

// validateCache checks the cache section and the tiers' cache settings.
func (c *Config) validateCache(bad func(key, format string, args ...any) error) error {
	if c.Cache.MaxBytes != nil && *c.Cache.MaxBytes < 0 {
		return bad("cache.max_bytes", "expected 0 or more bytes")
	}
	if c.Cache.MaxEntryBytes < 0 {
		return bad("cache.max_entry_bytes", "expected 0 (the default) or more bytes")
	}
	if r := c.Cache.Redis; r != "" && r != "off" && !strings.HasPrefix(r, "redis://") && !strings.HasPrefix(r, "rediss://") {
		return bad("cache.redis", "expected a redis:// URL or off")
	}
	if c.Cache.Timeout < 0 {
		return bad("cache.timeout", "expected a duration such as 50ms")
	}
	for name, t := range c.Tiers {
		if t.CacheTTL != "" {
			if d, err := time.ParseDuration(t.CacheTTL); err != nil || d < 0 {
				return bad("tiers."+name+".cache_ttl", "expected a duration such as 10m, got %q", t.CacheTTL)
			}
		}
		switch t.CacheScope {
		case "", "client", "department", "shared":
		default:
			return bad("tiers."+name+".cache_scope", "expected client, department or shared, got %q", t.CacheScope)
		}
	}
	return nil
}
