// Package store keeps Sluice's durable state: clients, their API keys and the
// usage ledger used for billing and audit, in an embedded SQLite file (one
// machine) or in PostgreSQL (several replicas). Callers depend only on Store.
//
// Keys are stored only as SHA-256 hashes. The ledger records finding types and
// counts, never prompt text or matched values.
//
// Both databases run the same SQL and the same schema: one set of migrations
// (migrations/*.sql) written in the SQL they share, with a placeholder where a
// column type differs. Opening a store applies the missing migrations, each in
// a transaction; replicas that start together against one PostgreSQL database
// take turns through an advisory lock.
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
	// DisabledAt is when the client was disabled; zero while enabled. A
	// disabled client's keys are refused.
	DisabledAt time.Time
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
	// Name is the owner's name for the key, such as "ci" or "laptop".
	Name string
	// ExpiresAt is when the key stops working; zero for never.
	ExpiresAt time.Time
	// Scope is what the key narrows of its client's limits and models.
	Scope KeyScope
	// CreatedBy names who created the key: "cli", "admin-api" or an
	// operator's name; never a secret.
	CreatedBy string
	// RotatedFrom is the id of the key this one replaced, if it was issued
	// by a rotation.
	RotatedFrom string
}

// Active reports whether the key has not been revoked.
func (k Key) Active() bool { return k.RevokedAt.IsZero() }

// Expired reports whether the key has expired at now.
func (k Key) Expired(now time.Time) bool { return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) }

// KeyScope is what a key carries besides its client's: its own limits and
// budgets, enforced in addition to its client's and department's; a model
// allow-list that narrows what the client's tier allows; and tags.
type KeyScope struct {
	Limits KeyLimits `json:"limits,omitzero"`
	// Models are patterns as in a tier's models ("gpt-4o*"); empty allows
	// every model the tier allows.
	Models []string          `json:"models,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
}

// KeyLimits are a key's own limits; 0 means none of the key's own.
type KeyLimits struct {
	RPM           int64 `json:"rpm,omitempty"`
	TPM           int64 `json:"tpm,omitempty"`
	DailyTokens   int64 `json:"daily_tokens,omitempty"`
	MonthlyTokens int64 `json:"monthly_tokens,omitempty"`
	// MonthlyNanos is money per calendar month, in nano-dollars.
	MonthlyNanos int64 `json:"monthly_nanos,omitempty"`
}

// Any reports whether any limit is set.
func (l KeyLimits) Any() bool { return l != KeyLimits{} }

// MaxKeyPrefix bounds Key.Prefix so that a whole key cannot end up stored in
// the clear by mistake.
const MaxKeyPrefix = 16

// Usage sources recorded in UsageEvent.UsageSource.
const (
	UsageUpstream  = "upstream"  // the upstream reported the token counts
	UsageEstimated = "estimated" // Sluice counted them itself
	UsageNone      = "none"      // no tokens were used, e.g. a denied request
	// UsageReserved: the caller left a stream before the provider said what
	// it billed, and its usage could not be read after: the request is
	// billed its reservation (and never less than what was relayed).
	UsageReserved = "reserved"
	// UsageShutdown: the stream was still open at the shutdown deadline and
	// was ended before the provider said what it billed: it is billed what
	// was relayed.
	UsageShutdown = "shutdown"
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
	CostNanos                                   int64 // billionths of a US dollar (nano-dollars)

	LatencyMS int64
	Status    int
	Code      string // decision or error code, "" when ok
	// Findings holds finding types and counts, e.g. "EMAIL:2,US_SSN:1";
	// never matched text.
	Findings string
	// UsageSource is UsageUpstream, UsageEstimated or UsageNone; "" is
	// stored as UsageNone.
	UsageSource string
	// Tags are the request's attribution tags in their canonical form
	// ("env=prod,project=search"; see package tags), "" for none.
	Tags string
	// Deployment is the deployment that answered, "" when no upstream was
	// called; Attempts lists every upstream call as JSON when there was
	// more than one (see migration 0008), "" otherwise.
	Deployment string
	Attempts   string
	// UpstreamType is the type of the upstream of Deployment (openai,
	// azure_openai, anthropic, bedrock, gemini, mock), "" when no upstream
	// was called (see migration 0010).
	UpstreamType string
	// Cache is what the reply cache did: CacheHit, CacheMiss, CacheBypass,
	// or "" when the request's tier does not cache. A hit costs nothing
	// (CostNanos 0); SavedNanos is what it would have cost.
	Cache      string
	SavedNanos int64
}

// Reply cache outcomes recorded in UsageEvent.Cache.
const (
	CacheHit    = "hit"
	CacheMiss   = "miss"
	CacheBypass = "bypass"
)

// Report groupings accepted by ReportQuery.GroupBy.
const (
	GroupByDepartment = "department"
	GroupByClient     = "client"
	GroupByModel      = "model"
	// GroupByEndpoint groups by the API called: /v1/chat/completions,
	// /v1/responses, /v1/embeddings…
	GroupByEndpoint = "endpoint"
	// GroupByDeployment groups by the deployment that answered (see
	// UsageEvent.Deployment): "" for requests no upstream answered.
	GroupByDeployment = "deployment"
	// GroupByUpstreamType groups by the type of the upstream that answered
	// (see UsageEvent.UpstreamType): "" for requests no upstream answered.
	GroupByUpstreamType = "upstream_type"
	// GroupByCache groups by what the reply cache did: hit, miss, bypass,
	// or "" (not cached).
	GroupByCache = "cache"
)

// ReportQuery selects ledger events in [From, To) and groups them. A zero
// From or To leaves that side of the range open.
type ReportQuery struct {
	From, To time.Time
	// GroupBy is GroupByDepartment, GroupByClient, GroupByModel, GroupByEndpoint, or
	// GroupByTag followed by a tag's name ("tag:project"): requests without
	// that tag form the group "".
	GroupBy string
	// Tag, when set ("project=search"), counts only the requests that
	// carry that tag.
	Tag string
}

// GroupByTag starts a grouping by a tag's value: "tag:project".
const GroupByTag = "tag:"

// GroupByNames lists the groupings a report takes, for messages.
const GroupByNames = "department, client, model, endpoint, deployment, upstream_type, cache or tag:NAME"

// ValidGroupBy reports whether a report can be grouped by groupBy.
func ValidGroupBy(groupBy string) bool {
	switch groupBy {
	case GroupByDepartment, GroupByClient, GroupByModel, GroupByEndpoint, GroupByDeployment, GroupByUpstreamType, GroupByCache:
		return true
	}
	return strings.HasPrefix(groupBy, GroupByTag) && len(groupBy) > len(GroupByTag)
}

// ReportRow is the sum of one group's events.
type ReportRow struct {
	Group                                    string
	Requests, PromptTokens, CompletionTokens int64
	TotalTokens, CostNanos                   int64
	// CacheHits counts the requests answered from the reply cache, and
	// SavedNanos what their replies would have cost.
	CacheHits, SavedNanos int64
}

// UsageTotal is one client's usage since some instant, used to rebuild the
// in-process rate and budget counters at start.
type UsageTotal struct {
	ClientID, Department             string
	Requests, TotalTokens, CostNanos int64
}

// SeriesQuery selects ledger events in [From, To) and sums them per time
// bucket and group, for charts.
type SeriesQuery struct {
	// From and To are both required.
	From, To time.Time
	// Bucket is the width of a bucket, at least a minute: typically
	// time.Hour or 24*time.Hour. Buckets start at whole multiples of Bucket
	// since the Unix epoch, so days start at UTC midnight whatever From is.
	Bucket  time.Duration
	GroupBy string // GroupByDepartment, GroupByClient, GroupByModel or GroupByEndpoint
}

// SeriesPoint is the sum of one group's events in the bucket that starts at
// Start (UTC).
type SeriesPoint struct {
	Start time.Time
	ReportRow
}

// DenialCount is how many requests in a range ended with one code.
type DenialCount struct {
	Code     string
	Requests int64
}

// Scopes of ScopeUsage.
const (
	ScopeClient     = "client"
	ScopeDepartment = "department"
	ScopeKey        = "key"
)

// Usage is what a scope used in one window. Requests counts the requests that
// reached a model (see UsageSince).
type Usage struct {
	Requests, TotalTokens, CostNanos int64
}

// ScopeUsage is one client's or one department's usage in each window asked
// of UsageWindows: Windows[i] covers the events since the i-th instant.
type ScopeUsage struct {
	Scope   string // ScopeClient, ScopeDepartment or ScopeKey
	ID      string // the client id, the department name or the key id
	Windows []Usage
}

// MaxUsageWindows bounds the windows of one UsageWindows call.
const MaxUsageWindows = 8

// Drivers accepted by Open.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Open opens the store of the named driver: for DriverSQLite, dsn is the
// database file's path (see OpenSQLite); for DriverPostgres, a connection
// string (see OpenPostgres).
func Open(ctx context.Context, driver, dsn string) (Store, error) {
	switch driver {
	case DriverSQLite:
		return OpenSQLite(ctx, dsn)
	case DriverPostgres:
		return OpenPostgres(ctx, dsn)
	}
	return nil, fmt.Errorf("open store: %w", invalid("driver %q: want %q or %q", driver, DriverSQLite, DriverPostgres))
}

// Store is Sluice's durable state. Implementations are safe for concurrent use.
type Store interface {
	// CreateClient adds a client; ErrExists if the id is taken.
	CreateClient(ctx context.Context, c Client) error
	// GetClient returns the client with that id or ErrNotFound.
	GetClient(ctx context.Context, id string) (Client, error)
	// ListClients returns all clients ordered by id.
	ListClients(ctx context.Context) ([]Client, error)
	// UpdateClient replaces a client's department, tier and labels;
	// ErrNotFound if there is no such client (or it was deleted).
	UpdateClient(ctx context.Context, c Client) error
	// DisableClient disables a client at at, or enables it when at is
	// zero; ErrNotFound if there is no such client.
	DisableClient(ctx context.Context, id string, at time.Time) error
	// DeleteClient deletes a client at at: it is no longer listed or
	// found, its keys stop working, its ledger rows stay, and its id
	// cannot be taken again. ErrNotFound if there is no such client.
	DeleteClient(ctx context.Context, id string, at time.Time) error

	// CreateKey adds a key to an existing client: ErrNotFound if the client
	// does not exist, ErrExists if the key id or hash is taken.
	CreateKey(ctx context.Context, k Key) error
	// KeyByHash returns the key with that hash and its client, or
	// ErrNotFound. Revoked keys are returned too: the caller checks Active.
	KeyByHash(ctx context.Context, hash [32]byte) (Key, Client, error)
	// RevokeKey marks a key revoked at the given time. Revoking a revoked
	// key keeps its first revocation time. ErrNotFound if there is no such key.
	RevokeKey(ctx context.Context, id string, at time.Time) error
	// ExpireKey brings a key's expiry forward to at, unless it already
	// expires earlier; ErrNotFound if there is no such key. It never extends
	// a key's life.
	ExpireKey(ctx context.Context, id string, at time.Time) error
	// InsertAudit records a change an operator made.
	InsertAudit(ctx context.Context, ev AuditEvent) error
	// Audit returns the recorded changes q selects, newest first.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
	// ListKeys returns the keys of one client, or of all clients when
	// clientID is "", ordered by creation time.
	ListKeys(ctx context.Context, clientID string) ([]Key, error)

	// InsertUsage writes a batch of events in one transaction: all or none.
	// An event whose request id the ledger already holds is skipped, so
	// that a batch retried after a failure of unknown outcome (the commit
	// reached the database, its acknowledgement did not) is not counted
	// twice. Request ids must therefore be unique.
	InsertUsage(ctx context.Context, events []UsageEvent) error
	// Report sums the events in the query's range per group, sorted by Group.
	// It counts only requests of a client for a model (UsageEvent.ClientID
	// and Model set, and not a lookup of one). Model listings and requests
	// refused before naming a model stay in the ledger for audit, and
	// DenialCounts counts the refused ones, but they are not usage.
	Report(ctx context.Context, q ReportQuery) ([]ReportRow, error)
	// UsageSince sums, per client, the events with Time >= since. Requests
	// counts the events that used tokens (UsageSource not UsageNone): the
	// requests a limiter admitted and that reached a model. Denied requests
	// are left out, so a restart does not turn a client's refusals into a
	// rate limit. Events without a client are left out.
	UsageSince(ctx context.Context, since time.Time) ([]UsageTotal, error)
	// UsageWindows sums, per client and per department, the events since
	// each of the given instants (one to MaxUsageWindows), in one query:
	// what an in-process limiter needs to rebuild its counters at start,
	// for example since the start of the month, of the day and a minute
	// ago. Requests is counted as in UsageSince. Events without a client
	// (or department) are left out of the client (or department) rows.
	// Rows are sorted by Scope, then ID.
	UsageWindows(ctx context.Context, since ...time.Time) ([]ScopeUsage, error)
	// UsageSeries sums the events in the query's range per bucket and
	// group, sorted by Start, then Group. Buckets without events are absent.
	// Like Report, it counts only requests for a model.
	UsageSeries(ctx context.Context, q SeriesQuery) ([]SeriesPoint, error)
	// DenialCounts counts the events in [from, to) that ended with a code
	// (refused by Sluice or failed upstream), per code, most frequent
	// first. A zero from or to leaves that side open.
	DenialCounts(ctx context.Context, from, to time.Time) ([]DenialCount, error)

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

// Reserved is a name no client or department may take: it is the label
// value the metrics give everything beyond their caps (metrics.Other), so a
// client named so would hide among the overflow, or be blamed for it.
const Reserved = "other"

func validateClient(c Client) error {
	if err := checkID("client id", c.ID); err != nil {
		return err
	}
	if strings.EqualFold(c.ID, Reserved) {
		return invalid("client id %q is reserved", c.ID)
	}
	if strings.TrimSpace(c.Department) == "" {
		return invalid("client %q: department is empty", c.ID)
	}
	if strings.EqualFold(strings.TrimSpace(c.Department), Reserved) {
		return invalid("client %q: department %q is reserved", c.ID, c.Department)
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
		if err := checkTime("key revoked_at", k.RevokedAt); err != nil {
			return err
		}
	}
	if !k.ExpiresAt.IsZero() {
		if err := checkTime("key expires_at", k.ExpiresAt); err != nil {
			return err
		}
	}
	if len(k.Name) > MaxKeyName || len(k.CreatedBy) > MaxKeyName {
		return invalid("key %q: name or creator longer than %d bytes", k.ID, MaxKeyName)
	}
	if k.RotatedFrom != "" {
		if err := checkID("key rotated_from", k.RotatedFrom); err != nil {
			return err
		}
	}
	l := k.Scope.Limits
	if l.RPM < 0 || l.TPM < 0 || l.DailyTokens < 0 || l.MonthlyTokens < 0 || l.MonthlyNanos < 0 {
		return invalid("key %q: a negative limit", k.ID)
	}
	if len(k.Scope.Models) > MaxKeyModels || len(k.Scope.Tags) > MaxKeyTags {
		return invalid("key %q: more than %d models or %d tags", k.ID, MaxKeyModels, MaxKeyTags)
	}
	for _, m := range k.Scope.Models {
		if m == "" || len(m) > MaxKeyName {
			return invalid("key %q: a model pattern is empty or longer than %d bytes", k.ID, MaxKeyName)
		}
	}
	for name, v := range k.Scope.Tags {
		if name == "" || len(name) > MaxKeyName || len(v) > MaxKeyName {
			return invalid("key %q: a tag name is empty, or a tag is longer than %d bytes", k.ID, MaxKeyName)
		}
	}
	return nil
}

// Bounds of what a key carries, so that a key row stays small.
const (
	MaxKeyName   = 64
	MaxKeyModels = 32
	MaxKeyTags   = 16
)

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
		ev.CostNanos < 0 || ev.LatencyMS < 0 {
		return invalid("usage event %q: negative token count, cost or latency", ev.RequestID)
	}
	switch ev.UsageSource {
	case UsageUpstream, UsageEstimated, UsageReserved, UsageShutdown, UsageNone, "":
	default:
		return invalid("usage event %q: usage source must be %q, %q, %q, %q or %q",
			ev.RequestID, UsageUpstream, UsageEstimated, UsageReserved, UsageShutdown, UsageNone)
	}
	return nil
}
