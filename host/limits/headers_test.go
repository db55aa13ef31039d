package limits

import (
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestHeaders(t *testing.T) {
	r := Result{n: 2}
	r.scopes[0] = Status{Scope: "client",
		Requests:  Window{Limit: 60, Remaining: 59},
		Tokens:    Window{Limit: 10_000, Remaining: 0, Reset: 1500 * time.Microsecond},
		DayTokens: Window{Limit: 1_000_000, Remaining: 900, Reset: 9*time.Hour + 12*time.Minute + 59*time.Second}}
	r.scopes[1] = Status{Scope: "department",
		Tokens:     Window{Limit: 50_000, Remaining: 10},
		MonthMoney: Window{Limit: 50_000_000_000, Remaining: 49_998_765_000, Reset: 6 * time.Minute}}
	got := map[string]string{}
	r.Headers(func(k, v string) { got[k] = v })
	want := map[string]string{
		// The per-minute windows of the tightest scope, OpenAI's names; the
		// daily budget has its own.
		"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "0s",
		"x-ratelimit-limit-tokens": "10000", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "2ms",
		"x-sluice-budget-limit-tokens-day": "1000000", "x-sluice-budget-remaining-tokens-day": "900", "x-sluice-budget-reset-tokens-day": "9h12m59s",
		"x-sluice-budget-limit-usd-month": "50.00", "x-sluice-budget-remaining-usd-month": "49.998765", "x-sluice-budget-reset-usd-month": "6m0s",
		// Each scope's own.
		"x-ratelimit-client-limit-requests": "60", "x-ratelimit-client-remaining-requests": "59", "x-ratelimit-client-reset-requests": "0s",
		"x-ratelimit-client-limit-tokens": "10000", "x-ratelimit-client-remaining-tokens": "0", "x-ratelimit-client-reset-tokens": "2ms",
		"x-sluice-budget-client-limit-tokens-day": "1000000", "x-sluice-budget-client-remaining-tokens-day": "900", "x-sluice-budget-client-reset-tokens-day": "9h12m59s",
		"x-ratelimit-department-limit-tokens": "50000", "x-ratelimit-department-remaining-tokens": "10", "x-ratelimit-department-reset-tokens": "0s",
		"x-sluice-budget-department-limit-usd-month": "50.00", "x-sluice-budget-department-remaining-usd-month": "49.998765", "x-sluice-budget-department-reset-usd-month": "6m0s",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("headers:\n got %v\nwant %v", got, want)
	}

	none := map[string]string{}
	(&Result{n: 1}).Headers(func(k, v string) { none[k] = v })
	if len(none) != 0 {
		t.Fatalf("an unlimited scope wrote headers: %v", none)
	}
}

// A rate limit's 429 says when to retry in the units every SDK reads, and
// the refused window's reset says the same; a budget's says not to retry.
func TestHeadersOfADenial(t *testing.T) {
	m, _ := newClockedMemory(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	c, dp := client(Limits{RPM: 2}), dept(Limits{RPM: 5, TPM: 1000})
	mustAdmit(t, m, Cost{Tokens: 10}, c, dp)
	mustAdmit(t, m, Cost{Tokens: 10}, c, dp)
	_, out := reserve(t, m, Cost{Tokens: 10}, c, dp)
	got := map[string]string{}
	out.Headers(func(k, v string) { got[k] = v })
	for k, v := range map[string]string{
		"x-ratelimit-remaining-requests":            "0",
		"x-ratelimit-reset-requests":                "1m30s", // two requests at :00 weigh until :30 of the next minute
		"x-ratelimit-department-remaining-requests": "3",
		"x-ratelimit-department-reset-requests":     "0s",
		"x-ratelimit-remaining-tokens":              "980",
		"retry-after":                               "90",
		"retry-after-ms":                            "90000",
		"x-should-retry":                            "",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}

	b := Scope{Name: "client", Key: "client:bob", Limits: Limits{RPM: 100, DailyTokens: 100}}
	mustAdmit(t, m, Cost{Tokens: 100}, b)
	_, out = reserve(t, m, Cost{Tokens: 10}, b)
	clear(got)
	out.Headers(func(k, v string) { got[k] = v })
	for k, v := range map[string]string{
		"x-sluice-budget-remaining-tokens-day": "0",
		"x-sluice-budget-reset-tokens-day":     "12h0m0s",
		"retry-after":                          "43200", // the end of the day, not a minute
		"retry-after-ms":                       "",
		"x-should-retry":                       "false",
		"x-ratelimit-remaining-requests":       "99",
		"x-ratelimit-reset-requests":           "0s",
	} {
		if got[k] != v {
			t.Errorf("budget: %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func TestUSD(t *testing.T) {
	for nanos, want := range map[int64]string{0: "0.00", 1_500_000_000: "1.50", 2_345_000: "0.002345", 320: "0.00000032", 50_000_000_000: "50.00"} {
		if got := usd(nanos); got != want {
			t.Errorf("usd(%d) = %q, want %q", nanos, got, want)
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

// The reset is written without time.Duration.String, to spare the request
// path its allocation: it must still write exactly what String would.
func TestResetStringIsDurationString(t *testing.T) {
	check := func(d time.Duration) {
		want := "0s"
		if d > 0 {
			want = (d + time.Millisecond - 1).Truncate(time.Millisecond).String()
		}
		if got := resetString(d); got != want {
			t.Fatalf("resetString(%d) = %q, want %q", int64(d), got, want)
		}
	}
	for _, d := range []time.Duration{-1, 0, 1, time.Millisecond, 999 * time.Millisecond, time.Second, 1500 * time.Millisecond,
		1050 * time.Millisecond, 1005 * time.Millisecond, time.Minute, time.Hour, 25*time.Hour + 1, 31 * 24 * time.Hour} {
		check(d)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		check(time.Duration(r.Int64N(int64(40 * 24 * time.Hour))))
	}
}

func TestHeadersDoNotAllocatePerValue(t *testing.T) {
	r := &Result{n: 1}
	r.scopes[0] = (Status{Scope: "client",
		Requests:   Window{Limit: 60, Remaining: 59, Reset: 1500 * time.Millisecond},
		Tokens:     Window{Limit: 100_000, Remaining: 99_000},
		DayTokens:  Window{Limit: 1_000_000, Remaining: 1, Reset: 9 * time.Hour},
		MonthMoney: Window{Limit: 50e9, Remaining: 49_998_765_000, Reset: 200 * time.Hour}})
	r.Denial = &Denial{Scope: "client", Kind: KindRPM, RetryAfter: 1500 * time.Millisecond}
	headers := map[string]string{}
	r.Headers(func(k, v string) { headers[k] = v })
	for k, want := range map[string]string{"x-ratelimit-reset-requests": "1.5s", "x-ratelimit-remaining-tokens": "99000",
		"x-sluice-budget-reset-tokens-day": "9h0m0s", "x-sluice-budget-remaining-usd-month": "49.998765",
		"x-ratelimit-client-limit-requests": "60"} {
		if headers[k] != want {
			t.Errorf("%s: %q, want %q (all: %v)", k, headers[k], want, headers)
		}
	}
	var h fasthttp.ResponseHeader
	r.SetHeaders(&h) // the first call sizes the header's own storage
	if n := testing.AllocsPerRun(100, func() { h.Reset(); r.SetHeaders(&h) }); n != 0 {
		t.Fatalf("SetHeaders allocates %.0f times per call", n)
	}
	if got := string(h.Peek("x-sluice-budget-reset-tokens-day")); got != "9h0m0s" {
		t.Fatalf("SetHeaders wrote %q", got)
	}
}

func usd(nanos int64) string { return string(appendUSD(nil, nanos)) }

func resetString(d time.Duration) string { return string(appendReset(nil, d)) }
