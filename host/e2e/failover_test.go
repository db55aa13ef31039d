package e2e

import (
	"encoding/json"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
)

// TestProviderKilledMidLoadFailsOver: a model on two deployments, one of
// them a provider process (another Sluice serving its mock) that is killed
// while callers keep sending. Every caller still gets its answer from the
// other deployment, the dead one is ejected (in /admin/upstreams and in the
// metrics), and each request is billed once.
func TestProviderKilledMidLoadFailsOver(t *testing.T) {
	provider := startGateway(t, baseConfig(t))
	providerKey, _ := provider.createClient("gateway", "ops", "open")

	cfg := baseConfig(t)
	cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: "peer", Type: "openai",
		BaseURL: "http://" + provider.cfg.Server.Listen + "/v1", APIKey: providerKey,
		Timeout: config.Duration(5 * time.Second), ConnectTimeout: config.Duration(time.Second), MaxConns: 32})
	cfg.Models = []config.Model{{Name: model, InputPerMillion: 0.15, OutputPerMillion: 0.60,
		Deployments: []config.Deployment{
			{Name: "peer", Upstream: "peer", UpstreamModel: model, Weight: 3},
			{Name: "local", Upstream: "mock", UpstreamModel: model, Weight: 1},
		},
		Circuit: config.Circuit{Failures: 3, Window: config.Duration(time.Minute), Cooldown: config.Duration(time.Minute)}}}
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "research", "open")
	c := g.client(key)

	var answers []answer
	for round := range 10 {
		if round == 3 {
			provider.stop(syscall.SIGKILL)
		}
		answers = append(answers, askAll([]openai.Client{c}, 10, 10)...)
	}
	counts := tally(answers)
	if counts["200"] != len(answers) {
		t.Fatalf("outcomes %v over %d requests; want every one answered 200", counts, len(answers))
	}
	status, body := g.admin("GET", "/admin/upstreams", "")
	if status != http.StatusOK {
		t.Fatalf("/admin/upstreams: %d %s", status, body)
	}
	var list struct {
		Data []struct{ Deployment, State string }
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, d := range list.Data {
		states[d.Deployment] = d.State
	}
	if states["peer"] != "open" || states["local"] != "closed" {
		t.Errorf("states %v; want peer ejected (open), local in rotation", states)
	}
	var served int64
	for _, an := range answers {
		served += an.tokens
	}
	if billed := g.usage("client")["app"].TotalTokens; billed != served {
		t.Errorf("the ledger bills %d tokens; the callers were served %d", billed, served)
	}
}
