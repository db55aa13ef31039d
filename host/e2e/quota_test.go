package e2e

import (
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/internal/testenv"
)

// TestDeploymentQuotaHoldsAcrossReplicas: a deployment whose provider grants
// the gateway 400 tokens a minute, called through two gateway processes on
// one Redis by concurrent callers that together ask for several times that.
// The provider must never serve more than its quota: the gateway refuses the
// rest with 503 upstream_quota_exhausted and a Retry-After, before calling it.
func TestDeploymentQuotaHoldsAcrossReplicas(t *testing.T) {
	const tpm = 400
	provider := testenv.NewProvider(t)
	cfg, _ := replicaConfig(t)
	cfg.Upstreams = append(cfg.Upstreams, provider.Upstream("metered"))
	cfg.Models = []config.Model{{Name: model, InputPerMillion: 0.15, OutputPerMillion: 0.60,
		Deployments: []config.Deployment{{Upstream: "metered", UpstreamModel: "x", TPM: tpm}}}}
	a := startGateway(t, cfg)
	b := startGateway(t, replicaOf(t, cfg))
	key, _ := a.createClient("app", "research", "open")

	answers := askAll([]openai.Client{a.client(key), b.client(key)}, 120, 10)
	counts := tally(answers)
	if counts["200"]+counts["503 upstream_quota_exhausted"] != len(answers) || counts["200"] == 0 || counts["503 upstream_quota_exhausted"] == 0 {
		t.Fatalf("outcomes %v; want 200s and 503 upstream_quota_exhausted only, some of each", counts)
	}
	served := provider.Tokens.Load()
	if served > tpm {
		t.Errorf("the provider served %d tokens within the minute; its quota is %d", served, tpm)
	}
	if provider.Hits.Load() != int64(counts["200"]) {
		t.Errorf("the provider was called %d times for %d answered requests: refused ones must not reach it", provider.Hits.Load(), counts["200"])
	}
	for _, an := range answers {
		if an.status == http.StatusServiceUnavailable && an.header.Get("Retry-After") == "" {
			t.Fatal("a quota refusal without Retry-After")
		}
	}
	t.Logf("quota %d tokens a minute: %d requests answered (%d tokens served), %d refused", tpm, counts["200"], served, counts["503 upstream_quota_exhausted"])
}
