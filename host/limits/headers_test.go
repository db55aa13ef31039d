package limits

import (
	"maps"
	"testing"
	"time"
)

func TestHeaders(t *testing.T) {
	r := Result{n: 2}
	r.scopes[0] = Status{Scope: "client",
		Requests: Window{Limit: 60, Remaining: 59, Reset: 1500 * time.Microsecond},
		Tokens:   Window{Limit: 1000, Remaining: 900, Reset: time.Hour}}
	r.scopes[1] = Status{Scope: "department",
		Tokens: Window{Limit: 50_000, Remaining: 10, Reset: 6 * time.Minute}}
	got := map[string]string{}
	r.Headers(func(k, v string) { got[k] = v })
	want := map[string]string{
		// The tightest of the two scopes.
		"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "2ms",
		"x-ratelimit-limit-tokens": "50000", "x-ratelimit-remaining-tokens": "10", "x-ratelimit-reset-tokens": "6m0s",
		// Each scope's own.
		"x-ratelimit-client-limit-requests": "60", "x-ratelimit-client-remaining-requests": "59", "x-ratelimit-client-reset-requests": "2ms",
		"x-ratelimit-client-limit-tokens": "1000", "x-ratelimit-client-remaining-tokens": "900", "x-ratelimit-client-reset-tokens": "1h0m0s",
		"x-ratelimit-department-limit-tokens": "50000", "x-ratelimit-department-remaining-tokens": "10", "x-ratelimit-department-reset-tokens": "6m0s",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("headers:\n got %v\nwant %v", got, want)
	}

	r.Denial = &Denial{Kind: KindRPM, RetryAfter: 1200 * time.Millisecond}
	clear(got)
	r.Headers(func(k, v string) { got[k] = v })
	if got["retry-after"] != "2" {
		t.Fatalf("retry-after = %q, want 2 (whole seconds, rounded up)", got["retry-after"])
	}

	none := map[string]string{}
	(&Result{n: 1}).Headers(func(k, v string) { none[k] = v })
	if len(none) != 0 {
		t.Fatalf("an unlimited scope wrote headers: %v", none)
	}
}

func TestHeadersFromAReservation(t *testing.T) {
	m, _ := newClockedMemory(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	c, dp := client(Limits{RPM: 2}), dept(Limits{RPM: 5, TPM: 1000})
	mustAdmit(t, m, Cost{Tokens: 10}, c, dp)
	mustAdmit(t, m, Cost{Tokens: 10}, c, dp)
	_, out := reserve(t, m, Cost{Tokens: 10}, c, dp)
	got := map[string]string{}
	out.Headers(func(k, v string) { got[k] = v })
	for k, v := range map[string]string{
		"x-ratelimit-remaining-requests":            "0",
		"x-ratelimit-department-remaining-requests": "3",
		"x-ratelimit-remaining-tokens":              "980",
		"retry-after":                               "90", // two requests at :00 weigh until :30 of the next minute
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func TestDollars(t *testing.T) {
	for nanos, want := range map[int64]string{0: "$0.00", 1_500_000_000: "$1.50", 2_345_000: "$0.002345", 320: "$0.00000032", 50_000_000_000: "$50.00"} {
		if got := dollars(nanos); got != want {
			t.Errorf("dollars(%d) = %q, want %q", nanos, got, want)
		}
	}
}
