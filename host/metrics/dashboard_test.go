package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// registered is every series name Metrics exposes, with the label names of
// each: a histogram as its _bucket, _sum and _count.
func registered(t *testing.T) map[string]map[string]bool {
	t.Helper()
	one := func() (uint64, uint64) { return 1, 1 }
	count := func() uint64 { return 1 }
	m := New(Options{Models: []string{"gpt-4o"}, Plugins: []string{"pii"}, NoRuntime: true, Sources: Sources{
		PolicyReloads: one, ShadowDisagreements: count, ShadowErrors: count, AuthCache: one, ExhaustedCache: one,
		LimitsBackendErrors: count, LedgerQueueDepth: func() int { return 1 }, Ready: func() bool { return true },
	}})
	m.Record(&Request{Endpoint: EndpointChat, Department: "d", Client: "c", Model: "gpt-4o", Status: 200,
		PromptTokens: 1, CompletionTokens: 1, CostNanos: 1, Stages: Stages{StageTotal: time.Millisecond}})
	m.PolicyError()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, mf := range mfs {
		labels := map[string]bool{}
		for _, metric := range mf.GetMetric() {
			for _, lp := range metric.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		names := []string{mf.GetName()}
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			names = []string{mf.GetName() + "_bucket", mf.GetName() + "_sum", mf.GetName() + "_count"}
		}
		for _, n := range names {
			out[n] = labels
		}
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			out[mf.GetName()+"_bucket"] = with(labels, "le")
		}
	}
	return out
}

func with(m map[string]bool, k string) map[string]bool {
	out := map[string]bool{k: true}
	for l := range m {
		out[l] = true
	}
	return out
}

type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

var (
	variable   = regexp.MustCompile(`\$\{?\w+\}?`)
	selector   = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"[^"]*"`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	rangeSel   = regexp.MustCompile(`\[[^\]]*\]`)
	number     = regexp.MustCompile(`\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	labelVals  = regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)
	keywords   = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
)

// promqlRefs lists the metric names an expression reads, the label names
// its selectors match on, and the label names it groups by.
func promqlRefs(expr string) (metrics, matched, grouped []string) {
	e := variable.ReplaceAllString(expr, "")
	for _, s := range selector.FindAllStringSubmatch(e, -1) {
		for _, mt := range matcher.FindAllStringSubmatch(s[2], -1) {
			matched = append(matched, mt[1])
		}
	}
	e = selector.ReplaceAllString(e, "$1")
	for _, g := range grouping.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				grouped = append(grouped, l)
			}
		}
	}
	e = grouping.ReplaceAllString(e, " ")
	e = rangeSel.ReplaceAllString(e, "")
	e = number.ReplaceAllString(e, "")
	for _, id := range identifier.FindAllStringSubmatch(e, -1) {
		if id[1] != "" || slices.Contains(keywords, id[0]) {
			continue // a function or a keyword
		}
		metrics = append(metrics, id[0])
	}
	return metrics, matched, grouped
}

// TestDashboardReadsOnlyRegisteredMetrics keeps the Grafana dashboard from
// drifting from the code: every metric a panel or variable queries is one
// Metrics registers, and every label it selects or groups by is one of that
// metric's labels.
func TestDashboardReadsOnlyRegisteredMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana/sluice.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/sluice.json: %v", err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v, want one Prometheus datasource input DS_PROMETHEUS", d.Inputs)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current Grafana's (36 or later)", d.SchemaVersion)
	}
	reg := registered(t)
	check := func(where, expr string) {
		metrics, matched, grouped := promqlRefs(expr)
		if len(metrics) == 0 {
			t.Errorf("%s: %q reads no metric", where, expr)
		}
		labels := map[string]bool{}
		for _, name := range metrics {
			ls, ok := reg[name]
			if !ok {
				t.Errorf("%s: %q reads %s, which Sluice does not register", where, expr, name)
			}
			for l := range ls {
				labels[l] = true
			}
		}
		for _, l := range append(matched, grouped...) {
			if !labels[l] && l != "instance" && l != "job" {
				t.Errorf("%s: %q uses label %s, which none of %v has", where, expr, l, metrics)
			}
		}
	}
	ids := map[int]bool{}
	var walk func([]panel)
	n := 0
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d is used twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			n++
			if p.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: datasource %q, want ${DS_PROMETHEUS}", p.Title, p.Datasource.UID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				check("panel "+p.Title, tg.Expr)
			}
		}
	}
	walk(d.Panels)
	if n < 10 {
		t.Errorf("%d panels, want the dozen the README lists", n)
	}
	for _, v := range d.Templating.List {
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			_ = json.Unmarshal(v.Query, &q.Query)
		}
		m := labelVals.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
			continue
		}
		if !reg[m[1]][m[2]] {
			t.Errorf("variable %s: %s has no label %s", v.Name, m[1], m[2])
		}
	}
}

func TestPromQLRefs(t *testing.T) {
	for _, c := range []struct {
		expr                      string
		metrics, matched, grouped []string
	}{
		{`sum by (code) (rate(sluice_requests_total{code!="",department=~"$department"}[$__rate_interval]))`,
			[]string{"sluice_requests_total"}, []string{"code", "department"}, []string{"code"}},
		{`histogram_quantile(0.99, sum by (le, stage) (rate(sluice_stage_duration_seconds_bucket{stage!="plugin"}[5m])))`,
			[]string{"sluice_stage_duration_seconds_bucket"}, []string{"stage"}, []string{"le", "stage"}},
		{`sum(rate(a_total{result="hit"}[1m])) / sum(rate(a_total[1m])) * 3600 + 1e6`,
			[]string{"a_total", "a_total"}, []string{"result"}, nil},
		{`sluice_ready`, []string{"sluice_ready"}, nil, nil},
	} {
		metrics, matched, grouped := promqlRefs(c.expr)
		if !slices.Equal(metrics, c.metrics) || !slices.Equal(matched, c.matched) || !slices.Equal(grouped, c.grouped) {
			t.Errorf("promqlRefs(%q) = %v %v %v, want %v %v %v", c.expr, metrics, matched, grouped, c.metrics, c.matched, c.grouped)
		}
	}
}
