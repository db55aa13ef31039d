package server

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/upstream"
)

// Sluice serves no Bedrock-shaped API of its own: an application holding
// the AWS SDK calls Bedrock directly. What the gateway does with Bedrock is
// call it, so Bedrock's side of these tests is an upstream of type bedrock
// (the real adapter, signing with SigV4) whose endpoint is the Bedrock mock
// on a real socket, which checks every signature with the AWS SDK's signer
// and refuses a wrong one as Bedrock does.

// bedrockModel is the public model served by the bedrock upstream.
const bedrockModel = "claude-bedrock"

// startBedrock serves the Bedrock mock on loopback and returns its URL.
func startBedrock(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: upstream.BedrockMockHandler(upstream.NewMock(0), upstream.MockAWSRegion)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// bedrockUpstream is an upstream of type bedrock at url signing with
// secret.
func bedrockUpstream(name, url, secret string) config.Upstream {
	return config.Upstream{Name: name, Type: config.TypeBedrock, BaseURL: url,
		Timeout: config.Duration(5 * time.Second), IdleTimeout: config.Duration(5 * time.Second), MaxConns: 4,
		Provider: config.Provider{Region: upstream.MockAWSRegion, AWSAccessKeyID: upstream.MockAWSAccessKeyID, AWSSecretAccessKey: secret}}
}

// acceptanceHarness is Sluice with the default models on the built-in mock
// and bedrockModel on a bedrock upstream, and three clients: "open" (the
// guardrails on), "pii" (the same tier, kept apart so that its refusals
// leave the open client's rows alone) and "tight" (a daily budget of 5
// tokens, which no request here fits).
type acceptanceHarness struct {
	*harness
	open, pii, tight string
}

func newAcceptanceHarness(t *testing.T) *acceptanceHarness {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Tiers["tight"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: 5}}
	cfg.Upstreams = append(cfg.Upstreams, bedrockUpstream("bedrock-us", startBedrock(t), upstream.MockAWSSecretAccessKey))
	cfg.Models = append(cfg.Models, config.Model{Name: bedrockModel, Upstream: "bedrock-us",
		UpstreamModel: "anthropic.claude-3-5-haiku-20241022-v1:0", InputPerMillion: 0.8, OutputPerMillion: 4})
	h := start(t, cfg)
	return &acceptanceHarness{harness: h,
		open:  h.addClient(accounts.NewClient{ID: "open-app", Department: "research"}),
		pii:   h.addClient(accounts.NewClient{ID: "pii-app", Department: "research"}),
		tight: h.addClient(accounts.NewClient{ID: "tight-app", Department: "research", Tier: "tight"}),
	}
}

// told is the usage a caller's SDK read from the reply.
type told struct{ prompt, completion int64 }

// sdkCase is one SDK's call of one API: send asks model for a reply to
// text with key, and returns the usage the SDK read and the request's id.
type sdkCase struct {
	name   string
	models []string
	send   func(t *testing.T, h *harness, key, model, text string) (told, string, error)
}

var sdkCases = []sdkCase{
	{"openai-go chat", []string{"gpt-4o-mini", bedrockModel}, func(t *testing.T, h *harness, key, model, text string) (told, string, error) {
		var hr *http.Response
		params := chat(model, text)
		params.MaxTokens = openai.Int(100)
		c := h.client(key)
		resp, err := c.Chat.Completions.New(context.Background(), params, option.WithResponseInto(&hr))
		if err != nil {
			return told{}, "", err
		}
		return told{resp.Usage.PromptTokens, resp.Usage.CompletionTokens}, hr.Header.Get("x-request-id"), nil
	}},
	{"openai-go chat streamed", []string{"gpt-4o-mini", bedrockModel}, func(t *testing.T, h *harness, key, model, text string) (told, string, error) {
		var hr *http.Response
		params := chat(model, text)
		params.MaxTokens = openai.Int(100)
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		c := h.client(key)
		s := c.Chat.Completions.NewStreaming(context.Background(), params, option.WithResponseInto(&hr))
		acc := openai.ChatCompletionAccumulator{}
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if err := s.Err(); err != nil {
			return told{}, "", err
		}
		return told{acc.Usage.PromptTokens, acc.Usage.CompletionTokens}, hr.Header.Get("x-request-id"), nil
	}},
	{"openai-go responses", []string{"gpt-4o-mini", bedrockModel}, func(t *testing.T, h *harness, key, model, text string) (told, string, error) {
		var hr *http.Response
		c := h.client(key)
		resp, err := c.Responses.New(context.Background(), responses.ResponseNewParams{
			Model: model, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(text)},
			MaxOutputTokens: openai.Int(100),
		}, option.WithResponseInto(&hr))
		if err != nil {
			return told{}, "", err
		}
		return told{resp.Usage.InputTokens, resp.Usage.OutputTokens}, hr.Header.Get("x-request-id"), nil
	}},
	{"openai-go responses streamed with a tool", []string{"gpt-4o-mini", bedrockModel}, func(t *testing.T, h *harness, key, model, text string) (told, string, error) {
		var hr *http.Response
		c := h.client(key)
		s := c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
			Model: model, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("get_weather: " + text)},
			Tools: []responses.ToolUnionParam{weatherTool()}, MaxOutputTokens: openai.Int(100),
		}, option.WithResponseInto(&hr))
		var done *responses.Response
		for s.Next() {
			if ev := s.Current(); ev.Type == "response.completed" {
				r := ev.AsResponseCompleted().Response
				done = &r
			}
		}
		if err := s.Err(); err != nil {
			return told{}, "", err
		}
		if done == nil {
			t.Fatal("no response.completed event")
		}
		called := false
		for _, item := range done.Output {
			called = called || (item.Type == "function_call" && item.Name == "get_weather")
		}
		if !called {
			t.Errorf("the streamed response calls no get_weather: %+v", done.Output)
		}
		return told{done.Usage.InputTokens, done.Usage.OutputTokens}, hr.Header.Get("x-request-id"), nil
	}},
	{"openai-go completions", []string{"gpt-4o-mini"}, func(t *testing.T, h *harness, key, model, text string) (told, string, error) {
		var hr *http.Response
		c := h.client(key)
		resp, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
			Model: openai.CompletionNewParamsModel(model), Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(text)},
			MaxTokens: openai.Int(100),
		}, option.WithResponseInto(&hr))
		if err != nil {
			return told{}, "", err
		}
		return told{resp.Usage.PromptTokens, resp.Usage.CompletionTokens}, hr.Header.Get("x-request-id"), nil
	}},
	{"openai-go embeddings base64", []string{"text-embedding-3-small"}, func(t *testing.T, h *harness, key, model, text string) (told, string, error) {
		var hr *http.Response
		c := h.client(key)
		resp, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model: model, Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String(text)},
			EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
		}, option.WithResponseInto(&hr))
		if err != nil {
			return told{}, "", err
		}
		if len(resp.Data) != 1 || len(resp.Data[0].Embedding) == 0 || !strings.HasPrefix(resp.Data[0].JSON.Embedding.Raw(), `"`) {
			t.Errorf("the SDK read no base64 embedding: %d vectors", len(resp.Data))
		}
		return told{resp.Usage.PromptTokens, 0}, hr.Header.Get("x-request-id"), nil
	}},
	{"anthropic-sdk-go messages", []string{"gpt-4o-mini", bedrockModel}, func(t *testing.T, h *harness, key, model, text string) (told, string, error) {
		var hr *http.Response
		params := userText(text)
		params.Model = anthropic.Model(model)
		msg, err := h.anthropic(key).Messages.New(context.Background(), params, aoption.WithResponseInto(&hr))
		if err != nil {
			return told{}, "", err
		}
		return told{msg.Usage.InputTokens, msg.Usage.OutputTokens}, hr.Header.Get("x-request-id"), nil
	}},
	{"anthropic-sdk-go messages streamed with a tool", []string{"gpt-4o-mini", bedrockModel}, func(t *testing.T, h *harness, key, model, text string) (told, string, error) {
		var hr *http.Response
		params := userText("get_weather: " + text)
		params.Model = anthropic.Model(model)
		params.Tools = []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
			Name:        "get_weather",
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}},
		}}}
		s := h.anthropic(key).Messages.NewStreaming(context.Background(), params, aoption.WithResponseInto(&hr))
		var msg anthropic.Message
		for s.Next() {
			if err := msg.Accumulate(s.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Err(); err != nil {
			return told{}, "", err
		}
		called := false
		for _, b := range msg.Content {
			called = called || (b.Type == "tool_use" && b.AsToolUse().Name == "get_weather")
		}
		if !called {
			t.Errorf("the streamed message calls no get_weather: %+v", msg.Content)
		}
		return told{msg.Usage.InputTokens, msg.Usage.OutputTokens}, hr.Header.Get("x-request-id"), nil
	}},
}

// errorStatus is the status and code of an OpenAI or Anthropic SDK error;
// ok is false for anything else.
func errorStatus(err error) (status int, code string, ok bool) {
	var oe *openai.Error
	if errors.As(err, &oe) {
		return oe.StatusCode, oe.Code, true
	}
	var ae *anthropic.Error
	if errors.As(err, &ae) {
		return ae.StatusCode, string(ae.ErrorCode()), true
	}
	return 0, "", false
}

// TestEverySDKIsGuardedBudgetedAndBilled is the acceptance matrix: each
// official SDK's call of each API, on the mock and through a bedrock
// upstream, has its PII refused before the model sees it, is refused with
// 429 once its budget cannot hold it, and leaves a ledger row with the
// tokens its caller was told, their cost at the model's prices, and the
// kind of upstream that answered.
func TestEverySDKIsGuardedBudgetedAndBilled(t *testing.T) {
	h := newAcceptanceHarness(t)
	prices := map[string]config.Model{}
	for _, m := range h.cfg.Models {
		prices[m.Name] = m
	}
	for _, c := range sdkCases {
		for _, model := range c.models {
			t.Run(c.name+"/"+model, func(t *testing.T) {
				t.Run("PII blocked", func(t *testing.T) {
					_, _, err := c.send(t, h.harness, h.pii, model, "Write to ann.lee@example.com about SSN 123-45-6789.")
					status, code, _ := errorStatus(err)
					if status != 400 || code != "pii_detected" {
						t.Fatalf("a prompt with an email and an SSN: %v, want 400 pii_detected", err)
					}
				})
				t.Run("budget 429", func(t *testing.T) {
					_, _, err := c.send(t, h.harness, h.tight, model, "What is a sluice gate for?")
					status, code, _ := errorStatus(err)
					if status != 429 || code != "budget_exceeded" {
						t.Fatalf("against a 5-token daily budget: %v, want 429 budget_exceeded", err)
					}
				})
				t.Run("ledger", func(t *testing.T) {
					got, id, err := c.send(t, h.harness, h.open, model, "What is a sluice gate for?")
					if err != nil {
						t.Fatal(err)
					}
					if got.prompt == 0 || id == "" {
						t.Fatalf("the caller was told %+v, request id %q", got, id)
					}
					row, upType := h.ledgerWithType(t, id)
					m := prices[model]
					want := m.CostNanos(got.prompt, got.completion)
					if row.Status != 200 || row.Prompt != got.prompt || row.Completion != got.completion ||
						row.CostNanos != want || want == 0 || row.UsageSource != "upstream" {
						t.Errorf("ledger %+v; want status 200, the %+v the caller was told from the upstream, and %d nano-dollars", row, got, want)
					}
					wantType := config.TypeMock
					if model == bedrockModel {
						wantType = config.TypeBedrock
					}
					if upType != wantType {
						t.Errorf("ledger upstream_type %q, want %q", upType, wantType)
					}
				})
			})
		}
	}
}

// The calls that spend nothing are billed nothing, and still named: a
// model's lookup and Anthropic's token count.
func TestSDKCallsThatSpendNothing(t *testing.T) {
	h := newAcceptanceHarness(t)
	var hr *http.Response
	oc := h.client(h.open)
	m, err := oc.Models.Get(context.Background(), bedrockModel, option.WithResponseInto(&hr))
	if err != nil || m.ID != bedrockModel {
		t.Fatalf("models retrieve: %+v, %v", m, err)
	}
	if row, _ := h.ledgerWithType(t, hr.Header.Get("x-request-id")); row.Status != 200 || row.Total != 0 || row.CostNanos != 0 || row.Endpoint != "/v1/models/{id}" {
		t.Errorf("a model lookup's row %+v, want 200 and nothing billed", row)
	}

	params := userText("What is a sluice gate for?")
	params.Model = bedrockModel
	count, err := h.anthropic(h.open).Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model: params.Model, System: anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: params.System},
		Messages: params.Messages,
	}, aoption.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if row, _ := h.ledgerWithType(t, hr.Header.Get("x-request-id")); row.Status != 200 || row.Total != 0 || row.CostNanos != 0 {
		t.Errorf("a token count's row %+v, want 200 and nothing billed", row)
	}
	msg, err := h.anthropic(h.open).Messages.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if count.InputTokens == 0 || count.InputTokens > 2*msg.Usage.InputTokens || msg.Usage.InputTokens > 2*count.InputTokens {
		t.Errorf("count_tokens said %d, the message then used %d input tokens", count.InputTokens, msg.Usage.InputTokens)
	}
	// Claude's tokenizer is not published: its estimate is o200k's count
	// (exact for an OpenAI model) with 30% added, rounded up.
	openAICount, err := h.anthropic(h.open).Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model: "gpt-4o-mini", System: anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: params.System},
		Messages: params.Messages,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (openAICount.InputTokens*13 + 9) / 10; count.InputTokens != want {
		t.Errorf("count_tokens for a Claude model on Bedrock said %d, want %d: o200k's %d and 30%%", count.InputTokens, want, openAICount.InputTokens)
	}
}

// A bedrock upstream signs every call: with the wrong secret the Bedrock
// mock refuses the signature, and the caller gets the gateway's upstream
// error, billed nothing, not a reply nor the provider's words.
func TestBedrockUpstreamSignatureIsChecked(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams, bedrockUpstream("bedrock-wrong", startBedrock(t), "not-the-secret"))
	cfg.Models = append(cfg.Models, config.Model{Name: "claude-unsigned", Upstream: "bedrock-wrong",
		UpstreamModel: "anthropic.claude-3-5-haiku-20241022-v1:0", InputPerMillion: 0.8, OutputPerMillion: 4})
	h := start(t, cfg)
	key := h.createClient("app", "research")
	var hr *http.Response
	oc := h.client(key)
	_, err := oc.Chat.Completions.New(context.Background(), chat("claude-unsigned", "hi"), option.WithResponseInto(&hr))
	status, _, _ := errorStatus(err)
	if status < 500 {
		t.Fatalf("a call Bedrock refused for its signature: %v, want a 5xx from the gateway", err)
	}
	var oe *openai.Error
	errors.As(err, &oe)
	if strings.Contains(oe.Message, "signature") || strings.Contains(oe.Message, "Secret Access Key") {
		t.Errorf("the provider's words reached the caller: %s", oe.Message)
	}
	if row, _ := h.ledgerWithType(t, oe.Response.Header.Get("x-request-id")); row.Total != 0 || row.CostNanos != 0 {
		t.Errorf("a refused call was billed: %+v", row)
	}
}

// ledgerWithType is the ledger row of a request and the upstream type it names.
func (h *harness) ledgerWithType(t *testing.T, requestID string) (ledgerRow, string) {
	t.Helper()
	row := h.ledgerRowEventually(t, requestID)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dataDir, "sluice.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var typ string
	if err := db.QueryRow(`SELECT upstream_type FROM usage_events WHERE request_id = ?`, requestID).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	return row, typ
}
