package policy_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicehq/sluice/host/policy"
)

// inputPolicy hands the whole input back in a header.
const inputPolicy = `package sluice.authz

decision := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "",
	"headers": {"x-input": json.marshal(input)},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
}
`

// seen returns the input document the policy saw for in.
func seen(t *testing.T, e *policy.Engine, in policy.Input) map[string]any {
	t.Helper()
	d, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(d.Headers["x-input"]), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestInputDocument(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	e, err := policy.Load(context.Background(), fstest.MapFS{"authz.rego": {Data: []byte(inputPolicy)}}, nil, policy.WithTimeZone(berlin))
	if err != nil {
		t.Fatal(err)
	}
	in := policy.Input{
		Client: policy.Client{ID: "alice", Department: "research", Tier: "standard", Labels: map[string]string{"team": "nlp"}, PluginFailures: 2},
		Request: policy.Request{
			Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini", MaxTokens: 256, PromptTokens: 812, MessageCount: 3,
			API: "chat", UpstreamType: "azure_openai", UpstreamTypes: []string{"azure_openai", "openai"},
			Headers: map[string]string{
				"User-Agent": "openai-python/1.0", "x-sluice-tags": "batch",
				"Authorization": "Bearer sk-secret", "x-api-key": "sk-secret", "Cookie": "session=1",
			},
		},
		Usage: &policy.Usage{
			Client:     policy.Counters{RequestsMinute: 3, TokensMinute: 1200, TokensToday: 50000, TokensMonth: 900000, SpendMonthMicros: 12_500_000},
			Department: policy.Counters{RequestsMinute: 40, SpendMonthMicros: 210_000_001},
		},
		Findings: []policy.Finding{{Plugin: "pii", Type: "EMAIL", Count: 2, Score: 0.9, Messages: []int{0, 2}, Locations: []string{"content", "name"}}},
		Time:     time.Date(2026, 11, 28, 8, 30, 0, 0, time.UTC),
		Identity: &policy.Identity{Kind: policy.IdentityToken, Issuer: "https://login.example.com/", Subject: "u-17",
			Claims: map[string]any{"groups": []any{"staff", "llm-premium"}, "email": "alice@example.com"}, DroppedClaims: 1},
	}
	want := map[string]any{
		"client": map[string]any{"id": "alice", "department": "research", "tier": "standard", "labels": map[string]any{"team": "nlp"},
			"plugin_failures": 2.0},
		"request": map[string]any{
			"method": "POST", "path": "/v1/chat/completions", "model": "gpt-4o-mini", "stream": false,
			"max_tokens": 256.0, "prompt_tokens": 812.0, "message_count": 3.0, "token_arrays": 0.0,
			"api": "chat", "upstream_type": "azure_openai", "upstream_types": []any{"azure_openai", "openai"},
			// Only allow-listed headers, lower-cased; never a credential.
			"headers": map[string]any{"user-agent": "openai-python/1.0", "x-sluice-tags": "batch"},
		},
		"usage": map[string]any{
			"client":     map[string]any{"requests_minute": 3.0, "tokens_minute": 1200.0, "tokens_today": 50000.0, "tokens_month": 900000.0, "spend_month_usd": 12.5},
			"department": map[string]any{"requests_minute": 40.0, "tokens_minute": 0.0, "tokens_today": 0.0, "tokens_month": 0.0, "spend_month_usd": 210.000001},
		},
		"findings": []any{map[string]any{"plugin": "pii", "type": "EMAIL", "count": 2.0, "score": 0.9, "messages": []any{0.0, 2.0},
			"locations": []any{"content", "name"}}},
		"time": map[string]any{
			"unix": float64(in.Time.Unix()), "rfc3339": "2026-11-28T09:30:00+01:00", "zone": "Europe/Berlin",
			"weekday": "Saturday", "hour": 9.0, "minute": 30.0,
		},
		// Every verified claim of a token caller.
		"identity": map[string]any{"kind": "token", "issuer": "https://login.example.com/", "subject": "u-17",
			"claims": map[string]any{"groups": []any{"staff", "llm-premium"}, "email": "alice@example.com"}, "dropped_claims": 1.0},
	}
	if got := seen(t, e, in); !reflect.DeepEqual(got, want) {
		t.Errorf("input\n %v\nwant\n %v", got, want)
	}

	// Without usage, headers or findings the policy still finds objects
	// and arrays to look into.
	got := seen(t, e, policy.Input{Time: in.Time})
	for key, want := range map[string]any{"usage": map[string]any{}, "findings": []any{}} {
		if !reflect.DeepEqual(got[key], want) {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if ts := got["request"].(map[string]any)["upstream_types"]; !reflect.DeepEqual(ts, []any{}) {
		t.Errorf("upstream_types = %v, want []", ts)
	}
	if h := got["request"].(map[string]any)["headers"]; !reflect.DeepEqual(h, map[string]any{}) {
		t.Errorf("headers = %v, want {}", h)
	}
}

func TestInputTimeDefaultsToUTC(t *testing.T) {
	e, err := policy.Load(context.Background(), fstest.MapFS{"authz.rego": {Data: []byte(inputPolicy)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 23, 59, 0, 0, time.FixedZone("X", 3600))
	got := seen(t, e, policy.Input{Time: at})["time"].(map[string]any)
	if got["zone"] != "UTC" || got["weekday"] != "Sunday" || got["hour"] != 22.0 || got["rfc3339"] != "2026-11-29T22:59:00Z" {
		t.Errorf("time %v, want Sunday 22:59 UTC", got)
	}
}

func TestInputHeadersListsOnlySafeNames(t *testing.T) {
	names := policy.DefaultHeaders()
	for _, n := range names {
		switch n {
		case "authorization", "x-api-key", "cookie", "proxy-authorization":
			t.Errorf("DefaultHeaders lists %s", n)
		}
	}
	names[0] = "authorization"
	if policy.DefaultHeaders()[0] == "authorization" {
		t.Error("DefaultHeaders returns its own slice; a caller could widen the allow-list")
	}
}

// The headers an engine is given are those the policy sees, lower-cased,
// and a credential never, even when asked for.
func TestInputHeadersFollowTheOption(t *testing.T) {
	files := fstest.MapFS{"authz.rego": {Data: []byte(inputPolicy)}}
	e, err := policy.Load(context.Background(), files, nil, policy.WithHeaders([]string{"X-Ticket-Id"}))
	if err != nil {
		t.Fatal(err)
	}
	in := policy.Input{Request: policy.Request{Headers: map[string]string{
		"X-Ticket-Id": "OPS-1", "User-Agent": "sdk", "Authorization": "Bearer sk-x"}}}
	got := seen(t, e, in)["request"].(map[string]any)["headers"].(map[string]any)
	if len(got) != 1 || got["x-ticket-id"] != "OPS-1" {
		t.Errorf("headers %v, want only x-ticket-id", got)
	}
	if _, err := policy.Load(context.Background(), files, nil, policy.WithHeaders([]string{"authorization"})); err == nil {
		t.Error("an engine was given authorization to show")
	}
}

func TestLimitsJSONRoundTrip(t *testing.T) {
	cases := []struct {
		json string
		want policy.Limits
		out  string
	}{
		{`{"rpm": 60, "monthly_spend_usd": 0.1}`, policy.Limits{RPM: 60, MonthlySpendMicros: 100_000},
			`{"rpm":60,"tpm":0,"daily_tokens":0,"monthly_tokens":0,"monthly_spend_usd":0.1}`},
		{`{"monthly_spend_usd": 12.3456789}`, policy.Limits{MonthlySpendMicros: 12_345_678},
			`{"rpm":0,"tpm":0,"daily_tokens":0,"monthly_tokens":0,"monthly_spend_usd":12.345678}`},
		{`{"monthly_spend_usd": 5e2, "tpm": 1e3}`, policy.Limits{TPM: 1000, MonthlySpendMicros: 500_000_000},
			`{"rpm":0,"tpm":1000,"daily_tokens":0,"monthly_tokens":0,"monthly_spend_usd":500}`},
	}
	for _, c := range cases {
		var got policy.Limits
		if err := json.Unmarshal([]byte(c.json), &got); err != nil || got != c.want {
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v", c.json, got, err, c.want)
			continue
		}
		out, err := json.Marshal(got)
		if err != nil || string(out) != c.out {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", got, out, err, c.out)
		}
	}
	for _, bad := range []string{`{"rpm": -1}`, `{"rpm": 1.5}`, `{"monthly_spend_usd": "1"}`, `[]`} {
		var l policy.Limits
		if err := json.Unmarshal([]byte(bad), &l); err == nil {
			t.Errorf("Unmarshal(%s) = %+v, want error", bad, l)
		}
	}
}

func TestDecideReadsSpendExactly(t *testing.T) {
	cases := map[string]int64{
		"0": 0, "500": 500_000_000, "0.1": 100_000, "12.3456789": 12_345_678, "0.0000009": 0,
		"999999999999.999999": 999_999_999_999_999_999, "1e2": 100_000_000, "2.5e-3": 2_500, "9223372036854": 9_223_372_036_854_000_000, "9223372036855": -1,
	}
	for spend, want := range cases {
		pol := `package sluice.authz

decision := {
	"allowed": true, "http_status": 200, "code": "", "type": "", "message": "", "headers": {},
	"limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": ` + spend + `},
	"department_limits": {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0},
	"redact": [], "plugins": [],
}
`
		e, err := policy.Load(context.Background(), fstest.MapFS{"authz.rego": {Data: []byte(pol)}}, nil)
		if err != nil {
			t.Fatalf("%s: %v", spend, err)
		}
		d, err := e.Decide(context.Background(), policy.Input{})
		switch {
		case want < 0 && err == nil:
			t.Errorf("%s: %d micro-dollars, want an error (too large)", spend, d.Limits.MonthlySpendMicros)
		case want >= 0 && (err != nil || d.Limits.MonthlySpendMicros != want):
			t.Errorf("%s: %d micro-dollars, %v; want %d", spend, d.Limits.MonthlySpendMicros, err, want)
		}
	}
}
