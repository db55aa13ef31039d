package accounts

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/tags"
)

// ErrInvalidKeyRequest is wrapped by errors about what a key was asked to
// be: a bad expiry, a negative limit.
var ErrInvalidKeyRequest = errors.New("invalid key request")

// ExpiringWithin is how close to its expiry a key is flagged: in `keys
// list`, the admin API and the keys-expiring metric.
const ExpiringWithin = 7 * 24 * time.Hour

// NewKey is what creating a key takes; the admin API reads it as JSON.
type NewKey struct {
	ClientID string `json:"client_id"`
	Name     string `json:"name"`
	// Expires is a lifetime ("90d", "36h") or a time ("2027-03-01",
	// RFC 3339); empty for a key that does not expire.
	Expires string            `json:"expires"`
	Limits  KeyLimits         `json:"limits"`
	Models  []string          `json:"models"`
	Tags    map[string]string `json:"tags"`
	// CreatedBy is set by the caller of the service, never by a request.
	CreatedBy string `json:"-"`
	// rotatedFrom is the key a rotation replaces.
	rotatedFrom string
}

// KeyLimits are a key's own limits as an operator writes them, with money
// in dollars.
type KeyLimits struct {
	RPM             int64   `json:"rpm,omitempty"`
	TPM             int64   `json:"tpm,omitempty"`
	DailyTokens     int64   `json:"daily_tokens,omitempty"`
	MonthlyTokens   int64   `json:"monthly_tokens,omitempty"`
	MonthlySpendUSD float64 `json:"monthly_spend_usd,omitempty"`
}

func (l KeyLimits) store() store.KeyLimits {
	return store.KeyLimits{RPM: l.RPM, TPM: l.TPM, DailyTokens: l.DailyTokens, MonthlyTokens: l.MonthlyTokens,
		MonthlyNanos: int64(math.Round(l.MonthlySpendUSD * 1e9))}
}

// LimitsOf is a key's limits as an operator writes them.
func LimitsOf(s store.KeyScope) KeyLimits { return limitsJSON(s.Limits) }

// ExpiresSoon reports whether k expires within ExpiringWithin of now (and
// has not yet).
func ExpiresSoon(k store.Key, now time.Time) bool {
	return !k.ExpiresAt.IsZero() && !k.Expired(now) && k.ExpiresAt.Sub(now) <= ExpiringWithin
}

func limitsJSON(l store.KeyLimits) KeyLimits {
	return KeyLimits{RPM: l.RPM, TPM: l.TPM, DailyTokens: l.DailyTokens, MonthlyTokens: l.MonthlyTokens,
		MonthlySpendUSD: float64(l.MonthlyNanos) / 1e9}
}

// maxSpendUSD bounds a key's monthly spend so that it fits nano-dollars.
const maxSpendUSD = 1e9

// expiry is when the key expires, from now; zero for never.
func (nk NewKey) expiry(now time.Time) (time.Time, error) {
	l := nk.Limits
	if l.RPM < 0 || l.TPM < 0 || l.DailyTokens < 0 || l.MonthlyTokens < 0 || l.MonthlySpendUSD < 0 ||
		l.MonthlySpendUSD > maxSpendUSD || math.IsNaN(l.MonthlySpendUSD) {
		return time.Time{}, fmt.Errorf("%w: limits must be zero or positive (and monthly_spend_usd at most %g)", ErrInvalidKeyRequest, maxSpendUSD)
	}
	for name, value := range nk.Tags {
		if err := tags.Check(name, value); err != nil {
			return time.Time{}, fmt.Errorf("%w: %v", ErrInvalidKeyRequest, err)
		}
	}
	if nk.Expires == "" {
		return time.Time{}, nil
	}
	at, err := ParseExpiry(nk.Expires, now)
	if err != nil {
		return time.Time{}, err
	}
	if !at.After(now) {
		return time.Time{}, fmt.Errorf("%w: expiry %s is not in the future", ErrInvalidKeyRequest, at.Format(time.RFC3339))
	}
	return at, nil
}

// ParseExpiry reads an expiry as a lifetime from now ("90d", "12h30m") or a
// time ("2027-03-01" at 00:00 UTC, or RFC 3339).
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 && n <= 36500 {
			return now.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: expiry %q: want a lifetime such as 90d or 36h, or a date such as 2027-03-01", ErrInvalidKeyRequest, s)
}
