package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/store"
)

// seedLedger writes usage events into the store of data folder dir.
func seedLedger(t *testing.T, dir string, events ...store.UsageEvent) {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.InsertUsage(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

func used(id, client, dept, model string, at time.Time, tokens, micros int64) store.UsageEvent {
	return store.UsageEvent{Time: at, RequestID: id, ClientID: client, Department: dept, Model: model, Status: 200,
		PromptTokens: tokens, TotalTokens: tokens, CostNanos: micros * 1000, UsageSource: store.UsageUpstream}
}

func TestReportPeriodsAndGroupings(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	seedLedger(t, dir,
		used("r1", "bot", "finance", "gpt-4o", day.Add(9*time.Hour), 100, 1_500_000),
		used("r2", "bot", "finance", "gpt-4o-mini", day.Add(10*time.Hour), 50, 250),
		used("r3", "crm", "sales", "gpt-4o", day.Add(-24*time.Hour), 10, 10),
		used("r4", "crm", "sales", "gpt-4o", day.AddDate(0, 1, 0), 999, 999), // December
		store.UsageEvent{Time: day.Add(11 * time.Hour), RequestID: "r5", ClientID: "bot", Department: "finance", Model: "gpt-4o", Status: 429, Code: "budget_exceeded"},
		store.UsageEvent{Time: day.Add(12 * time.Hour), RequestID: "r6", Status: 401, Code: "invalid_api_key"},
		store.UsageEvent{Time: day.Add(13 * time.Hour), RequestID: "r7", ClientID: "bot", Department: "finance", Model: "gpt-4o", Status: 429, Code: "budget_exceeded"},
	)
	csvOf := func(args ...string) [][]string {
		t.Helper()
		out, err := run(t, append(append([]string{}, args...), "--data-dir", dir, "--format", "csv")...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("%v: not CSV: %v\n%s", args, err, out)
		}
		return records
	}
	tests := []struct {
		args []string
		want string // the CSV rows after the header, one per line
	}{
		{[]string{"report", "--month", "2026-11", "--by", "department"}, "finance,4,150,0,150,1.500250,0,0.000000\nsales,1,10,0,10,0.000010,0,0.000000"},
		{[]string{"report", "--day", "2026-11-28", "--by", "model"}, "gpt-4o,3,100,0,100,1.500000,0,0.000000\ngpt-4o-mini,1,50,0,50,0.000250,0,0.000000"},
		{[]string{"report", "--from", "2026-11-27", "--to", "2026-11-27", "--by", "client"}, "crm,1,10,0,10,0.000010,0,0.000000"},
		{[]string{"report", "series", "--every", "day", "--month", "2026-11", "--by", "department"},
			"2026-11-27T00:00:00Z,sales,1,10,0,10,0.000010\n2026-11-28T00:00:00Z,finance,4,150,0,150,1.500250"},
		{[]string{"report", "series", "--every", "hour", "--day", "2026-11-28", "--by", "client"},
			"2026-11-28T09:00:00Z,bot,1,100,0,100,1.500000\n2026-11-28T10:00:00Z,bot,1,50,0,50,0.000250\n2026-11-28T11:00:00Z,bot,1,0,0,0,0.000000\n2026-11-28T13:00:00Z,bot,1,0,0,0,0.000000"},
		{[]string{"report", "denials", "--month", "2026-11"}, "budget_exceeded,2\ninvalid_api_key,1"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			records := csvOf(tt.args...)
			var rows []string
			for _, r := range records[1:] {
				rows = append(rows, strings.Join(r, ","))
			}
			if got := strings.Join(rows, "\n"); got != tt.want {
				t.Errorf("rows =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}

	out, err := run(t, "report", "series", "--data-dir", dir, "--day", "2026-11-28", "--every", "hour", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var points []map[string]any
	if err := json.Unmarshal([]byte(out), &points); err != nil || len(points) != 4 || points[0]["start"] != "2026-11-28T09:00:00Z" {
		t.Errorf("series JSON = %s (%v)", out, err)
	}
}

func TestReportFlagErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"report", "--day", "2026-11-28", "--month", "2026-11"}, "--day, --month and --from/--to"},
		{[]string{"report", "--month", "November"}, "--month"},
		{[]string{"report", "series", "--every", "week"}, "hour or day"},
		{[]string{"report", "denials", "--from", "2026-11-02", "--to", "2026-11-01T00:00:00Z"}, "not before"},
	}
	for _, c := range cases {
		_, err := run(t, append(c.args, "--data-dir", dir)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

// TestReportByDeployment groups what each deployment served: a model on
// two providers (a request refused before it named a model is no usage row).
func TestReportByDeployment(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	east := used("d1", "bot", "finance", "gpt-4o", day.Add(9*time.Hour), 100, 1000)
	east.Deployment, east.UpstreamType = "openai/gpt-4o", "openai"
	west := used("d2", "bot", "finance", "gpt-4o", day.Add(10*time.Hour), 40, 400)
	west.Deployment, west.UpstreamType = "azure-eu/gpt4o-prod", "azure_openai"
	west.Attempts = `[{"deployment":"openai/gpt-4o","status":429,"ms":3},{"deployment":"azure-eu/gpt4o-prod","status":200,"ms":80}]`
	again := used("d3", "bot", "finance", "gpt-4o", day.Add(11*time.Hour), 60, 600)
	again.Deployment, again.UpstreamType = "openai/gpt-4o", "openai"
	refused := store.UsageEvent{Time: day.Add(12 * time.Hour), RequestID: "d4", ClientID: "bot", Department: "finance", Status: 429, Code: "rate_limit_exceeded"}
	seedLedger(t, dir, east, west, again, refused)
	out, err := run(t, "report", "--data-dir", dir, "--day", "2026-11-28", "--by", "deployment", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	want := "deployment,requests,prompt_tokens,completion_tokens,total_tokens,cost_usd,cache_hits,saved_usd\n" +
		"azure-eu/gpt4o-prod,1,40,0,40,0.000400,0,0.000000\nopenai/gpt-4o,2,160,0,160,0.001600,0,0.000000\n"
	if out != want {
		t.Errorf("report --by deployment =\n%s\nwant\n%s", out, want)
	}
	// The same usage by the kind of provider paid.
	out, err = run(t, "report", "--data-dir", dir, "--day", "2026-11-28", "--by", "upstream_type", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	want = "upstream_type,requests,prompt_tokens,completion_tokens,total_tokens,cost_usd,cache_hits,saved_usd\n" +
		"azure_openai,1,40,0,40,0.000400,0,0.000000\nopenai,2,160,0,160,0.001600,0,0.000000\n"
	if out != want {
		t.Errorf("report --by upstream_type =\n%s\nwant\n%s", out, want)
	}
}

func TestReportByCacheShowsHitsAndSavings(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	miss := used("r1", "bot", "finance", "gpt-4o", day.Add(9*time.Hour), 100, 1_500)
	miss.Cache = store.CacheMiss
	hit := used("r2", "bot", "finance", "gpt-4o", day.Add(10*time.Hour), 100, 0)
	hit.Cache, hit.SavedNanos = store.CacheHit, 1_500_000
	seedLedger(t, dir, miss, hit, used("r3", "crm", "sales", "gpt-4o", day.Add(11*time.Hour), 10, 10))
	out, err := run(t, "report", "--day", "2026-11-28", "--by", "cache", "--data-dir", dir, "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	want := "cache,requests,prompt_tokens,completion_tokens,total_tokens,cost_usd,cache_hits,saved_usd\n" +
		",1,10,0,10,0.000010,0,0.000000\nhit,1,100,0,100,0.000000,1,0.001500\nmiss,1,100,0,100,0.001500,0,0.000000\n"
	if out != want {
		t.Errorf("report --by cache =\n%s\nwant\n%s", out, want)
	}
}
