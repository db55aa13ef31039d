package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/internal/browsertest"
	"github.com/sluicehq/sluice/host/internal/testenv"
)

// TestDashboardShowsDeploymentStateInChromium: the dashboard lists a
// model's deployments from /admin/upstreams. A headless Chromium sees both
// in rotation with the quota the gateway has used; once one provider fails
// and its breaker opens, a refresh shows it ejected for failures; once it
// answers again and the probe goes, it is back in rotation.
func TestDashboardShowsDeploymentStateInChromium(t *testing.T) {
	flaky, good := testenv.NewProvider(t), testenv.NewProvider(t)
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams, flaky.Upstream("flaky"), good.Upstream("good"))
	cfg.Models = append(cfg.Models, config.Model{Name: "routed", Upstream: "flaky",
		Deployments: []config.Deployment{
			{Name: "flaky", Upstream: "flaky", UpstreamModel: "x"},
			{Name: "good", Upstream: "good", UpstreamModel: "x", RPM: 1000},
		},
		Circuit: config.Circuit{Failures: 2, Window: config.Duration(time.Minute), Cooldown: config.Duration(time.Second)}})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	ask := func(n int) {
		t.Helper()
		for i := range n {
			params := chat("routed", "hello there")
			params.MaxTokens = openai.Int(5)
			if _, err := c.Chat.Completions.New(context.Background(), params); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
	}
	ask(4)

	ctx, exceptions := browsertest.Browser(t)
	defer func() {
		if errs := exceptions(); len(errs) > 0 {
			t.Errorf("JavaScript exceptions on the page: %q", errs)
		}
	}()
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("deployments").innerText + " | " + document.getElementById("board-error").textContent`))
			t.Fatalf("%s: %v; the page shows %q", what, err, page)
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
	row := func(name string) string { return fmt.Sprintf(`#deployments tr[data-deployment=%q]`, name) }
	step("signing in",
		chromedp.Navigate("http://"+h.srv.AdminAddr()+"/admin/dashboard"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), cfg.Server.AdminToken),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		browsertest.WaitAttr(row("flaky"), "data-state", "closed"),
		browsertest.WaitText(row("flaky"), "In rotation"),
		browsertest.WaitText(row("flaky"), "routed"),
		// The good deployment's quota, beside its use over the last minute
		// (a sliding estimate, exact only within one minute).
		browsertest.WaitText(row("good"), " / 1,000 requests"))
	if used := eval(`document.querySelector('#deployments tr[data-deployment="good"] td.num:last-child').textContent`); used == "0 / 1,000 requests" {
		t.Errorf("the good deployment's quota use reads %q after it served %d requests", used, good.Hits.Load())
	}

	flaky.FailWith.Store(http.StatusInternalServerError)
	ask(10)
	if st := h.deploymentState("flaky"); st != "open" {
		t.Fatalf("flaky is %s after failing, want open", st)
	}
	step("refreshing after the ejection",
		chromedp.Click(chromedp.ID("refresh")),
		browsertest.WaitAttr(row("flaky"), "data-state", "open"),
		browsertest.WaitText(row("flaky"), "Ejected, failing"),
		browsertest.WaitAttr(row("good"), "data-state", "closed"))

	flaky.FailWith.Store(0)
	time.Sleep(1100 * time.Millisecond)
	step("refreshing after the cool-down",
		chromedp.Click(chromedp.ID("refresh")),
		browsertest.WaitAttr(row("flaky"), "data-state", "half_open"),
		browsertest.WaitText(row("flaky"), "Probing"))
	ask(6)
	step("refreshing after the probe",
		chromedp.Click(chromedp.ID("refresh")),
		browsertest.WaitAttr(row("flaky"), "data-state", "closed"),
		browsertest.WaitText(row("flaky"), "In rotation"))
}
