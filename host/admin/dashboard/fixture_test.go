package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/store"
)

// now is the dashboard's clock in every test: a Friday afternoon, so that
// "7d" is Saturday 21 to Friday 27 November 2026 and "24h" runs from 16:00
// on the 26th to 16:00 on the 27th.
var now = time.Date(2026, 11, 27, 15, 30, 0, 0, time.UTC)

const adminToken = "test-admin-token"

func at(day, hour, minute, second int) time.Time {
	return time.Date(2026, 11, day, hour, minute, second, 0, time.UTC)
}

// batch is n identical requests of one client at one instant; code is set
// for denied and failed requests, which use no tokens.
type batch struct {
	t                  time.Time
	client, dept       string
	n                  int
	prompt, completion int64
	costMicros         int64
	code               string
	status             int
}

// ledger is the known usage every test reads: five departments, one client
// since deleted, requests without a client, events exactly on and just off
// the edges of the ranges, and denials of six kinds.
var ledger = []batch{
	{t: at(21, 0, 0, 0), client: "sales-crm", dept: "sales", n: 6, prompt: 500, completion: 250, costMicros: 100_000}, // first instant of 7d
	{t: at(21, 9, 0, 0), client: "eng-chat", dept: "eng", n: 4, prompt: 1000, completion: 500, costMicros: 2_500_000},
	{t: at(24, 14, 0, 0), client: "eng-chat", dept: "eng", n: 10, prompt: 2000, completion: 1000, costMicros: 1_234_567},
	{t: at(27, 11, 0, 0), client: "eng-ci", dept: "eng", n: 5, prompt: 100_000, completion: 20_000, costMicros: 3_000_000},
	{t: at(27, 15, 0, 0), client: "sales-crm", dept: "sales", n: 2, prompt: 4000, completion: 1000, costMicros: 750_000},
	{t: at(23, 20, 0, 0), client: "research-nb", dept: "research", n: 3, prompt: 50_000, completion: 50_000, costMicros: 4_000_000},
	{t: at(26, 18, 0, 0), client: "research-lab", dept: "research", n: 1, prompt: 200_000, completion: 100_000, costMicros: 9_876_543},
	{t: at(25, 12, 0, 0), client: "old-bot", dept: "support", n: 2, prompt: 10, completion: 5, costMicros: 1_000},
	// Outside 7d, inside 30d.
	{t: at(10, 12, 0, 0), client: "eng-chat", dept: "eng", n: 1, prompt: 600_000, completion: 400_000, costMicros: 100_000_000},
	{t: at(20, 23, 59, 59), client: "sales-crm", dept: "sales", n: 1, prompt: 800, completion: 200, costMicros: 1_000_000},
	// Outside every range: a day before 30d, and from the next day.
	{t: time.Date(2026, 10, 28, 12, 0, 0, 0, time.UTC), client: "eng-chat", dept: "eng", n: 1, prompt: 1, completion: 1, costMicros: 7},
	{t: at(28, 0, 0, 0), client: "eng-chat", dept: "eng", n: 1, prompt: 1, completion: 1, costMicros: 7},
	// Denied and failed.
	{t: at(25, 9, 0, 0), n: 2, code: "invalid_api_key", status: 401},
	{t: at(27, 14, 0, 0), n: 1, code: "invalid_api_key", status: 401},
	{t: at(27, 15, 10, 0), client: "eng-chat", dept: "eng", n: 4, code: "rate_limit_exceeded", status: 429},
	{t: at(24, 10, 0, 0), client: "sales-crm", dept: "sales", n: 2, code: "pii_detected", status: 400},
	{t: at(26, 17, 0, 0), client: "research-nb", dept: "research", n: 1, code: "budget_exceeded", status: 429},
	{t: at(27, 11, 0, 0), client: "eng-ci", dept: "eng", n: 1, code: "upstream_error", status: 502},
	{t: at(22, 7, 0, 0), client: "eng-chat", dept: "eng", n: 1, code: "outside_business_hours", status: 403},
}

// clients are the clients the store still holds: old-bot was deleted.
var clients = map[string]string{
	"eng-chat": "eng", "eng-ci": "eng", "sales-crm": "sales", "research-nb": "research", "research-lab": "research",
}

func events() []store.UsageEvent {
	var out []store.UsageEvent
	for i, b := range ledger {
		for j := range b.n {
			ev := store.UsageEvent{
				Time:       b.t,
				RequestID:  fmt.Sprintf("req-%d-%d", i, j),
				ClientID:   b.client,
				Department: b.dept,
				Model:      "gpt-4o-mini",
				Endpoint:   "/v1/chat/completions",
				Status:     http.StatusOK,
				Code:       b.code,
			}
			if b.code == "" {
				ev.PromptTokens, ev.CompletionTokens = b.prompt, b.completion
				ev.TotalTokens = b.prompt + b.completion
				ev.CostNanos = b.costMicros * 1000
				ev.UsageSource = store.UsageUpstream
			} else {
				ev.Status = b.status
				ev.UsageSource = store.UsageNone
			}
			out = append(out, ev)
		}
	}
	return out
}

// sums adds up the ledger in [from, to) per group; group picks a batch's
// group and its second result says whether to count the batch at all.
func sums(from, to time.Time, group func(batch) (string, bool)) map[string]totals {
	out := map[string]totals{}
	for _, b := range ledger {
		g, ok := group(b)
		// Requests without a client are not usage (store.Store.Report).
		if !ok || b.client == "" || b.t.Before(from) || !b.t.Before(to) {
			continue
		}
		t := out[g]
		n := int64(b.n)
		t.Requests += n
		if b.code == "" {
			t.PromptTokens += n * b.prompt
			t.CompletionTokens += n * b.completion
			t.TotalTokens += n * (b.prompt + b.completion)
			t.CostNanos += n * b.costMicros * 1000
		}
		out[g] = t
	}
	return out
}

func byDepartment(b batch) (string, bool) { return b.dept, true }
func byClient(b batch) (string, bool)     { return b.client, b.client != "" }

// openLedger returns a SQLite store in a temporary file holding the ledger.
func openLedger(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for id, dept := range clients {
		if err := st.CreateClient(ctx, store.Client{ID: id, Department: dept, Tier: "standard"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.InsertUsage(ctx, events()); err != nil {
		t.Fatal(err)
	}
	return st
}

// health is what the gateway under test reports: one healthy plugin, one
// whose last reload was refused, and a policy set with a shadow that
// disagrees.
func health(context.Context) Health {
	loaded := now.Add(-3 * time.Hour)
	return Health{
		Plugins: []plugin.Status{
			{Name: "pii", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", LoadedAt: loaded, InstancesDiscarded: 0},
			{Name: "contentfilter", SHA256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752", LoadedAt: loaded,
				Reloads: 2, FailedReloads: 1, LastError: "module sha256 does not match the pinned digest", LastErrorAt: now.Add(-time.Hour)},
		},
		Policy: &policy.Status{
			Enforced: policy.SetStatus{Source: "policies", Revision: "3f2a9c41d07be8a1", LoadedAt: loaded,
				Files: []string{"sluice.rego", "data.json"}, Tests: 42, ReloadsOK: 3},
			Shadow: &policy.SetStatus{Source: "policies-next", Revision: "b71e0c2299aa1f3e", LoadedAt: loaded,
				Files: []string{"sluice.rego"}, Tests: 40},
			Disagreements: 7,
		},
	}
}

// newDashboard returns the dashboard over the ledger, on the test clock.
func newDashboard(t *testing.T, opts ...Option) *Dashboard {
	d := New(openLedger(t), health, opts...)
	d.now = func() time.Time { return now }
	return d
}

// serve serves d on a loopback fasthttp server the way the admin listener
// does: the page freely, the API behind the admin token. It returns the
// server's base URL.
func serve(t *testing.T, d *Dashboard) string {
	t.Helper()
	handler := func(ctx *fasthttp.RequestCtx) {
		p := string(ctx.Path())
		switch {
		case IsPage(p):
			d.ServePage(ctx)
		case IsAPI(p):
			if string(ctx.Request.Header.Peek("Authorization")) != "Bearer "+adminToken {
				fail(ctx, &api.Error{Status: http.StatusUnauthorized, Type: api.TypeAuthentication, Code: "invalid_admin_token",
					Message: "The admin API needs 'Authorization: Bearer <admin token>'."})
				return
			}
			d.ServeAPI(ctx)
		default:
			fail(ctx, api.NotFound("not served here"))
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("shutting the server down: %v", err)
		}
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}
