package server

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/config"
)

// groupRule lets only members of llm-premium call gpt-4o with a token;
// key callers are not its business.
const groupRule = `package sluice.authz

deny contains {
	"http_status": 403,
	"code": "model_not_in_group",
	"type": "permission_error",
	"message": "gpt-4o needs the llm-premium group",
} if {
	input.request.model == "gpt-4o"
	input.identity.kind == "token"
	not "llm-premium" in input.identity.claims.groups
}
`

// TestPolicyDecidesOnTokenClaims: a policy reads a token caller's verified
// claims as input.identity.claims and a key caller's key as
// input.identity; the decision log keeps every claim's name but writes
// only the values of log_claims as they are, so that an e-mail address or
// a string the caller's provider let it choose reaches neither the
// decision log nor any log line. An oversized claim is dropped and
// counted, and the request still decided.
func TestPolicyDecidesOnTokenClaims(t *testing.T) {
	idp := startIdentityProvider(t)
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "groups.rego", groupRule)
	cfg := policyConfig(t, open, dir, false)
	cfg.Policy.DecisionLog = filepath.Join(t.TempDir(), "decisions.jsonl")
	cfg.Policy.DecisionLogSample = 1
	cfg.Auth.OIDC = []config.OIDC{{Issuer: idp.issuer, Audience: "sluice", LogClaims: []string{"groups"}}}
	h := start(t, cfg)

	const email, nickname = "marie.curie@example.org", "quokka-tangerine-7"
	premium := sign(t, idp.key("k1"), "k1", idp.claims("svc-premium", map[string]any{
		"groups": []string{"staff", "llm-premium"}, "email": email, "nickname": nickname}))
	staff := sign(t, idp.key("k1"), "k1", idp.claims("svc-staff", map[string]any{
		"groups": []string{"staff"}, "email": "pierre@example.org"}))
	oversized := sign(t, idp.key("k1"), "k1", idp.claims("svc-big", map[string]any{
		"groups": []string{"llm-premium"}, "blob": strings.Repeat("x", 1500)}))

	if err := h.hello(premium, "gpt-4o"); err != nil {
		t.Fatalf("a member of llm-premium asking for gpt-4o: %v", err)
	}
	apiError(t, h.hello(staff, "gpt-4o"), http.StatusForbidden, "model_not_in_group")
	if err := h.hello(staff, "gpt-4o-mini"); err != nil {
		t.Fatalf("a staff member asking for gpt-4o-mini: %v", err)
	}
	if err := h.hello(oversized, "gpt-4o"); err != nil {
		t.Fatalf("a token with an oversized claim, its groups intact: %v\n%s", err, h.logText())
	}
	h.addClient(accounts.NewClient{ID: "app", Department: "research"})
	key, keyID := h.createKey(`{"client_id":"app","name":"ci","tags":{"team":"search"}}`)
	if err := h.hello(key, "gpt-4o"); err != nil {
		t.Fatalf("a key caller asking for gpt-4o: %v", err)
	}
	if _, metrics := h.admin("GET", "/metrics", ""); !strings.Contains(string(metrics), "\nsluice_auth_token_claims_dropped_total 1\n") {
		t.Errorf("the dropped claim is not counted in /metrics")
	}

	// A dry run tries the rule on the claims an operator gives.
	for groups, want := range map[string]string{`["staff"]`: "model_not_in_group", `["llm-premium"]`: ""} {
		status, answer := h.admin("POST", "/admin/decide", `{"client_id":"app","request":{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]},`+
			`"identity":{"kind":"token","issuer":"https://login.example.com/","claims":{"groups":`+groups+`}}}`)
		var ex struct {
			Decision struct {
				Allowed bool
				Code    string
			}
		}
		if err := json.Unmarshal(answer, &ex); status != http.StatusOK || err != nil || ex.Decision.Code != want || ex.Decision.Allowed != (want == "") {
			t.Errorf("dry run with groups %s: %d %s, want code %q", groups, status, answer, want)
		}
	}
	h.stop() // flushes the decision log

	raw, err := os.ReadFile(cfg.Policy.DecisionLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{email, "pierre@example.org", "example.org", nickname, strings.Repeat("x", 64)} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the decision log holds %q", secret)
		}
		if strings.Contains(h.logText(), secret) {
			t.Errorf("a log line holds %q", secret)
		}
	}
	type identity struct {
		Kind          string         `json:"kind"`
		Subject       string         `json:"subject"`
		Claims        map[string]any `json:"claims"`
		DroppedClaims int            `json:"dropped_claims"`
		KeyID         string         `json:"key_id"`
		KeyName       string         `json:"key_name"`
		Tags          map[string]any `json:"tags"`
	}
	var ids []identity
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var l struct {
			Input struct {
				Identity identity `json:"identity"`
			} `json:"input"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("decision log line %q: %v", line, err)
		}
		ids = append(ids, l.Input.Identity)
	}
	if len(ids) < 5 {
		t.Fatalf("%d decision log lines, want one per decision of the five requests", len(ids))
	}
	first := ids[0]
	if first.Kind != "token" || !strings.HasPrefix(first.Subject, "hmac:") {
		t.Errorf("first decision's identity %+v: want a token with its subject hashed", first)
	}
	if g, _ := first.Claims["groups"].([]any); len(g) != 2 || g[1] != "llm-premium" {
		t.Errorf("groups, listed in log_claims, logged as %v; want them as they are", first.Claims["groups"])
	}
	for _, name := range []string{"email", "nickname", "sub", "iss", "exp"} {
		v, ok := first.Claims[name].(string)
		if !ok || !strings.HasPrefix(v, "hmac:") {
			t.Errorf("claim %s logged as %v, want its name with a hash of its value", name, first.Claims[name])
		}
	}
	if !slices.ContainsFunc(ids, func(i identity) bool { _, ok := i.Claims["blob"]; return i.DroppedClaims == 1 && !ok }) {
		t.Errorf("no decision shows the oversized claim dropped and counted: %+v", ids)
	}
	last := ids[len(ids)-1]
	if last.Kind != "key" || last.KeyID != keyID || last.KeyName != "ci" || last.Tags["team"] != "search" {
		t.Errorf("key caller's identity %+v: want kind key, key %s named ci, tag team=search", last, keyID)
	}
}
