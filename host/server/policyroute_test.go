package server

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/config"
)

// routeRules refuse the Messages API to one tier, by the API's name, and
// keep one kind of client's requests off any model that may be served by
// Bedrock.
const routeRules = `package sluice.authz

deny contains {"http_status": 403, "code": "api_not_allowed", "type": "permission_error",
	"message": "this tier may not use the Messages API"} if {
	input.client.tier == "chat-only"
	input.request.api in {"messages", "count_tokens"}
}

deny contains {"http_status": 403, "code": "provider_not_allowed", "type": "permission_error",
	"message": "this client's prompts may not go to AWS"} if {
	input.client.labels.residency == "no-aws"
	"bedrock" in input.request.upstream_types
}
`

// A policy names the API and the provider in its own terms: a tier kept
// off the Messages API is refused it, token counts included, and keeps
// chat; a client kept off Bedrock is refused every model that Bedrock may
// serve (directly, as one deployment of several, or as a fallback) and
// keeps the others, which are all GET /v1/models lists for it. The real
// OPA engine decides, three times over, so that the decision cache cannot
// carry one API's or one model's decision to another.
func TestPolicyReadsTheAPIAndTheUpstreamTypes(t *testing.T) {
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "routes.rego", routeRules)
	cfg := policyConfig(t, open, dir, false)
	cfg.Tiers["chat-only"] = open
	cfg.Upstreams = append(cfg.Upstreams, bedrockUpstream("bedrock-us", startBedrock(t), "sluice-mock-aws-secret-access-key"))
	const claude = "anthropic.claude-3-5-haiku-20241022-v1:0"
	cfg.Models = append(cfg.Models,
		config.Model{Name: bedrockModel, Upstream: "bedrock-us", UpstreamModel: claude, InputPerMillion: 0.8, OutputPerMillion: 4},
		config.Model{Name: "claude-anywhere", Upstream: "mock", UpstreamModel: "gpt-4o-mini", InputPerMillion: 0.8, OutputPerMillion: 4,
			Deployments: []config.Deployment{
				{Name: "mock/gpt-4o-mini", Upstream: "mock", UpstreamModel: "gpt-4o-mini", Weight: 1},
				{Name: "bedrock-us/claude", Upstream: "bedrock-us", UpstreamModel: claude, Weight: 1},
			}},
		config.Model{Name: "mini-or-bedrock", Upstream: "mock", UpstreamModel: "gpt-4o-mini", Fallbacks: []string{bedrockModel}})
	h := start(t, cfg)
	chatOnly := h.addClient(accounts.NewClient{ID: "chat-only-app", Department: "research", Tier: "chat-only"})
	noAWS := h.addClient(accounts.NewClient{ID: "eu-app", Department: "research", Labels: map[string]string{"residency": "no-aws"}})
	anyone := h.addClient(accounts.NewClient{ID: "app", Department: "research"})

	messages := func(key, model string) (int, string) {
		params := userText("What is a sluice?")
		params.Model = anthropic.Model(model)
		_, err := h.anthropic(key).Messages.New(context.Background(), params)
		if err == nil {
			return 200, ""
		}
		status, code, _ := errorStatus(err)
		return status, code
	}
	countTokens := func(key string) (int, string) {
		_, err := h.anthropic(key).Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
			Model: "gpt-4o-mini", Messages: userText("What is a sluice?").Messages})
		if err == nil {
			return 200, ""
		}
		status, code, _ := errorStatus(err)
		return status, code
	}
	expect := func(what string, status int, code string, wantStatus int, wantCode string) {
		t.Helper()
		if status != wantStatus || code != wantCode {
			t.Errorf("%s: %d %q, want %d %q", what, status, code, wantStatus, wantCode)
		}
	}
	for range 3 {
		o := mustAsk(t, h.client(chatOnly), chat("gpt-4o-mini", "What is a sluice?"))
		expect("chat-only tier, chat", o.status, o.code, 200, "")
		s, c := messages(chatOnly, "gpt-4o-mini")
		expect("chat-only tier, messages", s, c, 403, "api_not_allowed")
		s, c = countTokens(chatOnly)
		expect("chat-only tier, count_tokens", s, c, 403, "api_not_allowed")
		s, c = messages(anyone, "gpt-4o-mini")
		expect("another tier, messages", s, c, 200, "")

		for _, model := range []string{bedrockModel, "claude-anywhere", "mini-or-bedrock"} {
			o := mustAsk(t, h.client(noAWS), chat(model, "What is a sluice?"))
			expect("no-aws client, chat with "+model, o.status, o.code, 403, "provider_not_allowed")
			s, c := messages(noAWS, model)
			expect("no-aws client, messages with "+model, s, c, 403, "provider_not_allowed")
			o = mustAsk(t, h.client(anyone), chat(model, "What is a sluice?"))
			expect("another client, chat with "+model, o.status, o.code, 200, "")
		}
		o = mustAsk(t, h.client(noAWS), chat("gpt-4o-mini", "What is a sluice?"))
		expect("no-aws client, a model only the mock serves", o.status, o.code, 200, "")
	}

	resp, body := h.raw("GET", "/v1/models", noAWS, "")
	var list struct{ Data []struct{ ID string } }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /v1/models: %d %s", resp.StatusCode, body)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	if !slices.Contains(ids, "gpt-4o-mini") || slices.Contains(ids, bedrockModel) || slices.Contains(ids, "claude-anywhere") ||
		slices.Contains(ids, "mini-or-bedrock") {
		t.Errorf("the no-aws client is listed %v; want the models only the mock serves", ids)
	}
}
