// Package store keeps Sluice's durable state: clients, their API keys and the
// usage ledger used for billing and audit.
//
// Keys are stored only as SHA-256 hashes. The ledger records finding types and
// counts, never prompt text or matched values. The SQL is kept portable so that
// a PostgreSQL driver can share the schema; callers depend only on Store.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// ErrNotFound is returned when a client or key does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a client or key with the same id (or key hash)
// already exists.
var ErrExists = errors.New("already exists")

// ErrInvalid is returned, wrapped with the offending field, when an argument
// fails validation. Retrying the same call cannot succeed.
var ErrInvalid = errors.New("invalid argument")

// Client is an application that calls Sluice through one or more keys.
type Client struct {
	ID         string
	Department string
	Tier       string
	Labels     map[string]string
	// CreatedAt defaults to the time of CreateClient when zero.
	CreatedAt time.Time
}

// Key is an API key of a client. Only its hash is stored.
type Key struct {
	ID       string
	ClientID string
	// Prefix is a short non-secret display prefix such as "sk-sl-AbCd",
	// at most MaxKeyPrefix bytes, shown in listings.
	Prefix string
	Hash   [32]byte
	// CreatedAt defaults to the time of CreateKey when zero.
	CreatedAt time.Time
	// RevokedAt is zero while the key is active.
	RevokedAt time.Time
}

// Active reports whether the key has not been revoked.
func (k Key) Active() bool { return k.RevokedAt.IsZero() }

// MaxKeyPrefix bounds Key.Prefix so that a whole key cannot end up stored in
// the clear by mistake.
const MaxKeyPrefix = 16

// Usage sources recorded in UsageEvent.UsageSource.
const (
	UsageUpstream  = "upstream"  // the upstream reported the token counts
	UsageEstimated = "estimated" // Sluice counted them itself
	UsageNone      = "none"      // no tokens were used, e.g. a denied request
)

// UsageEvent is one ledger record: one request, allowed or denied.
type UsageEvent struct {
	Time       time.Time
	RequestID  string
	ClientID   string // empty when the caller was not authenticated
	Department string
	KeyID      string
	Model      string
	Endpoint   string
	Stream     bool

	PromptTokens, CompletionTokens, TotalTokens int64
	CostMicros                                  int64 // millionths of a US dollar

	LatencyMS int64
	Status    int
	Code      string // decision or error code, "" when ok
	// Findings holds finding types and counts, e.g. "EMAIL:2,US_SSN:1";
	// never matched text.
	Findings string
	// UsageSource is UsageUpstream, UsageEstimated or UsageNone; "" is
	// stored as UsageNone.
	UsageSource string
}

// Report groupings accepted by ReportQuery.GroupBy.
const (
	GroupByDepartment = "department"
	GroupByClient     = "client"
	GroupByModel      = "model"
)

// ReportQuery selects ledger events in [From, To) and groups them. A zero
// From or To leaves that side of the range open.
type ReportQuery struct {
	From, To time.Time
	GroupBy  string // GroupByDepartment, GroupByClient or GroupByModel
}

// ReportRow is the sum of one group's events.
type ReportRow struct {
	Group                                    string
	Requests, PromptTokens, CompletionTokens int64
	TotalTokens, CostMicros                  int64
}

// UsageTotal is one client's usage since some instant, used to rebuild the
// in-process rate and budget counters at start.
type UsageTotal struct {
	ClientID, Department              string
	Requests, TotalTokens, CostMicros int64
}

// Store is Sluice's durable state. Implementations are safe for concurrent use.
type Store interface {
	// CreateClient adds a client; ErrExists if the id is taken.
	CreateClient(ctx context.Context, c Client) error
	// GetClient returns the client with that id or ErrNotFound.
	GetClient(ctx context.Context, id string) (Client, error)
	// ListClients returns all clients ordered by id.
	ListClients(ctx context.Context) ([]Client, error)

	// CreateKey adds a key to an existing client: ErrNotFound if the client
	// does not exist, ErrExists if the key id or hash is taken.
	CreateKey(ctx context.Context, k Key) error
	// KeyByHash returns the key with that hash and its client, or
	// ErrNotFound. Revoked keys are returned too: the caller checks Active.
	KeyByHash(ctx context.Context, hash [32]byte) (Key, Client, error)
	// RevokeKey marks a key revoked at the given time. Revoking a revoked
	// key keeps its first revocation time. ErrNotFound if there is no such key.
	RevokeKey(ctx context.Context, id string, at time.Time) error
	// ListKeys returns the keys of one client, or of all clients when
	// clientID is "", ordered by creation time.
	ListKeys(ctx context.Context, clientID string) ([]Key, error)

	// InsertUsage writes a batch of events in one transaction: all or none.
	InsertUsage(ctx context.Context, events []UsageEvent) error
	// Report sums the events in the query's range per group, sorted by Group.
	Report(ctx context.Context, q ReportQuery) ([]ReportRow, error)
	// UsageSince sums, per client, the events with Time >= since. Requests
	// counts the events that used tokens (UsageSource not UsageNone): the
	// requests a limiter admitted and that reached a model. Denied requests
	// are left out, so a restart does not turn a client's refusals into a
	// rate limit. Events without a client are left out.
	UsageSince(ctx context.Context, since time.Time) ([]UsageTotal, error)

	// Close releases the store. It must not be used afterwards.
	Close() error
}

// Times are stored as UTC unix nanoseconds, which int64 holds for the years
// 1678 to 2262; outside that range UnixNano is undefined, so it is refused.
var (
	minTime = time.Unix(0, -1<<63).UTC()
	maxTime = time.Unix(0, 1<<63-1).UTC()
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// checkID rejects ids that would be awkward in URLs, logs and CLI output.
func checkID(what, id string) error {
	switch {
	case id == "":
		return invalid("%s is empty", what)
	case len(id) > 128:
		return invalid("%s is longer than 128 bytes", what)
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return invalid("%s %q contains whitespace or control characters", what, id)
	}
	return nil
}

func checkTime(what string, t time.Time) error {
	if t.Before(minTime) || t.After(maxTime) {
		return invalid("%s %s is outside the storable range", what, t.Format(time.RFC3339))
	}
	return nil
}

func validateClient(c Client) error {
	if err := checkID("client id", c.ID); err != nil {
		return err
	}
	if strings.TrimSpace(c.Department) == "" {
		return invalid("client %q: department is empty", c.ID)
	}
	if strings.TrimSpace(c.Tier) == "" {
		return invalid("client %q: tier is empty", c.ID)
	}
	for k := range c.Labels {
		if k == "" {
			return invalid("client %q: label with an empty name", c.ID)
		}
	}
	return checkTime("client created_at", c.CreatedAt)
}

func validateKey(k Key) error {
	if err := checkID("key id", k.ID); err != nil {
		return err
	}
	if err := checkID("key client id", k.ClientID); err != nil {
		return err
	}
	if k.Prefix == "" {
		return invalid("key %q: prefix is empty", k.ID)
	}
	if len(k.Prefix) > MaxKeyPrefix {
		return invalid("key %q: prefix is longer than %d bytes (store a display prefix, never the key)", k.ID, MaxKeyPrefix)
	}
	if k.Hash == ([32]byte{}) {
		return invalid("key %q: hash is all zero", k.ID)
	}
	if err := checkTime("key created_at", k.CreatedAt); err != nil {
		return err
	}
	if !k.RevokedAt.IsZero() {
		return checkTime("key revoked_at", k.RevokedAt)
	}
	return nil
}

// validateUsage names only the request id and the field, never event
// contents, because its errors end up in logs.
func validateUsage(ev UsageEvent) error {
	if ev.RequestID == "" {
		return invalid("usage event without a request id")
	}
	if ev.Time.IsZero() {
		return invalid("usage event %q: time is zero", ev.RequestID)
	}
	if err := checkTime(fmt.Sprintf("usage event %q: time", ev.RequestID), ev.Time); err != nil {
		return err
	}
	if ev.PromptTokens < 0 || ev.CompletionTokens < 0 || ev.TotalTokens < 0 ||
		ev.CostMicros < 0 || ev.LatencyMS < 0 {
		return invalid("usage event %q: negative token count, cost or latency", ev.RequestID)
	}
	switch ev.UsageSource {
	case UsageUpstream, UsageEstimated, UsageNone, "":
	default:
		return invalid("usage event %q: usage source must be %q, %q or %q",
			ev.RequestID, UsageUpstream, UsageEstimated, UsageNone)
	}
	return nil
}
