package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// forgetChannel is the Redis channel on which a replica that changed keys
// or clients tells the others to drop their cached keys.
const forgetChannel = "sluice:auth:forget"

// keyBroadcast carries "forget your cached keys" between replicas over Redis
// pub/sub, so that a revocation, rotation or client change made through one
// replica takes effect on the others in a round trip rather than within
// auth.cache_ttl. A message lost while Redis is unreachable costs only that:
// the cache's TTL still bounds how long a stale key works.
type keyBroadcast struct {
	client *redis.Client
	sub    *redis.PubSub
	log    *slog.Logger
	done   chan struct{}
}

// startKeyBroadcast subscribes forget to the channel of the Redis at url.
func startKeyBroadcast(ctx context.Context, url string, forget func(), log *slog.Logger) (*keyBroadcast, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(o)
	b := &keyBroadcast{client: client, sub: client.Subscribe(ctx, forgetChannel), log: log, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for range b.sub.Channel() {
			forget()
		}
	}()
	return b, nil
}

// publish tells every replica, this one included, to forget cached keys.
func (b *keyBroadcast) publish() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.client.Publish(ctx, forgetChannel, "1").Err(); err != nil {
		b.log.Warn("other replicas were not told to forget cached keys; they will within auth.cache_ttl", "error", err)
	}
}

// ForgetKeysEverywhere tells every server on the Redis at url to forget its
// cached keys: what the CLI does after changing keys or clients in the store.
func ForgetKeysEverywhere(ctx context.Context, url string) error {
	o, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	client := redis.NewClient(o)
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return client.Publish(ctx, forgetChannel, "1").Err()
}

func (b *keyBroadcast) Close() {
	b.sub.Close()
	<-b.done
	b.client.Close()
}
