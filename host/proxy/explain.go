package proxy

import (
	"context"
	"net/http"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/store"
)

// Explanation is the answer of a dry run: the decision the request would
// get, the input the policy saw (findings included: the plugins run, on
// types and counts only), and the rules that produced it. Nothing is
// forwarded, reserved or recorded.
type Explanation struct {
	policy.Explanation
	// FirstPass is the decision before the plugins ran, when they found
	// something and the policy was asked again.
	FirstPass *policy.Decision `json:"first_pass,omitempty"`
}

// Explain runs the request path of an OpenAI request body from client up to
// the policy's last word, as the gateway would, and explains the decision.
// path is /v1/chat/completions, /v1/responses, /v1/messages or /v1/embeddings; probe sets the request's
// headers (the policy sees those it is configured to), when it arrives
// (now when zero) and the usage the policy sees (the counters' when nil).
func (g *Gateway) Explain(ctx context.Context, client store.Client, path string, body []byte, probe policy.Probe) (*Explanation, *api.Error) {
	at := probe.Time
	if at.IsZero() {
		at = g.now()
	}
	x := &exchange{start: at}
	x.ev.RequestID = newRequestID()
	var r policy.Request
	var texts []string
	var info []api.Text
	switch path {
	case pathChat:
		req, aerr := api.ParseChatRequest(body)
		if aerr != nil {
			return nil, aerr
		}
		_, r = chatRequest(req)
		texts, info = req.Texts, req.TextInfo
	case pathEmbeddings:
		req, aerr := api.ParseEmbeddingsRequest(body)
		if aerr != nil {
			return nil, aerr
		}
		_, info, r = embeddingsRequest(req)
		texts = req.Texts
	case pathCompletions:
		req, aerr := parseCompletions(body)
		if aerr != nil {
			return nil, aerr
		}
		_, r = chatRequest(req)
		r.Path = pathCompletions
		texts, info = req.Texts, req.TextInfo
	case pathResponses:
		req, aerr := api.ParseResponsesRequest(body)
		if aerr != nil {
			return nil, aerr
		}
		_, r = responsesRequest(req)
		texts, info = req.Texts, req.TextInfo
	case pathMessages:
		req, aerr := api.ParseMessagesRequest(body)
		if aerr != nil {
			return nil, aerr
		}
		_, r = messagesRequest(req, pathMessages)
		texts, info = req.Texts, req.TextInfo
	default:
		return nil, &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: "invalid_value", Param: "path",
			Message: "path must be /v1/chat/completions, /v1/responses, /v1/completions, /v1/messages or /v1/embeddings."}
	}
	in, aerr := g.policyInput(ctx, x, nil, policy.Client{ID: client.ID, Department: client.Department, Tier: client.Tier, Labels: client.Labels}, r)
	if aerr != nil {
		return nil, aerr
	}
	if len(probe.Headers) > 0 {
		in.Request.Headers = probe.Headers // the engine keeps only the configured names
	}
	if probe.Usage != nil {
		in.Usage = probe.Usage
	}
	if probe.Identity != nil {
		in.Identity = probe.Identity
	}
	ex, err := g.decider.Explain(ctx, *in)
	if err != nil {
		return nil, api.PolicyError("The access policy could not be evaluated: " + err.Error())
	}
	out := &Explanation{Explanation: ex}
	if !ex.Decision.Allowed || len(ex.Decision.Plugins) == 0 {
		return out, nil
	}
	_, aggregated, aerr := g.scan(ctx, x, ex.Decision.Plugins, texts, info)
	if aerr != nil {
		return nil, aerr
	}
	if len(aggregated) == 0 {
		return out, nil
	}
	in.Findings = aggregated
	second, err := g.decider.Explain(ctx, *in)
	if err != nil {
		return nil, api.PolicyError("The access policy could not be evaluated with the plugins' findings: " + err.Error())
	}
	first := ex.Decision
	return &Explanation{Explanation: second, FirstPass: &first}, nil
}
