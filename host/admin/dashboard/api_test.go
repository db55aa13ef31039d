package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/store"
)

// get fetches base+path with the admin token and returns the status, the
// headers and the body.
func get(t *testing.T, method, url string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, b
}

func getJSON[T any](t *testing.T, url string) T {
	t.Helper()
	status, _, body := get(t, http.MethodGet, url)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, status, body)
	}
	var v T
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	return v
}

func TestUsageTotalsPerRange(t *testing.T) {
	base := serve(t, newDashboard(t))
	tests := []struct {
		query    string
		from, to time.Time
		buckets  int
		order    []string // departments by spend
	}{
		{"", at(21, 0, 0, 0), at(28, 0, 0, 0), 7, []string{"eng", "research", "sales", "support"}},
		{"?range=7d", at(21, 0, 0, 0), at(28, 0, 0, 0), 7, []string{"eng", "research", "sales", "support"}},
		{"?range=24h", at(26, 16, 0, 0), at(27, 16, 0, 0), 24, []string{"eng", "research", "sales"}},
		{"?range=30d", time.Date(2026, 10, 29, 0, 0, 0, 0, time.UTC), at(28, 0, 0, 0), 30, []string{"eng", "research", "sales", "support"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			u := getJSON[usageJSON](t, base+APIPrefix+"usage"+tt.query)
			if !u.Range.From.Equal(tt.from) || !u.Range.To.Equal(tt.to) {
				t.Errorf("range = [%s, %s), want [%s, %s)", u.Range.From, u.Range.To, tt.from, tt.to)
			}
			if len(u.Buckets) != tt.buckets || !u.Buckets[0].Equal(tt.from) {
				t.Errorf("buckets = %d from %v, want %d from %s", len(u.Buckets), u.Buckets[0], tt.buckets, tt.from)
			}
			want := sums(tt.from, tt.to, byDepartment)
			var order []string
			var total totals
			for _, d := range u.Departments {
				order = append(order, d.Department)
				if d.totals != want[d.Department] {
					t.Errorf("department %q = %+v, want %+v", d.Department, d.totals, want[d.Department])
				}
				if s := sum(d.CostSeries); s != d.CostNanos {
					t.Errorf("department %q: cost series sums to %d, total is %d", d.Department, s, d.CostNanos)
				}
				if s := sum(d.TokenSeries); s != d.TotalTokens {
					t.Errorf("department %q: token series sums to %d, total is %d", d.Department, s, d.TotalTokens)
				}
				total.Requests += want[d.Department].Requests
				total.PromptTokens += want[d.Department].PromptTokens
				total.CompletionTokens += want[d.Department].CompletionTokens
				total.TotalTokens += want[d.Department].TotalTokens
				total.CostNanos += want[d.Department].CostNanos
			}
			if !slices.Equal(order, tt.order) || len(want) != len(tt.order) {
				t.Errorf("departments = %q, want %q", order, tt.order)
			}
			if u.Total != total {
				t.Errorf("total = %+v, want %+v", u.Total, total)
			}
		})
	}
}

func sum(xs []int64) (s int64) {
	for _, x := range xs {
		s += x
	}
	return s
}

// TestUsageSeriesOfOneDepartment pins numbers worked out by hand, so that
// a mistake shared by the test's sums and the store cannot pass unseen.
func TestUsageSeriesOfOneDepartment(t *testing.T) {
	base := serve(t, newDashboard(t))
	u := getJSON[usageJSON](t, base+APIPrefix+"usage?range=7d")
	eng := u.Departments[0]
	want := departmentJSON{
		Department:  "eng",
		totals:      totals{Requests: 25, PromptTokens: 524_000, CompletionTokens: 112_000, TotalTokens: 636_000, CostNanos: 37_345_670_000},
		CostSeries:  []int64{10_000_000_000, 0, 0, 12_345_670_000, 0, 0, 15_000_000_000},
		TokenSeries: []int64{6_000, 0, 0, 30_000, 0, 0, 600_000},
	}
	if !reflect.DeepEqual(eng, want) {
		t.Errorf("eng = %+v\nwant %+v", eng, want)
	}
	wantTotal := totals{Requests: 42, PromptTokens: 885_020, CompletionTokens: 365_510, TotalTokens: 1_250_530, CostNanos: 61_324_213_000}
	if u.Total != wantTotal {
		t.Errorf("total = %+v, want %+v", u.Total, wantTotal)
	}
	if u.Range.BucketSeconds != 86400 || u.Range.Name != "7d" {
		t.Errorf("range = %+v, want 7d of daily buckets", u.Range)
	}

	day := getJSON[usageJSON](t, base+APIPrefix+"usage?range=24h")
	if day.Range.BucketSeconds != 3600 {
		t.Errorf("24h bucket = %ds, want 3600", day.Range.BucketSeconds)
	}
	// eng-ci's five requests at 11:00 on the 27th: the 20th hour from 16:00.
	if got := day.Departments[0].CostSeries[19]; day.Departments[0].Department != "eng" || got != 15_000_000_000 {
		t.Errorf("24h: %q at 11:00 = %d, want eng 15000000000", day.Departments[0].Department, got)
	}
}

func TestTopClients(t *testing.T) {
	base := serve(t, newDashboard(t))
	want := sums(at(21, 0, 0, 0), at(28, 0, 0, 0), byClient)
	tests := []struct {
		query string
		by    string
		order []string
	}{
		{"", "cost", []string{"eng-chat", "eng-ci", "research-nb", "research-lab", "sales-crm", "old-bot"}},
		{"&by=cost", "cost", []string{"eng-chat", "eng-ci", "research-nb", "research-lab", "sales-crm", "old-bot"}},
		// research-nb and research-lab used 300,000 tokens each: spend breaks the tie.
		{"&by=tokens", "tokens", []string{"eng-ci", "research-nb", "research-lab", "eng-chat", "sales-crm", "old-bot"}},
		{"&by=tokens&limit=2", "tokens", []string{"eng-ci", "research-nb"}},
		{"&limit=100", "cost", []string{"eng-chat", "eng-ci", "research-nb", "research-lab", "sales-crm", "old-bot"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			c := getJSON[clientsJSON](t, base+APIPrefix+"clients?range=7d"+tt.query)
			var order []string
			for _, x := range c.Clients {
				order = append(order, x.Client)
				if x.totals != want[x.Client] {
					t.Errorf("client %s = %+v, want %+v", x.Client, x.totals, want[x.Client])
				}
				if x.Department != clients[x.Client] {
					t.Errorf("client %s department = %q, want %q", x.Client, x.Department, clients[x.Client])
				}
			}
			if !slices.Equal(order, tt.order) || c.By != tt.by || c.Count != 6 {
				t.Errorf("clients = %q by %s of %d, want %q by %s of 6", order, c.By, c.Count, tt.order, tt.by)
			}
		})
	}
	c := getJSON[clientsJSON](t, base+APIPrefix+"clients?range=7d")
	if got := c.Clients[0].totals; got != (totals{Requests: 19, PromptTokens: 24_000, CompletionTokens: 12_000, TotalTokens: 36_000, CostNanos: 22_345_670_000}) {
		t.Errorf("eng-chat = %+v, worked out by hand: 19 requests, 36,000 tokens, $22.345670", got)
	}
}

func TestDenialsByReason(t *testing.T) {
	base := serve(t, newDashboard(t))
	tests := []struct {
		query string
		want  []denialJSON
		total int64
	}{
		{"?range=7d", []denialJSON{
			{"rate_limit_exceeded", "Rate limit (requests or tokens per minute)", 4},
			{"invalid_api_key", "Missing or bad API key", 3},
			{"pii_detected", "Blocked: personal data or secret in prompt", 2},
			{"budget_exceeded", "Token or money budget exhausted", 1},
			{"outside_business_hours", "Outside business hours (policy)", 1},
			{"upstream_error", "Upstream failed", 1},
		}, 12},
		{"?range=24h", []denialJSON{
			{"rate_limit_exceeded", "Rate limit (requests or tokens per minute)", 4},
			{"budget_exceeded", "Token or money budget exhausted", 1},
			{"invalid_api_key", "Missing or bad API key", 1},
			{"upstream_error", "Upstream failed", 1},
		}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			d := getJSON[denialsJSON](t, base+APIPrefix+"denials"+tt.query)
			if !reflect.DeepEqual(d.Denials, tt.want) || d.Total != tt.total {
				t.Errorf("denials = %+v (total %d)\nwant %+v (total %d)", d.Denials, d.Total, tt.want, tt.total)
			}
		})
	}
}

// Every reason on the denials chart has a label in words: the gateway's
// codes, an upstream's status, and an operator's own policy codes.
func TestEveryDenialHasALabel(t *testing.T) {
	st := openLedger(t)
	codes := []string{"not_found", "method_not_allowed", "limits_unavailable", "upstream_502", "ticket_required", "client_disconnected"}
	var events []store.UsageEvent
	for i, code := range codes {
		events = append(events, store.UsageEvent{Time: now.Add(-time.Minute), RequestID: "label-" + code, ClientID: "eng-chat",
			Department: "eng", Model: "gpt-4o-mini", Status: 400 + i, Code: code})
	}
	if err := st.InsertUsage(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	d := New(st, health)
	d.now = func() time.Time { return now }
	got := getJSON[denialsJSON](t, serve(t, d)+APIPrefix+"denials?range=24h")
	labels := map[string]string{}
	for _, x := range got.Denials {
		labels[x.Code] = x.Reason
		if x.Reason == "" || x.Reason == x.Code || strings.Contains(x.Reason, "_") && !strings.Contains(x.Reason, "max_tokens") {
			t.Errorf("%s is labelled %q", x.Code, x.Reason)
		}
	}
	for code, want := range map[string]string{"not_found": "Unknown path or stored response", "upstream_502": "Upstream answered 502", "ticket_required": "Ticket required"} {
		if labels[code] != want {
			t.Errorf("%s is labelled %q, want %q", code, labels[code], want)
		}
	}
}

func TestBadParametersAreOpenAIErrors(t *testing.T) {
	base := serve(t, newDashboard(t))
	tests := []struct {
		path, param, mention string
	}{
		{"usage?range=1y", "range", `"1y"`},
		{"usage?range=7D", "range", "24h, 7d, 30d"},
		{"clients?range=week", "range", `"week"`},
		{"denials?range=-7d", "range", `"-7d"`},
		{"clients?by=requests", "by", `"requests"`},
		{"clients?limit=0", "limit", `"0"`},
		{"clients?limit=101", "limit", "1 to 100"},
		{"clients?limit=ten", "limit", `"ten"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, h, body := get(t, http.MethodGet, base+APIPrefix+tt.path)
			if status != http.StatusBadRequest || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Fatalf("status %d %s, want 400 JSON", status, h.Get("Content-Type"))
			}
			var e struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("%v in %s", err, body)
			}
			msg, _ := e.Error["message"].(string)
			want := map[string]any{"message": msg, "type": "invalid_request_error", "param": tt.param, "code": "invalid_value"}
			if !reflect.DeepEqual(e.Error, want) || !strings.Contains(msg, tt.mention) {
				t.Errorf("body = %s, want an invalid_value error on %s mentioning %s", body, tt.param, tt.mention)
			}
		})
	}
}

func TestUnknownEndpointsAndMethods(t *testing.T) {
	base := serve(t, newDashboard(t))
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, APIPrefix + "spend", http.StatusNotFound, "not_found"},
		{http.MethodGet, APIPrefix, http.StatusNotFound, "not_found"},
		{http.MethodPost, APIPrefix + "usage", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodDelete, PagePath, http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodGet, PagePath + "/missing.js", http.StatusNotFound, "not_found"},
		{http.MethodGet, PagePath + "/index.html", http.StatusNotFound, "not_found"}, // one URL per page
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			status, _, body := get(t, tt.method, base+tt.path)
			var e struct {
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || status != tt.status || e.Error.Code != tt.code {
				t.Errorf("= %d %s, want %d with code %s", status, body, tt.status, tt.code)
			}
		})
	}
}

func TestPageAndAssets(t *testing.T) {
	base := serve(t, newDashboard(t))
	tests := []struct {
		path, contentType, contains string
	}{
		{PagePath, "text/html", `src="dashboard/app.js"`},
		{PagePath + "/app.js", "text/javascript", "Authorization"},
		{PagePath + "/app.css", "text/css", ".kpi"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, h, body := get(t, http.MethodGet, base+tt.path)
			if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), tt.contentType) {
				t.Fatalf("= %d %s, want 200 %s", status, h.Get("Content-Type"), tt.contentType)
			}
			if !bytes.Contains(body, []byte(tt.contains)) {
				t.Errorf("body lacks %q", tt.contains)
			}
			// The page is served without a token: it must carry no data.
			if bytes.Contains(body, []byte("eng-chat")) {
				t.Errorf("the public page contains ledger data")
			}
			if !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("Content-Security-Policy = %q, want scripts from the page's origin only", h.Get("Content-Security-Policy"))
			}

			req, _ := http.NewRequest(http.MethodGet, base+tt.path, nil)
			req.Header.Set("If-None-Match", h.Get("ETag"))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with the ETag = %d, want 304", res.StatusCode)
			}
		})
	}

	status, h, _ := get(t, http.MethodGet, base+PagePath+"/")
	if status != http.StatusMovedPermanently || !strings.HasSuffix(h.Get("Location"), PagePath) {
		t.Errorf("%s/ = %d to %q, want a redirect to %s (its relative URLs resolve from there)", PagePath, status, h.Get("Location"), PagePath)
	}
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		path      string
		page, api bool
	}{
		{"/admin/dashboard", true, false},
		{"/admin/dashboard/", true, false},
		{"/admin/dashboard/app.js", true, false},
		{"/admin/dashboard/api/usage", false, true},
		{"/admin/dashboard/api/", false, true},
		{"/admin/dashboards", false, false},
		{"/admin/usage", false, false},
	}
	for _, tt := range tests {
		if IsPage(tt.path) != tt.page || IsAPI(tt.path) != tt.api {
			t.Errorf("%s: IsPage %v, IsAPI %v; want %v, %v", tt.path, IsPage(tt.path), IsAPI(tt.path), tt.page, tt.api)
		}
	}
}

func TestHealth(t *testing.T) {
	t.Run("reported", func(t *testing.T) {
		h := getJSON[healthJSON](t, serve(t, newDashboard(t))+APIPrefix+"health")
		if !h.Reported || len(h.Plugins) != 2 || h.Plugins[1].LastError == "" || h.Policy == nil || h.Policy.Disagreements != 7 {
			t.Errorf("health = %+v, want the two plugins and the policy the gateway reports", h)
		}
	})
	t.Run("not wired", func(t *testing.T) {
		d := New(openLedger(t), nil)
		status, _, body := get(t, http.MethodGet, serve(t, d)+APIPrefix+"health")
		if status != http.StatusOK || !bytes.Contains(body, []byte(`"reported":false`)) ||
			!bytes.Contains(body, []byte(`"plugins":[]`)) || !bytes.Contains(body, []byte(`"policy":null`)) {
			t.Errorf("= %d %s, want reported false with no plugins and no policy", status, body)
		}
	})
}

// flusher stands in for the ledger: its queue holds one event until Flush.
type flusher struct {
	st  store.Store
	err error
}

func (f *flusher) Flush(ctx context.Context) error {
	if f.err != nil {
		return f.err
	}
	ev := store.UsageEvent{Time: now, RequestID: "queued", ClientID: "eng-chat", Department: "eng", Model: "gpt-4o-mini",
		TotalTokens: 1000, CostNanos: 1_000_000_000, Status: http.StatusOK, UsageSource: store.UsageUpstream}
	return f.st.InsertUsage(ctx, []store.UsageEvent{ev}) // a second insert of the id is skipped
}

func TestFlushesTheLedgerFirst(t *testing.T) {
	st := openLedger(t)
	f := &flusher{st: st}
	d := New(st, health, WithFlusher(f))
	d.now = func() time.Time { return now }
	base := serve(t, d)

	u := getJSON[usageJSON](t, base+APIPrefix+"usage?range=24h")
	if u.Departments[0].Department != "eng" || u.Departments[0].CostNanos != 16_000_000_000 {
		t.Errorf("eng spend = %d, want 16000000000 with the queued event", u.Departments[0].CostNanos)
	}

	f.err = errors.New("database is down")
	status, _, body := get(t, http.MethodGet, base+APIPrefix+"usage")
	if status != http.StatusInternalServerError || !bytes.Contains(body, []byte(`"code":"internal_error"`)) ||
		bytes.Contains(body, []byte("database is down")) {
		t.Errorf("with the flush failing = %d %s, want a 500 that does not leak the cause", status, body)
	}
}

// TestEmptyLedger holds a new gateway's answers to empty lists, not nulls:
// the page iterates over them.
func TestEmptyLedger(t *testing.T) {
	st, err := store.OpenSQLite(context.Background(), t.TempDir()+"/empty.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	base := serve(t, New(st, nil))
	for _, tt := range []struct{ path, want string }{
		{"usage", `"departments":[],"total":{"requests":0,"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"cost_nanos":0}`},
		{"clients", `"clients":[],"count":0`},
		{"denials", `"denials":[],"total":0`},
	} {
		status, _, body := get(t, http.MethodGet, base+APIPrefix+tt.path)
		if status != http.StatusOK || !bytes.Contains(body, []byte(tt.want)) {
			t.Errorf("%s = %d %s, want %s", tt.path, status, body, tt.want)
		}
	}
}
