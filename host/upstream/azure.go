package upstream

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
)

// Azure is an Azure OpenAI resource: OpenAI's wire shape, at a path per
// deployment with an api-version, authenticated by an api-key header or an
// Entra ID bearer token. The model a call names (the model's
// upstream_model) is the deployment.
type Azure struct {
	http       *httpClient
	apiVersion string
	authHeader string // api-key or Authorization
	authValue  string
}

// NewAzure returns a client for the azure_openai upstream u, dialing with
// dial (nil: the network).
func NewAzure(u config.Upstream, dial fasthttp.DialFunc) (*Azure, error) {
	h, err := newHTTPClient(u, u.BaseURL, dial)
	if err != nil {
		return nil, err
	}
	a := &Azure{http: h, apiVersion: u.APIVersion, authHeader: "api-key", authValue: u.APIKey}
	if u.AzureADToken != "" {
		a.authHeader, a.authValue = "Authorization", "Bearer "+u.AzureADToken
	}
	return a, nil
}

// Send posts c to its deployment's endpoint.
func (a *Azure) Send(ctx context.Context, c *Call) (*Reply, error) {
	var body struct {
		Model string `json:"model"`
	}
	if json.Unmarshal(c.Body, &body) != nil || body.Model == "" {
		return openAIErrorReply(400, "invalid_request_error", "unsupported_parameter", "model", "the request names no model, which is the Azure deployment"), nil
	}
	path := "/openai/deployments/" + url.PathEscape(body.Model) + c.Endpoint + "?api-version=" + url.QueryEscape(a.apiVersion)
	return sendOpenAI(ctx, a.http, c, path, a)
}

func (a *Azure) authorize(_ context.Context, req *fasthttp.Request, _ bool) error {
	req.Header.Set(a.authHeader, a.authValue)
	return nil
}

// Close releases idle connections.
func (a *Azure) Close() { a.http.Close() }

var _ Upstream = (*Azure)(nil)
