package server

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/config"
)

// TestAdminAPIAcceptsIdentityTokens: the admin API takes a provider's
// tokens beside admin tokens, each with the role its groups map to. A
// viewer's token reads usage but cannot create a key; an admin's can, and
// the audit log names its subject. A token that is expired, meant for
// another audience or signed by another key is refused like a wrong
// admin token.
func TestAdminAPIAcceptsIdentityTokens(t *testing.T) {
	idp := startIdentityProvider(t)
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Server.AdminOIDC = &config.AdminOIDC{Issuer: idp.issuer, Audience: "sluice-admin", Roles: []config.ClaimRole{
		{Value: "sluice-admins", Role: config.RoleAdmin}, {Value: "sluice-viewers", Role: config.RoleViewer}}}
	h := start(t, cfg)
	token := func(sub string, extra map[string]any) string {
		c := idp.claims(sub, extra)
		if _, ok := extra["aud"]; !ok {
			c["aud"] = "sluice-admin"
		}
		return sign(t, idp.key("k1"), "k1", c)
	}
	viewer := token("vera@example.org", map[string]any{"groups": []string{"staff", "sluice-viewers"}})
	admin := token("ada@example.org", map[string]any{"groups": []string{"sluice-admins"}})
	nobody := token("nemo@example.org", map[string]any{"groups": []string{"staff"}})

	if status, body := h.adminAs(viewer, "GET", "/admin/usage", ""); status != http.StatusOK {
		t.Fatalf("a viewer reading usage: %d %s", status, body)
	}
	newClient := `{"id":"reports","department":"finance"}`
	status, body := h.adminAs(viewer, "POST", "/admin/clients", newClient)
	if status != http.StatusForbidden || !strings.Contains(string(body), `"code":"insufficient_role"`) {
		t.Fatalf("a viewer creating a client: %d %s, want 403 insufficient_role", status, body)
	}
	if status, body := h.adminAs(admin, "POST", "/admin/clients", newClient); status != http.StatusCreated {
		t.Fatalf("an admin creating a client: %d %s", status, body)
	}
	status, body = h.adminAs(viewer, "POST", "/admin/keys", `{"client_id":"reports","name":"cron"}`)
	if status != http.StatusForbidden || !strings.Contains(string(body), `"code":"insufficient_role"`) {
		t.Fatalf("a viewer creating a key: %d %s, want 403 insufficient_role", status, body)
	}
	if status, body := h.adminAs(nobody, "GET", "/admin/usage", ""); status != http.StatusForbidden {
		t.Fatalf("a token whose groups map to no role: %d %s, want 403", status, body)
	}
	status, body = h.adminAs(admin, "POST", "/admin/keys", `{"client_id":"reports","name":"cron"}`)
	if status != http.StatusCreated {
		t.Fatalf("an admin creating a key: %d %s", status, body)
	}
	var key struct{ Key, ID string }
	json.Unmarshal(body, &key)
	if err := h.hello(key.Key, "gpt-4o-mini"); err != nil {
		t.Fatalf("the key an admin token created: %v", err)
	}

	_, audit := h.admin("GET", "/admin/audit?actor=oidc:ada%40example.org", "")
	var rows struct {
		Data []struct{ Actor, Action, Target string }
	}
	if err := json.Unmarshal(audit, &rows); err != nil {
		t.Fatalf("audit %s: %v", audit, err)
	}
	var actions []string
	for _, r := range rows.Data {
		if r.Actor != "oidc:ada@example.org" {
			t.Errorf("audit row %+v names another actor", r)
		}
		actions = append(actions, r.Action+" "+r.Target)
	}
	if len(actions) != 2 || !strings.Contains(strings.Join(actions, ","), key.ID) {
		t.Errorf("audit rows of the admin's subject: %q, want the client's creation and key %s's", actions, key.ID)
	}

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"expired":          token("ada@example.org", map[string]any{"groups": []string{"sluice-admins"}, "exp": time.Now().Add(-10 * time.Minute).Unix()}),
		"another audience": token("ada@example.org", map[string]any{"groups": []string{"sluice-admins"}, "aud": "sluice"}),
		"another key":      sign(t, other, "k1", idp.claims("ada@example.org", map[string]any{"aud": "sluice-admin", "groups": []string{"sluice-admins"}})),
		"no signature":     unsigned(idp.claims("ada@example.org", map[string]any{"aud": "sluice-admin", "groups": []string{"sluice-admins"}})),
	} {
		status, body := h.adminAs(tok, "GET", "/admin/usage", "")
		if status != http.StatusUnauthorized || !strings.Contains(string(body), `"code":"invalid_admin_token"`) {
			t.Errorf("%s token: %d %s, want 401 invalid_admin_token", name, status, body)
		}
	}
}
