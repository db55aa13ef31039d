package proxy

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/policy"
)

// pathModel stands for GET /v1/models/{id} in the ledger and the metrics:
// the id is the caller's string.
const pathModel = "/v1/models/{id}"

// serveModel answers GET /v1/models/{id} in OpenAI's shape. The policy is
// asked as for one model of the list, with path /v1/models; a model the
// caller may not use is not found, as an unknown one is, so that the
// answer tells a caller nothing of the models it cannot use.
func (g *Gateway) serveModel(ctx *fasthttp.RequestCtx, x *exchange, model string) {
	id, aerr := g.authenticate(ctx, x)
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	x.ev.Model = model
	notFound := &api.Error{Status: http.StatusNotFound, Type: api.TypeInvalidRequest, Code: "model_not_found", Param: "model",
		Message: "The model does not exist on this gateway or your key may not use it."}
	if _, ok := g.router.Route(model); !ok || model == "" {
		g.fail(ctx, x, notFound)
		return
	}
	in, aerr := g.policyInput(stepContext, x, &ctx.Request.Header, clientInput(id),
		policy.Request{Method: "GET", Path: pathModels, Model: model})
	if aerr != nil {
		g.fail(ctx, x, aerr)
		return
	}
	res, err := g.evaluate(stepContext, x, in)
	if err != nil {
		g.fail(ctx, x, api.PolicyError("The access policy could not be evaluated; the request was denied."))
		return
	}
	if !res.Decision.Allowed {
		g.fail(ctx, x, notFound)
		return
	}
	body, _ := json.Marshal(struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}{model, "model", 0, "sluice"})
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	x.ev.Status = http.StatusOK
	g.record(x)
}

// modelID is the id of a GET /v1/models/{id} path, which may hold slashes
// (org/model); ok is false for another path.
func modelID(path string) (string, bool) {
	return strings.CutPrefix(path, pathModels+"/")
}
