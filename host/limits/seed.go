package limits

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// sweepBatch is how many expired leases one sweep call refunds.
const sweepBatch = 100

// sweep refunds the reservations whose lease expired, a batch at a time,
// while Redis answers. Every replica sweeps, every RetryEvery: whichever
// comes first refunds a dead replica's reservations.
func (r *Redis) sweep(ctx context.Context) {
	if r.leases == "" || r.downUntil.Load() != 0 {
		return
	}
	for range 100 {
		n, err := sweepScript.Run(ctx, r.client, nil, r.window, keyTTL, r.leases, sweepBatch).Int()
		if err != nil {
			r.warn("sweeping expired reservations failed", err)
			return
		}
		if n > 0 {
			r.leasesExpired.Add(uint64(n))
			r.log.Warn("refunded reservations whose commit never came (their replica stopped?)", "reservations", n)
		}
		if n < sweepBatch {
			return
		}
	}
}

// unseeded reports whether a script answered that Redis has lost its
// counters (the epoch marker is gone).
func unseeded(vals []int64) bool { return len(vals) == 1 && vals[0] == -1 }

// seedBatch is how many scopes one seed script call writes.
const seedBatch = 256

// seedTimeout bounds a re-seed: the ledger query and the writes.
const seedTimeout = 10 * time.Second

// reseed writes the ledger's counts into a Redis that lost its own, and then
// the epoch marker, so that nothing is admitted by counters that forgot what
// was spent. Requests that find the marker gone wait here for one seed;
// another replica seeding at the same time is harmless, as the first marker
// written stops the others' writes.
func (r *Redis) reseed(ctx context.Context) error {
	r.seedMu.Lock()
	defer r.seedMu.Unlock()
	if n, err := r.client.Exists(ctx, r.epoch).Result(); err != nil {
		return err
	} else if n == 1 {
		return nil // seeded while this request waited
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), seedTimeout)
	defer cancel()
	usage, err := r.seed(sctx)
	if err != nil {
		return fmt.Errorf("re-seeding the counters from the ledger: %w", err)
	}
	scopes := make([]string, 0, len(usage))
	for k := range usage {
		scopes = append(scopes, k)
	}
	slices.Sort(scopes)
	// A random epoch below 2^52, which Lua's doubles hold exactly.
	var b [8]byte
	rand.Read(b[:])
	value := int64(binary.BigEndian.Uint64(b[:])>>12) | 1
	for start := 0; ; start += seedBatch {
		batch := scopes[start:min(start+seedBatch, len(scopes))]
		last := start+seedBatch >= len(scopes)
		keys := make([]string, len(batch))
		args := []any{r.window, keyTTL, r.epoch, value, 0}
		if last {
			args[4] = 1
		}
		for i, k := range batch {
			keys[i] = r.key(k)
			u := usage[k]
			args = append(args, u.MinuteRequests, u.MinuteTokens, u.DayTokens, u.MonthTokens, u.MonthNanos)
		}
		written, err := seedScript.Run(sctx, r.client, keys, args...).Int()
		if err != nil {
			return fmt.Errorf("re-seeding the counters: %w", err)
		}
		if written == 0 {
			return nil // another replica seeded first
		}
		if last {
			break
		}
	}
	for _, k := range scopes {
		r.cache.Del(k)
	}
	r.reseeds.Add(1)
	r.log.Warn("redis had lost its counters (no epoch marker): re-seeded them from the ledger before admitting by them",
		"scopes", len(scopes), "epoch", value)
	return nil
}
