package dashboard

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/host/internal/browsertest"
)

// view is what the test reads back from the page's DOM.
type view struct {
	KPIs        map[string]string
	Departments []row
	Total       row
	Clients     []row
	Charts      map[string][]series
	XLabels     map[string]int
	Hits        map[string]int
	Denials     []denialRow
	DenialBars  int
	Health      string
	Legend      []string
	Tips        []string // the hover titles of the spend chart's buckets
	RangeNote   string
	CSP         []string
}

type row struct {
	Key, Name string
	Texts     []string // the numbers as shown
	Values    []string // the exact numbers behind them
}

type series struct {
	Name string
	Bars int
}

type denialRow struct {
	Code, Text string
}

const readView = `(() => {
  const rows = (sel, key) => [...document.querySelectorAll(sel)].map((tr) => ({
    Key: tr.dataset[key] ?? "",
    Name: tr.querySelector("th, td").textContent,
    Texts: [...tr.querySelectorAll("td.num")].map((td) => td.textContent),
    Values: [...tr.querySelectorAll("td.num")].map((td) => td.dataset.value),
  }));
  const chart = (id) => [...document.querySelectorAll("#" + id + " svg g.series")].map((g) => ({
    Name: g.dataset.series, Bars: g.querySelectorAll("rect.bar").length,
  }));
  const kpi = (id) => document.getElementById(id).textContent;
  return {
    KPIs: { spend: kpi("kpi-spend"), tokens: kpi("kpi-tokens"), requests: kpi("kpi-requests"), denied: kpi("kpi-denied") },
    Departments: rows("#departments tbody tr", "department"),
    Total: rows("#departments tfoot tr", "department")[0],
    Clients: rows("#clients tbody tr", "client"),
    Charts: { spend: chart("spend-chart"), tokens: chart("tokens-chart") },
    XLabels: {
      spend: document.querySelectorAll("#spend-chart .x-axis text").length,
      tokens: document.querySelectorAll("#tokens-chart .x-axis text").length,
    },
    Hits: {
      spend: document.querySelectorAll("#spend-chart rect.hit").length,
      tokens: document.querySelectorAll("#tokens-chart rect.hit").length,
    },
    Denials: [...document.querySelectorAll("#denials-chart g.denial")].map((g) => ({ Code: g.dataset.code, Text: g.textContent })),
    DenialBars: document.querySelectorAll("#denials-chart rect.bar").length,
    Health: document.getElementById("health").innerText,
    Legend: [...document.querySelectorAll("#spend-legend li")].map((li) => li.textContent),
    Tips: [...document.querySelectorAll("#spend-chart rect.hit")].map((r) => r.textContent),
    RangeNote: document.getElementById("range-note").textContent,
    CSP: window.cspViolations || [],
  };
})()`

func TestDashboardInChromium(t *testing.T) {
	base := serve(t, newDashboard(t))
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
	read := func() view {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[view](readView))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return v
	}
	state := func(s string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.CSS(`body[data-state="` + s + `"] main`))
	}

	// No token yet: the page asks for one. A wrong one is refused by the
	// API and the form comes back, saying so.
	step("opening the page", chromedp.Navigate(base+PagePath), state("login"), chromedp.WaitVisible(chromedp.ID("token")))
	step("entering a wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		browsertest.WaitText("#login-error", "refused"),
		state("login"))

	step("entering the admin token",
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		state("ready"))

	v := read()
	checkSevenDays(t, v)
	// This admin API serves no /admin/upstreams: the panel says so, and
	// the page is not in error for it.
	step("reading the deployments panel", browsertest.WaitText("#deployments-note", "reports no deployments"))

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	browsertest.SaveScreenshot(t, "dashboard-7d.png", shot)

	// Another range: the 24 hours before 16:00 on the 27th, per hour.
	step("choosing the last 24 hours",
		chromedp.SetValue(chromedp.ID("range"), "24h"),
		browsertest.DispatchChange("range"),
		state("ready"))
	v = read()
	if want := "Nov 26, 2026, 16:00 – Nov 27, 2026, 16:00 UTC, per hour"; v.RangeNote != want {
		t.Errorf("24h range = %q, want %q", v.RangeNote, want)
	}
	shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	browsertest.SaveScreenshot(t, "dashboard-24h.png", shot)
	wantDay := sums(at(26, 16, 0, 0), at(27, 16, 0, 0), byDepartment)
	if got := v.Departments[0]; got.Key != "eng" || got.Values[0] != fmt.Sprint(wantDay["eng"].CostNanos) || got.Texts[0] != "$15.00" {
		t.Errorf("24h: first department = %+v, want eng at $15.00", got)
	}
	if v.Hits["spend"] != 24 || len(v.Charts["spend"]) != 3 || v.KPIs["denied"] != "7" {
		t.Errorf("24h: %d buckets, %d series, %s denied; want 24 hourly buckets, 3 departments, 7 denied",
			v.Hits["spend"], len(v.Charts["spend"]), v.KPIs["denied"])
	}

	// Top clients by tokens; eng-chat and research-nb were only refused in
	// these hours, so they tie at zero and come in order of id.
	step("ordering clients by tokens",
		chromedp.Click(chromedp.CSS(`.toggle button[data-by="tokens"]`)),
		browsertest.WaitAttr(`.toggle button[data-by="tokens"]`, "aria-pressed", "true"))
	v = read()
	var order []string
	for _, c := range v.Clients {
		order = append(order, c.Key)
	}
	if want := []string{"eng-ci", "research-lab", "sales-crm", "eng-chat", "research-nb"}; !slices.Equal(order, want) {
		t.Errorf("24h clients by tokens = %q, want %q", order, want)
	}

	// The token outlives a reload of the tab, not the tab.
	step("reloading", chromedp.Reload(), state("ready"))
	if v := read(); len(v.Departments) == 0 {
		t.Errorf("after a reload the dashboard is empty, want it loaded with the kept token")
	}
	step("forgetting the token", chromedp.Click(chromedp.ID("signout")), state("login"))
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[*string](`sessionStorage.getItem("sluice.adminToken")`))
	if err != nil || stored != nil {
		t.Errorf("after Forget token, sessionStorage holds %v (%v), want nothing", stored, err)
	}
}

// checkSevenDays holds the default view to the ledger's known numbers: the
// exact values behind each cell, and the text shown for people.
func checkSevenDays(t *testing.T, v view) {
	t.Helper()
	if len(v.CSP) > 0 {
		t.Errorf("the Content-Security-Policy refused %q", v.CSP)
	}
	wantKPIs := map[string]string{"spend": "$61.32", "tokens": "1.3M", "requests": "42", "denied": "12"}
	for k, want := range wantKPIs {
		if v.KPIs[k] != want {
			t.Errorf("%s = %q, want %q", k, v.KPIs[k], want)
		}
	}

	exact := sums(at(21, 0, 0, 0), at(28, 0, 0, 0), byDepartment)
	values := func(x totals) []string {
		return []string{fmt.Sprint(x.CostNanos), fmt.Sprint(x.TotalTokens), fmt.Sprint(x.PromptTokens),
			fmt.Sprint(x.CompletionTokens), fmt.Sprint(x.Requests)}
	}
	// spend, tokens, prompt, completion, requests
	wantDepts := []row{
		{"eng", "eng", []string{"$37.35", "636k", "524k", "112k", "25"}, values(exact["eng"])},
		{"research", "research", []string{"$21.88", "600k", "350k", "250k", "5"}, values(exact["research"])},
		{"sales", "sales", []string{"$2.10", "14.5k", "11k", "3.5k", "10"}, values(exact["sales"])},
		{"support", "support", []string{"<$0.01", "30", "20", "10", "2"}, values(exact["support"])},
	}
	if len(v.Departments) != len(wantDepts) {
		t.Fatalf("department rows = %+v, want %+v", v.Departments, wantDepts)
	}
	for i, want := range wantDepts {
		if got := v.Departments[i]; got.Key != want.Key || got.Name != want.Name ||
			!slices.Equal(got.Texts, want.Texts) || !slices.Equal(got.Values, want.Values) {
			t.Errorf("department row %d = %+v, want %+v", i, got, want)
		}
	}
	var total totals
	for _, x := range exact {
		total.Requests += x.Requests
		total.PromptTokens += x.PromptTokens
		total.CompletionTokens += x.CompletionTokens
		total.TotalTokens += x.TotalTokens
		total.CostNanos += x.CostNanos
	}
	wantTotal := row{"*total*", "Total", []string{"$61.32", "1.3M", "885k", "366k", "42"}, values(total)}
	if got := v.Total; got.Key != wantTotal.Key || got.Name != wantTotal.Name ||
		!slices.Equal(got.Texts, wantTotal.Texts) || !slices.Equal(got.Values, wantTotal.Values) {
		t.Errorf("total row = %+v, want %+v", got, wantTotal)
	}

	exactClients := sums(at(21, 0, 0, 0), at(28, 0, 0, 0), byClient)
	clientValues := func(id string) []string {
		x := exactClients[id]
		return []string{fmt.Sprint(x.CostNanos), fmt.Sprint(x.TotalTokens), fmt.Sprint(x.Requests)}
	}
	// spend, tokens, requests; the department is the row's second cell
	wantClients := []row{
		{"eng-chat", "eng-chat", []string{"$22.35", "36k", "19"}, clientValues("eng-chat")},
		{"eng-ci", "eng-ci", []string{"$15.00", "600k", "6"}, clientValues("eng-ci")},
		{"research-nb", "research-nb", []string{"$12.00", "300k", "4"}, clientValues("research-nb")},
		{"research-lab", "research-lab", []string{"$9.88", "300k", "1"}, clientValues("research-lab")},
		{"sales-crm", "sales-crm", []string{"$2.10", "14.5k", "10"}, clientValues("sales-crm")},
		{"old-bot", "old-bot", []string{"<$0.01", "30", "2"}, clientValues("old-bot")},
	}
	if len(v.Clients) != len(wantClients) {
		t.Fatalf("client rows = %+v, want %+v", v.Clients, wantClients)
	}
	for i, want := range wantClients {
		if got := v.Clients[i]; got.Key != want.Key || got.Name != want.Name ||
			!slices.Equal(got.Texts, want.Texts) || !slices.Equal(got.Values, want.Values) {
			t.Errorf("client row %d = %+v, want %+v", i, got, want)
		}
	}

	// One series per department that used tokens, one bar per day it did.
	wantSeries := []series{{"eng", 3}, {"research", 2}, {"sales", 2}, {"support", 1}}
	for _, chart := range []string{"spend", "tokens"} {
		if got := v.Charts[chart]; !slices.Equal(got, wantSeries) {
			t.Errorf("%s chart series = %+v, want %+v", chart, got, wantSeries)
		}
		if v.Hits[chart] != 7 || v.XLabels[chart] != 7 {
			t.Errorf("%s chart: %d buckets, %d day labels; want 7 and 7", chart, v.Hits[chart], v.XLabels[chart])
		}
	}
	wantLegend := []string{"eng · $37.35", "research · $21.88", "sales · $2.10", "support · <$0.01"}
	if !slices.Equal(v.Legend, wantLegend) {
		t.Errorf("legend = %q, want %q", v.Legend, wantLegend)
	}

	if len(v.Tips) != 7 || v.Tips[6] != "Fri, Nov 27, 2026 (UTC)\neng: $15.00\nsales: $1.50\nTotal: $16.50" {
		t.Errorf("spend chart tooltips = %q, want seven, the last one listing Nov 27's spend", v.Tips)
	}
	if want := "Sat, Nov 21 – Fri, Nov 27, 2026, per day (UTC)"; v.RangeNote != want {
		t.Errorf("range = %q, want %q", v.RangeNote, want)
	}

	wantDenials := []denialRow{
		{"rate_limit_exceeded", "Rate limit (requests or tokens per minute)rate_limit_exceeded4"},
		{"invalid_api_key", "Missing or bad API keyinvalid_api_key3"},
		{"pii_detected", "Blocked: personal data or secret in promptpii_detected2"},
		{"budget_exceeded", "Token or money budget exhaustedbudget_exceeded1"},
		{"outside_business_hours", "Outside business hours (policy)outside_business_hours1"},
		{"upstream_error", "Upstream failedupstream_error1"},
	}
	if !slices.Equal(v.Denials, wantDenials) || v.DenialBars != len(wantDenials) {
		t.Errorf("denials = %q with %d bars, want %q with one bar each", v.Denials, v.DenialBars, wantDenials)
	}

	for _, want := range []string{"pii", "contentfilter", "Reload refused", "module sha256 does not match",
		"3f2a9c41d07b", "Shadow disagrees", "7 (errors 0)", "42 tests passed", "3 h ago"} {
		if !strings.Contains(v.Health, want) {
			t.Errorf("health panel lacks %q:\n%s", want, v.Health)
		}
	}
}
