package bench

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/internal/testenv"
)

// TestMeasureLimits runs the limits section briefly against the test Redis
// and holds the limiter to its promises: one round trip per reservation and
// per commit, none for a flood against a spent budget.
func TestMeasureLimits(t *testing.T) {
	r, err := MeasureLimits(context.Background(), LimitSettings{
		RedisURL: testenv.Redis(t), Rounds: 2, Duration: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Memory.PerOp <= 0 || r.Memory.PerOp > time.Millisecond || r.Memory.ReserveRoundTrips != 0 || r.Memory.AimMet != nil {
		t.Errorf("memory figure %+v", r.Memory)
	}
	if r.Redis == nil || r.Flood == nil || r.Ping == nil || r.RedisSkipped != "" {
		t.Fatalf("no Redis figures with a Redis server: %+v", r)
	}
	if r.Redis.ReserveRoundTrips != 1 || r.Redis.CommitRoundTrips != 1 || !*r.Redis.AimMet {
		t.Errorf("reserve and commit cost %.2f and %.2f round trips, want 1 each", r.Redis.ReserveRoundTrips, r.Redis.CommitRoundTrips)
	}
	if r.Ping.ReserveRoundTrips != 1 {
		t.Errorf("a PING counted as %.2f round trips: the hook miscounts", r.Ping.ReserveRoundTrips)
	}
	if r.Flood.ReserveRoundTrips > MaxFloodRoundTrips || !*r.Flood.AimMet {
		t.Errorf("a flood against a spent budget costs %.4f round trips per request", r.Flood.ReserveRoundTrips)
	}
	// Two script calls cannot take less than one bare round trip.
	if r.Redis.PingRatio < 1 || r.Redis.Reserve <= 0 || r.Redis.Commit <= 0 {
		t.Errorf("redis figure %+v against a PING of %s", r.Redis, r.Ping.PerOp)
	}
}

func TestMeasureLimitsWithoutRedis(t *testing.T) {
	r, err := MeasureLimits(context.Background(), LimitSettings{Rounds: 1, Duration: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Redis != nil || r.RedisSkipped == "" || r.Memory.PerOp <= 0 {
		t.Errorf("without a Redis server: %+v; want the memory figure and why Redis was skipped", r)
	}
}

// TestMeasureLimitsStaysOnThisMachine holds the limits section to the
// tool's rule: load goes to loopback only.
func TestMeasureLimitsStaysOnThisMachine(t *testing.T) {
	_, err := MeasureLimits(context.Background(), LimitSettings{RedisURL: "redis://192.0.2.1:6379/0", Rounds: 1, Duration: time.Millisecond})
	if err == nil {
		t.Error("measured against a Redis server off this machine")
	}
}
