package e2e

import (
	"context"
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
)

// TestReportsCountOnlyRequestsForAModel lists the models, asks for a path
// Sluice does not serve and calls without a key, beside one chat completion:
// `sluice report --by model` shows the model and no blank row, and the
// refused callers are counted in the metrics.
func TestReportsCountOnlyRequestsForAModel(t *testing.T) {
	g := startGateway(t, baseConfig(t))
	key, _ := g.createClient("app", "research", "open")
	c := g.client(key)
	if a := ask(c, 20); a.status != http.StatusOK {
		t.Fatalf("chat: %s", a.outcome())
	}
	if page, err := c.Models.List(context.Background()); err != nil || len(page.Data) == 0 {
		t.Fatalf("listing models: %v", err)
	}
	if _, err := c.Models.Get(context.Background(), "gpt-4o-mini"); err != nil {
		t.Fatalf("a model: %v", err)
	}
	for _, call := range []struct {
		path, key string
		want      int
	}{{"/v1/nope", "", http.StatusNotFound}, {"/v1/models", "", http.StatusUnauthorized}, {"/v1/chat/completions", "", http.StatusUnauthorized}} {
		req, _ := http.NewRequest("GET", "http://"+g.cfg.Server.Listen+call.path, nil)
		if call.path == "/v1/chat/completions" {
			req.Method = "POST"
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != call.want {
			t.Fatalf("%s: %d, want %d", call.path, resp.StatusCode, call.want)
		}
	}
	g.usage("model") // flushes the ledger

	rows, err := csv.NewReader(strings.NewReader(string(sluiceCLI(t, "report", "--config", g.cfgPath, "--by", "model", "--format", "csv")))).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][0] != "gpt-4o-mini" || rows[1][1] != "1" {
		t.Fatalf("sluice report --by model = %v (%v); want one row: gpt-4o-mini, 1 request", rows, err)
	}
	// Callers without a client are not in the ledger, where a flood of them
	// would grow it: the metrics count them, by code.
	if denials := string(sluiceCLI(t, "report", "denials", "--config", g.cfgPath, "--format", "csv")); strings.TrimSpace(denials) != "code,requests" {
		t.Errorf("sluice report denials counts requests without a client:\n%s", denials)
	}
	_, metrics := g.admin("GET", "/metrics", "")
	for _, want := range []string{`sluice_unauthenticated_requests_total{reason="invalid_api_key"} 2`, `sluice_unauthenticated_requests_total{reason="not_found"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
