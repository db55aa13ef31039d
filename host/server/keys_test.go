package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluicehq/sluice/host/config"
)

// createKey creates a key through the admin API from a JSON body and
// returns the secret and the key's id.
func (h *harness) createKey(body string) (secret, id string) {
	h.t.Helper()
	status, out := h.admin("POST", "/admin/keys", body)
	if status != http.StatusCreated {
		h.t.Fatalf("create key %s: %d %s", body, status, out)
	}
	var k struct{ Key, ID string }
	if err := json.Unmarshal(out, &k); err != nil || k.Key == "" {
		h.t.Fatalf("key answer %s", out)
	}
	return k.Key, k.ID
}

// hello sends one small chat request with key and returns the error.
func (h *harness) hello(key, model string) error {
	c := h.client(key)
	params := chat(model, "hello")
	params.MaxTokens = openai.Int(20)
	_, err := c.Chat.Completions.New(context.Background(), params)
	return err
}

// TestExpiredKeyIsRefusedWithItsOwnCode: a key works until its expiry, to
// the second and whatever the cache holds, then answers 401 key_expired;
// a key that never existed still answers invalid_api_key.
func TestExpiredKeyIsRefusedWithItsOwnCode(t *testing.T) {
	h := newHarness(t, open)
	key, _ := h.createKey(`{"client_id":"app","name":"short","expires":"2s"}`)
	if err := h.hello(key, "gpt-4o-mini"); err != nil {
		t.Fatalf("before its expiry: %v", err)
	}
	time.Sleep(2100 * time.Millisecond)
	e := apiError(t, h.hello(key, "gpt-4o-mini"), http.StatusUnauthorized, "key_expired")
	if e.Type != "authentication_error" {
		t.Errorf("type %q", e.Type)
	}
	apiError(t, h.hello("sk-sluice-"+strings.Repeat("x", 32), "gpt-4o-mini"), http.StatusUnauthorized, "invalid_api_key")

	// Bad expiries are refused, naming the field.
	for _, body := range []string{`{"client_id":"app","expires":"yesterday"}`, `{"client_id":"app","expires":"2001-01-01"}`,
		`{"client_id":"app","limits":{"rpm":-1}}`} {
		if status, out := h.admin("POST", "/admin/keys", body); status != http.StatusBadRequest || !strings.Contains(string(out), "invalid_value") {
			t.Errorf("%s: %d %s; want 400 invalid_value", body, status, out)
		}
	}
}

// TestRotatedKeyWorksThroughItsGrace: after a rotation both keys work until
// the grace period ends; then the old one answers key_expired and the new
// one carries on with the same scope. A dead key cannot be rotated back.
func TestRotatedKeyWorksThroughItsGrace(t *testing.T) {
	h := newHarness(t, open)
	old, oldID := h.createKey(`{"client_id":"app","name":"ci","models":["gpt-4o-mini"],"tags":{"team":"search"}}`)
	status, out := h.admin("POST", "/admin/keys/"+oldID+"/rotate", `{"grace":"2s"}`)
	if status != http.StatusCreated {
		t.Fatalf("rotate: %d %s", status, out)
	}
	var rotated struct {
		Key, ID, Name string
		RotatedFrom   string `json:"rotated_from"`
		Models        []string
	}
	json.Unmarshal(out, &rotated)
	if rotated.Key == "" || rotated.ID == oldID || rotated.RotatedFrom != oldID || rotated.Name != "ci" ||
		len(rotated.Models) != 1 || rotated.Models[0] != "gpt-4o-mini" {
		t.Fatalf("rotation answer %s; want a new key with the old one's name and models", out)
	}
	// The old key's own expiry changed; the caller learns it from the listing.
	_, list := h.admin("GET", "/admin/keys?client_id=app", "")
	if !strings.Contains(string(list), `"expires_soon":true`) {
		t.Errorf("the old key is not flagged as expiring soon: %s", list)
	}
	for name, key := range map[string]string{"old": old, "new": rotated.Key} {
		if err := h.hello(key, "gpt-4o-mini"); err != nil {
			t.Fatalf("%s key during the grace: %v", name, err)
		}
	}
	apiError(t, h.hello(rotated.Key, "gpt-4o"), http.StatusForbidden, "model_not_allowed")
	time.Sleep(2100 * time.Millisecond)
	apiError(t, h.hello(old, "gpt-4o-mini"), http.StatusUnauthorized, "key_expired")
	if err := h.hello(rotated.Key, "gpt-4o-mini"); err != nil {
		t.Fatalf("new key after the grace: %v", err)
	}
	if status, out := h.admin("POST", "/admin/keys/"+oldID+"/rotate", ``); status != http.StatusBadRequest {
		t.Errorf("rotating an expired key: %d %s; want 400", status, out)
	}
}

// TestKeyModelsNarrowTheTier: a key's model list narrows what its tier
// allows, for requests and for the model listing; it never widens it.
func TestKeyModelsNarrowTheTier(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"gpt-4o*"}})
	narrow, _ := h.createKey(`{"client_id":"app","models":["gpt-4o-mini*"]}`)
	wide, _ := h.createKey(`{"client_id":"app","models":["*"]}`)
	if err := h.hello(narrow, "gpt-4o-mini"); err != nil {
		t.Fatal(err)
	}
	e := apiError(t, h.hello(narrow, "gpt-4o"), http.StatusForbidden, "model_not_allowed")
	if !strings.Contains(e.Message, "API key") {
		t.Errorf("message %q does not say the key refused it", e.Message)
	}
	c := h.client(narrow)
	page, err := c.Models.List(context.Background())
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "gpt-4o-mini" {
		t.Errorf("the narrow key lists %+v (%v); want gpt-4o-mini alone", page, err)
	}
	// "*" on the key cannot reach past the tier.
	apiError(t, h.hello(wide, "text-embedding-3-small"), http.StatusForbidden, "model_not_allowed")
}

// TestKeyBudgetHoldsBesideTheClients: a key's own daily budget holds under
// concurrency while the client's budget has room; the client's other keys
// are not held by it; and a restart rebuilds the key's count from the
// ledger.
func TestKeyBudgetHoldsBesideTheClients(t *testing.T) {
	const keyBudget = 400
	dir := t.TempDir()
	tier := config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: 1_000_000}}
	h := start(t, testConfig(t, dir, tier))
	h.key = h.createClient("app", "research")
	limited, _ := h.createKey(`{"client_id":"app","limits":{"daily_tokens":400}}`)

	c := h.client(limited)
	var mu sync.Mutex
	var served, refused int64
	var wg sync.WaitGroup
	for range 60 {
		wg.Go(func() {
			params := chat("gpt-4o-mini", "hello")
			params.MaxTokens = openai.Int(20)
			resp, err := c.Chat.Completions.New(context.Background(), params)
			mu.Lock()
			defer mu.Unlock()
			var e *openai.Error
			switch {
			case err == nil:
				served += resp.Usage.TotalTokens
			case errors.As(err, &e) && e.Code == "budget_exceeded":
				refused++
				if !strings.Contains(e.Message, "key") {
					t.Errorf("the budget 429 does not name the key: %q", e.Message)
				}
			default:
				t.Errorf("request: %v", err)
			}
		})
	}
	wg.Wait()
	if served > keyBudget || refused == 0 {
		t.Fatalf("the key was served %d tokens of its %d, with %d refusals", served, keyBudget, refused)
	}
	if err := h.hello(h.key, "gpt-4o-mini"); err != nil {
		t.Fatalf("the client's other key was held by the first key's budget: %v", err)
	}
	h.stop()

	h2 := start(t, testConfig(t, dir, tier))
	apiError(t, h2.hello(limited, "gpt-4o-mini"), http.StatusTooManyRequests, "budget_exceeded")
}

// TestClientChangesReachItsKeysAtOnce: a client's tier, its disabling and
// its deletion apply to its keys from the next request on the replica that
// made the change, whatever the key cache holds; the ledger keeps a
// deleted client's usage, and its id stays taken.
func TestClientChangesReachItsKeysAtOnce(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Tiers["mini-only"] = config.Tier{Models: []string{"gpt-4o-mini"}}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	if err := h.hello(h.key, "gpt-4o"); err != nil { // the key is cached now
		t.Fatal(err)
	}
	if status, out := h.admin("PATCH", "/admin/clients/app", `{"tier":"mini-only","labels":{"env":"prod"}}`); status != http.StatusOK ||
		!strings.Contains(string(out), `"tier":"mini-only"`) {
		t.Fatalf("update: %d %s", status, out)
	}
	apiError(t, h.hello(h.key, "gpt-4o"), http.StatusForbidden, "model_not_allowed")
	if status, out := h.admin("PATCH", "/admin/clients/app", `{"tier":"nonexistent"}`); status != http.StatusBadRequest {
		t.Errorf("an unknown tier: %d %s", status, out)
	}

	if status, _ := h.admin("POST", "/admin/clients/app/disable", ""); status != http.StatusOK {
		t.Fatalf("disable: %d", status)
	}
	apiError(t, h.hello(h.key, "gpt-4o-mini"), http.StatusForbidden, "client_disabled")
	h.admin("POST", "/admin/clients/app/enable", "")
	if err := h.hello(h.key, "gpt-4o-mini"); err != nil {
		t.Fatalf("enabled again: %v", err)
	}

	if status, _ := h.admin("DELETE", "/admin/clients/app", ""); status != http.StatusOK {
		t.Fatalf("delete: %d", status)
	}
	apiError(t, h.hello(h.key, "gpt-4o-mini"), http.StatusUnauthorized, "invalid_api_key")
	if requests, tokens := h.billed(); requests < 2 || tokens == 0 {
		t.Errorf("the ledger lost a deleted client's usage: %d requests, %d tokens", requests, tokens)
	}
	if status, _ := h.admin("POST", "/admin/clients", `{"id":"app","department":"finance"}`); status != http.StatusConflict {
		t.Errorf("a deleted client's id was taken again: %d", status)
	}
	if status, _ := h.admin("DELETE", "/admin/clients/app", ""); status != http.StatusNotFound {
		t.Errorf("deleting twice: %d", status)
	}
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TestAdminRolesAndAudit: a viewer token reads usage and nothing else; an
// operator reloads; only an admin touches clients, keys and the audit log;
// every change is in the audit log under the token's name, with no secret.
func TestAdminRolesAndAudit(t *testing.T) {
	const viewer, operator = "viewer-token-0123456789", "operator-token-0123456789"
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Server.AdminTokens = []config.AdminToken{
		{Name: "alice", Role: config.RoleViewer, TokenSHA256: tokenHash(viewer)},
		{Name: "ops", Role: config.RoleOperator, TokenSHA256: tokenHash(operator)},
	}
	h := start(t, cfg)
	admin := cfg.Server.AdminToken

	for _, c := range []struct {
		token, method, path, body string
		status                    int
	}{
		{viewer, "GET", "/admin/usage", "", 200},
		{viewer, "GET", "/admin/policy", "", 200},
		{viewer, "GET", "/admin/keys", "", 403},
		{viewer, "GET", "/admin/clients", "", 403},
		{viewer, "POST", "/admin/clients", `{"id":"x","department":"d"}`, 403},
		{viewer, "POST", "/admin/policy/reload", "", 403},
		{viewer, "GET", "/admin/audit", "", 403},
		{operator, "POST", "/admin/policy/reload", "", 200},
		{operator, "POST", "/admin/keys", `{"client_id":"x"}`, 403},
		{operator, "GET", "/admin/audit", "", 403},
		{"not-a-token", "GET", "/admin/usage", "", 401},
		{admin, "POST", "/admin/clients", `{"id":"bot","department":"finance"}`, 201},
		{admin, "PATCH", "/admin/clients/bot", `{"labels":{"env":"prod"}}`, 200},
	} {
		status, body := h.adminAs(c.token, c.method, c.path, c.body)
		if status != c.status {
			t.Errorf("%s %s with %.8s…: %d %s; want %d", c.method, c.path, c.token, status, body, c.status)
		}
		if status == 403 && !strings.Contains(string(body), "insufficient_role") {
			t.Errorf("a 403 without its code: %s", body)
		}
	}
	secret, keyID := h.createKey(`{"client_id":"bot","name":"ci"}`)
	if status, _ := h.admin("POST", "/admin/keys/"+keyID+"/revoke", ""); status != 200 {
		t.Fatalf("revoke: %d", status)
	}

	status, out := h.admin("GET", "/admin/audit", "")
	if status != 200 {
		t.Fatalf("audit: %d %s", status, out)
	}
	var audit struct {
		Data []struct {
			Actor, Action, Target string
			Detail                map[string]any
		}
	}
	json.Unmarshal(out, &audit)
	var seen []string
	for _, ev := range audit.Data {
		seen = append(seen, ev.Actor+" "+ev.Action+" "+ev.Target)
	}
	for _, want := range []string{"ops reload policy", "admin client.create bot", "admin client.update bot",
		"admin key.create " + keyID, "admin key.revoke " + keyID} {
		if !slices.Contains(seen, want) {
			t.Errorf("the audit log misses %q: %v", want, seen)
		}
	}
	if strings.Contains(string(out), secret) || strings.Contains(string(out), secret[len(secret)-20:]) {
		t.Errorf("the audit log holds the key's secret: %s", out)
	}
	if !strings.Contains(string(out), `"before":{"department":"finance","labels":null`) &&
		!strings.Contains(string(out), `"before":{"department":"finance"`) {
		t.Errorf("the update has no before and after: %s", out)
	}
}

// TestTagsAttributeUsage: a request's x-sluice-tags and its key's tags reach
// the ledger, the key's winning, and reports group and filter by them;
// tags that could carry personal data are refused before anything else.
func TestTagsAttributeUsage(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Attribution.Tags = map[string][]string{"project": {"billing", "elsewhere"}, "env": {"*"}}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	keyed, _ := h.createKey(`{"client_id":"app","tags":{"project":"search"}}`)
	send := func(key, header string) error {
		c := h.client(key)
		params := chat("gpt-4o-mini", "hello")
		params.MaxTokens = openai.Int(20)
		_, err := c.Chat.Completions.New(context.Background(), params, option.WithHeader("x-sluice-tags", header))
		return err
	}
	for _, c := range []struct{ key, header string }{
		{h.key, "project=billing,env=prod"},
		{h.key, "project=billing,env=dev"},
		{keyed, "project=elsewhere,env=prod"}, // the key's project wins
		{h.key, ""},
	} {
		if err := send(c.key, c.header); err != nil {
			t.Fatalf("tags %q: %v", c.header, err)
		}
	}
	for _, header := range []string{"owner=jane@example.com", "env=123-45-6789", "env=" + h.key, "env=AKIA6AFQKVXPJEGZC7D3",
		"project=search", "owner=jane", "Project=x", strings.Repeat("env=b,", 9) + "env=b"} {
		e := apiError(t, send(h.key, header), http.StatusBadRequest, "invalid_tags")
		if strings.Contains(e.Message, "jane") || strings.Contains(e.Message, "123-45") || strings.Contains(e.Message, "AKIA") {
			t.Errorf("the error repeats the tag: %q", e.Message)
		}
	}
	h.srv.Ledger().Flush(context.Background())

	status, out := h.admin("GET", "/admin/usage?group_by=tag:project&format=json", "")
	if status != 200 {
		t.Fatalf("report by tag: %d %s", status, out)
	}
	var rows []map[string]any
	json.Unmarshal(out, &rows)
	got := map[string]float64{}
	for _, r := range rows {
		got[r["tag:project"].(string)] = r["requests"].(float64)
	}
	// The eight refused requests were refused before they named a model:
	// they are denials (invalid_tags), not usage.
	if got["billing"] != 2 || got["search"] != 1 || got["elsewhere"] != 0 || got[""] != 1 {
		t.Errorf("requests by project: %v; want billing 2, search 1 (the key's), untagged 1", got)
	}
	if counts, err := h.srv.Store().DenialCounts(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour)); err != nil ||
		len(counts) != 1 || counts[0].Code != "invalid_tags" || counts[0].Requests != 8 {
		t.Errorf("denials: %+v (%v); want the 8 invalid_tags", counts, err)
	}
	status, out = h.admin("GET", "/admin/usage?group_by=client&tag=env=prod&format=json", "")
	rows = nil
	json.Unmarshal(out, &rows)
	if status != 200 || len(rows) != 1 || rows[0]["requests"] != 2.0 {
		t.Errorf("report of env=prod: %d %s; want 2 requests", status, out)
	}
}
