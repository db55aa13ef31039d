package proxy

import (
	"slices"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/tokens"
)

// apiNames names each API by its path, as input.request.api shows it: a
// rule on the API need not know its paths, nor that a response's retrieval
// and a model's lookup have their own.
var apiNames = map[string]string{
	pathChat:         "chat",
	pathCompletions:  "completions",
	pathResponses:    "responses",
	pathResponseByID: "responses",
	pathMessages:     "messages",
	pathCountTokens:  "count_tokens",
	pathEmbeddings:   "embeddings",
	pathModels:       "models",
	pathModel:        "models",
}

// upstreamTypes says which kinds of upstream (openai, anthropic, bedrock…)
// serve each public model, for the policy and the ledger, and in which
// tokenizer family its prompts are estimated. Models and upstreams are
// fixed for a gateway's life, so it is built once.
type upstreamTypes struct {
	// byModel lists, per model, the types of the deployments its requests
	// may be sent to: its own, in configuration order, then its
	// fallbacks', each type once. The first is its first deployment's.
	byModel map[string][]string
	// byDeployment is the type of each deployment a request for a model
	// may be answered by, keyed by model and deployment name.
	byDeployment map[deploymentOf]string
	// families is, per model, the family whose estimate is the highest
	// among the deployments its requests may be sent to: routing picks one
	// after the reservation is made, and a reservation too low would let
	// a request past a budget it then overruns.
	families map[string]tokens.Family
}

type deploymentOf struct{ model, deployment string }

func newUpstreamTypes(cfg *config.Config) upstreamTypes {
	typeOf := make(map[string]string, len(cfg.Upstreams))
	for _, u := range cfg.Upstreams {
		typeOf[u.Name] = u.Type
	}
	models := make(map[string]config.Model, len(cfg.Models))
	for _, m := range cfg.Models {
		models[m.Name] = m
	}
	t := upstreamTypes{byModel: map[string][]string{}, byDeployment: map[deploymentOf]string{}, families: map[string]tokens.Family{}}
	for _, m := range cfg.Models {
		var types []string
		// As routing plans a request: the model's deployments, then each
		// fallback's own (not theirs in turn).
		for _, serving := range append([]config.Model{m}, fallbacksOf(m, models)...) {
			for _, d := range serving.Serving() {
				typ := typeOf[d.Upstream]
				if !slices.Contains(types, typ) {
					types = append(types, typ)
				}
				if f := tokens.FamilyOf(typ, d.UpstreamModel); f.Estimate(100) > t.families[m.Name].Estimate(100) {
					t.families[m.Name] = f
				}
				key := deploymentOf{m.Name, d.Name}
				if _, seen := t.byDeployment[key]; !seen {
					t.byDeployment[key] = typ
				}
			}
		}
		t.byModel[m.Name] = slices.Clip(types)
	}
	return t
}

func fallbacksOf(m config.Model, models map[string]config.Model) []config.Model {
	var out []config.Model
	for _, f := range m.Fallbacks {
		if fm, ok := models[f]; ok {
			out = append(out, fm)
		}
	}
	return out
}

// complete fills in what the policy sees of r beyond its own fields: its API, the
// upstream types of its model, and its prompt's tokens in the estimate of
// the model's tokenizer family (r.PromptTokens is counted in o200k_base).
// The slice is shared by every request for the model; the policy only
// reads it.
func (t upstreamTypes) complete(r *policy.Request) {
	r.API = apiNames[r.Path]
	r.PromptTokens = int(t.estimate(r.Model, int64(r.PromptTokens)))
	types := t.byModel[r.Model]
	r.UpstreamTypes = types
	r.UpstreamType = ""
	if len(types) > 0 {
		r.UpstreamType = types[0]
	}
}

// estimate turns a prompt of n tokens counted with o200k_base into the
// estimate of model's tokenizer family.
func (t upstreamTypes) estimate(model string, n int64) int64 {
	if f, ok := t.families[model]; ok {
		return f.Estimate(n)
	}
	return n
}

// ofDeployment is the type of the upstream of the deployment that answered
// a request for model, "" when none did.
func (t upstreamTypes) ofDeployment(model, deployment string) string {
	if deployment == "" {
		return ""
	}
	return t.byDeployment[deploymentOf{model, deployment}]
}
