package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/internal/browsertest"
)

// TestDashboardManagesKeysInChromium drives the dashboard in a headless
// Chromium against the real admin API: an admin creates a key (shown once,
// and working at once), rotates it, revokes it, and edits and disables a
// client, each change felt by the gateway at once; a viewer signed in to
// the same page sees usage and none of the controls, and the API refuses
// what the page would not offer.
func TestDashboardManagesKeysInChromium(t *testing.T) {
	const viewerToken = "viewer-token-of-the-dashboard-test"
	sum := sha256.Sum256([]byte(viewerToken))
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Tiers["premium"] = open
	cfg.Server.AdminTokens = []config.AdminToken{{Name: "finance-viewer", Role: config.RoleViewer, TokenSHA256: hex.EncodeToString(sum[:])}}
	h := start(t, cfg)
	if status, body := h.admin("POST", "/admin/clients", `{"id":"app","department":"research"}`); status != http.StatusCreated {
		t.Fatalf("create client: %d %s", status, body)
	}
	appKey, _ := h.createKey(`{"client_id":"app","name":"server"}`)

	ctx, exceptions := browsertest.Browser(t)
	defer func() {
		if errs := exceptions(); len(errs) > 0 {
			t.Errorf("JavaScript exceptions on the page: %q", errs)
		}
	}()
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluating %s: %v", js, err)
		}
		return v
	}
	// settled waits for the management panels to be redrawn after a change.
	settled := func() chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](`document.body.dataset.manage === "ready"`, chromedp.WithPollingTimeout(20*time.Second))
	}
	change := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		eval(`document.body.dataset.manage = "busy"`)
		step(what, append(steps, settled())...)
		if e := eval(`document.getElementById("manage-error").textContent`); e != "" {
			t.Fatalf("%s: the page says %q", what, e)
		}
	}
	keyRow := func(name, cell string) string {
		return eval(fmt.Sprintf(`[...document.querySelectorAll("#keys tbody tr")].filter((tr) => tr.cells[0].textContent === %q && tr.cells[5].textContent !== "Revoked").map((tr) => tr.querySelector(%q)?.textContent ?? tr.dataset.key).join("|")`, name, cell))
	}
	secret := func() string { return eval(`document.getElementById("key-secret-value").textContent`) }
	base := "http://" + h.srv.AdminAddr()

	step("signing in as admin",
		chromedp.Navigate(base+"/admin/dashboard"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), cfg.Server.AdminToken),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("manage")), settled(),
		browsertest.WaitText("#whoami", "admin · admin"))

	// Create: the secret is shown once and works at once.
	change("creating a key",
		chromedp.SetValue(chromedp.ID("key-client"), "app"),
		chromedp.SendKeys(chromedp.ID("key-name"), "laptop"),
		chromedp.Click(chromedp.CSS(`#key-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("key-secret")))
	created := secret()
	if !strings.HasPrefix(created, "sk-sluice-") {
		t.Fatalf("the page shows %q as the new key", created)
	}
	if err := h.hello(created, "gpt-4o-mini"); err != nil {
		t.Fatalf("the key the page created: %v", err)
	}
	if got := keyRow("laptop", "td.status"); got != "Active" {
		t.Errorf("laptop's row status %q, want Active", got)
	}
	step("dismissing the secret", chromedp.Click(chromedp.ID("key-secret-done")), chromedp.WaitNotVisible(chromedp.ID("key-secret")))
	if strings.Contains(eval(`document.documentElement.outerHTML`), created) {
		t.Fatal("the secret stays in the page after it was dismissed")
	}

	// Rotate: a new secret, which works; the old one is in its grace period.
	laptopID := keyRow("laptop", "none")
	change("rotating the key",
		chromedp.Click(chromedp.CSS(`#keys tr[data-key="`+laptopID+`"] button[data-action="rotate"]`)),
		chromedp.WaitVisible(chromedp.ID("key-secret")))
	rotated := secret()
	if !strings.HasPrefix(rotated, "sk-sluice-") || rotated == created {
		t.Fatalf("rotation showed %q", rotated)
	}
	if err := h.hello(rotated, "gpt-4o-mini"); err != nil {
		t.Fatalf("the rotated key: %v", err)
	}
	step("dismissing the secret", chromedp.Click(chromedp.ID("key-secret-done")))

	// Revoke takes two clicks; then the key is refused at once.
	rotatedID := strings.Split(keyRow("laptop", "none"), "|")
	var newID string
	for _, id := range rotatedID {
		if id != laptopID {
			newID = id
		}
	}
	revoke := chromedp.CSS(`#keys tr[data-key="` + newID + `"] button[data-action="revoke"]`)
	step("asking to revoke", chromedp.Click(revoke), browsertest.WaitText(`#keys tr[data-key="`+newID+`"]`, "Confirm revoke"))
	if err := h.hello(rotated, "gpt-4o-mini"); err != nil {
		t.Fatalf("the key was revoked on the first click: %v", err)
	}
	change("confirming the revocation", chromedp.Click(revoke))
	if got := eval(`document.querySelector('#keys tr[data-key="` + newID + `"] td.status').textContent`); got != "Revoked" {
		t.Errorf("the revoked key's status %q", got)
	}
	apiError(t, h.hello(rotated, "gpt-4o-mini"), http.StatusUnauthorized, "invalid_api_key")

	// Edit a client's department, tier and labels.
	change("editing the client",
		chromedp.Click(chromedp.CSS(`#manage-clients tr[data-client="app"] button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.ID("client-form")),
		chromedp.SetValue(chromedp.ID("client-department"), "finance"),
		chromedp.SetValue(chromedp.ID("client-tier"), "premium"),
		chromedp.SetValue(chromedp.ID("client-labels"), "team=nlp, cost_center=42"),
		chromedp.Click(chromedp.CSS(`#client-form button[type="submit"]`)))
	_, body := h.admin("GET", "/admin/clients", "")
	if !strings.Contains(string(body), `"id":"app","department":"finance","tier":"premium","labels":{"cost_center":"42","team":"nlp"}`) {
		t.Errorf("after the edit the client is %s", body)
	}
	if got := eval(`document.querySelector('#manage-clients tr[data-client="app"] td.labels').textContent`); got != "cost_center=42, team=nlp" {
		t.Errorf("labels shown as %q", got)
	}

	// A bad tier is refused with the API's message, and nothing changes.
	eval(`document.body.dataset.manage = "busy"`)
	step("giving an unknown tier",
		chromedp.Click(chromedp.CSS(`#manage-clients tr[data-client="app"] button[data-action="edit"]`)),
		chromedp.SetValue(chromedp.ID("client-tier"), "platinum"),
		chromedp.Click(chromedp.CSS(`#client-form button[type="submit"]`)),
		settled(), browsertest.WaitText("#manage-error", "platinum"))
	step("cancelling", chromedp.Click(chromedp.ID("client-cancel")))

	// Disable stops the client's keys at once; enable brings them back.
	change("disabling the client", chromedp.Click(chromedp.CSS(`#manage-clients tr[data-client="app"] button[data-action="disable"]`)))
	apiError(t, h.hello(appKey, "gpt-4o-mini"), http.StatusForbidden, "client_disabled")
	change("enabling the client", chromedp.Click(chromedp.CSS(`#manage-clients tr[data-client="app"] button[data-action="enable"]`)))
	if err := h.hello(appKey, "gpt-4o-mini"); err != nil {
		t.Fatalf("after enabling the client: %v", err)
	}

	// The audit log names the admin token behind each change.
	_, audit := h.admin("GET", "/admin/audit?actor=admin", "")
	var rows struct{ Data []struct{ Action string } }
	json.Unmarshal(audit, &rows)
	if len(rows.Data) < 7 {
		t.Errorf("audit rows of the page's changes: %s", audit)
	}

	// A viewer sees usage, and nothing to manage.
	step("signing in as a viewer",
		chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), viewerToken),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="ready"] #board`)),
		browsertest.WaitText("#whoami", "finance-viewer · viewer"))
	if got := eval(`String(document.getElementById("manage").hidden) + " " + document.querySelectorAll("#manage tbody tr, #key-client option").length`); got != "true 0" {
		t.Errorf("a viewer's page: manage hidden and rows = %q, want hidden with none drawn", got)
	}
	refused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const r = await fetch("keys", {method: "POST", headers: {Authorization: "Bearer " + sessionStorage.getItem("sluice.adminToken")},
			body: JSON.stringify({client_id: "app", name: "sneaky"})});
		return r.status + " " + (await r.json()).error.code;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if refused != "403 insufficient_role" {
		t.Errorf("a viewer's own call to create a key: %s, want 403 insufficient_role", refused)
	}
}
