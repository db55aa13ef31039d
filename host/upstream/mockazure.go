package upstream

import (
	"regexp"
	"strings"

	"github.com/valyala/fasthttp"
)

var (
	azurePath       = regexp.MustCompile(`^/openai/deployments/([^/]+)(/chat/completions|/embeddings)$`)
	azureAPIVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)
)

// AzureMockHandler serves the mock as an Azure OpenAI resource does: POST
// /openai/deployments/{deployment}/chat/completions (and /embeddings) with
// an api-version, authenticated by the api-key header (MockAzureAPIKey) or
// an Entra ID bearer token (MockAzureADToken), with Azure's errors for a
// missing version or a wrong key.
func AzureMockHandler(m *Mock) fasthttp.RequestHandler {
	openai := MockHandler(m, nil)
	return func(ctx *fasthttp.RequestCtx) {
		match := azurePath.FindStringSubmatch(string(ctx.Path()))
		if match == nil || !ctx.IsPost() {
			azureError(ctx, 404, "404", "Resource not found")
			return
		}
		version := string(ctx.QueryArgs().Peek("api-version"))
		if version == "" {
			azureError(ctx, 404, "404", "Resource not found")
			return
		}
		if !azureAPIVersion.MatchString(version) {
			azureError(ctx, 400, "BadRequest", "API version not supported")
			return
		}
		key := string(ctx.Request.Header.Peek("api-key"))
		token, bearer := strings.CutPrefix(string(ctx.Request.Header.Peek("Authorization")), "Bearer ")
		if !(key == MockAzureAPIKey || key == "" && bearer && token == MockAzureADToken) {
			azureError(ctx, 401, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.")
			return
		}
		// The rest is OpenAI's wire shape: the chat mock answers it.
		ctx.URI().SetPath("/v1" + match[2])
		openai(ctx)
	}
}

func azureError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	writeReply(ctx, &Reply{Status: status, Body: mustJSON(map[string]any{"error": map[string]string{"code": code, "message": msg}})})
}
