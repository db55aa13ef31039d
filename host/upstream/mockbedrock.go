package upstream

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/valyala/fasthttp"
)

var bedrockPath = regexp.MustCompile(`^/model/([^/]+)/(converse|converse-stream)$`)

// BedrockMockHandler serves the mock as Bedrock's runtime API does in
// region: POST /model/{modelId}/converse and /converse-stream (AWS
// event-stream framing). Every request's SigV4 signature is verified with
// the AWS SDK's signer against MockAWSAccessKeyID and
// MockAWSSecretAccessKey; a missing, stale or wrong signature gets
// Bedrock's 403. The request is translated to a chat request for the chat
// mock, and its reply back.
func BedrockMockHandler(m *Mock, region string) fasthttp.RequestHandler {
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: MockAWSAccessKeyID, SecretAccessKey: MockAWSSecretAccessKey}
	return func(ctx *fasthttp.RequestCtx) {
		if errType, msg := verifySigV4(ctx, signer, creds, region, time.Now()); errType != "" {
			bedrockMockError(ctx, errType, msg)
			return
		}
		match := bedrockPath.FindStringSubmatch(string(ctx.Path()))
		if match == nil || !ctx.IsPost() {
			bedrockMockError(ctx, "UnknownOperationException", "")
			return
		}
		stream := match[2] == "converse-stream"
		var req converseRequest
		if err := json.Unmarshal(ctx.PostBody(), &req); err != nil || len(req.Messages) == 0 {
			bedrockMockError(ctx, "ValidationException", "The request body is not a valid Converse request.")
			return
		}
		r := askMock(m, converseToChat(&req, match[1], stream), stream)
		if r.Status != 200 {
			msg := "The mock refused the request."
			if r.Status == 429 {
				msg = "Too many requests, please wait before trying again."
			}
			bedrockMockError(ctx, bedrockErrorType(r.Status), msg)
			return
		}
		if r.Events == nil {
			var reply chatReply
			json.Unmarshal(r.Body, &reply)
			ctx.SetContentType("application/json")
			ctx.SetBody(mustJSON(chatToConverse(&reply)))
			return
		}
		ctx.SetContentType("application/vnd.amazon.eventstream")
		events := r.Events
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer events.Close()
			s := bedrockMockStream{enc: eventstream.NewEncoder(), w: w}
			for {
				data, err := events.Next()
				if err != nil {
					return
				}
				if s.translate(data) != nil || w.Flush() != nil {
					return
				}
			}
		})
	}
}

// verifySigV4 checks a request's SigV4 signature as Bedrock does, by
// signing the request again with the SDK's signer and the known secret. It
// returns the error Bedrock would answer, or "".
func verifySigV4(ctx *fasthttp.RequestCtx, signer *v4.Signer, creds aws.Credentials, region string, now time.Time) (errType, msg string) {
	auth := string(ctx.Request.Header.Peek("Authorization"))
	if auth == "" {
		return "MissingAuthenticationTokenException", "Missing Authentication Token"
	}
	fields := map[string]string{}
	algorithm, rest, _ := strings.Cut(auth, " ")
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if algorithm != "AWS4-HMAC-SHA256" || len(scope) != 5 || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return "IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters."
	}
	if scope[0] != creds.AccessKeyID {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	if scope[2] != region || scope[3] != bedrockService {
		return "InvalidSignatureException", "Credential should be scoped to a valid region and service."
	}
	signedAt, err := time.Parse("20060102T150405Z", string(ctx.Request.Header.Peek("X-Amz-Date")))
	if err != nil || scope[1] != signedAt.Format("20060102") {
		return "IncompleteSignatureException", "The request must carry a valid X-Amz-Date."
	}
	if d := now.Sub(signedAt); d > 5*time.Minute || d < -5*time.Minute {
		return "InvalidSignatureException", "Signature expired."
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+string(ctx.Host())+string(ctx.RequestURI()), nil)
	if err != nil {
		return "InvalidSignatureException", "The request URI cannot be signed."
	}
	req.ContentLength = int64(len(ctx.PostBody()))
	for _, name := range strings.Split(fields["SignedHeaders"], ";") {
		switch name {
		case "host", "content-length":
		default:
			req.Header.Set(name, string(ctx.Request.Header.Peek(name)))
		}
	}
	sum := sha256.Sum256(ctx.PostBody())
	if signer.SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), bedrockService, region, signedAt) != nil ||
		!hmac.Equal([]byte(req.Header.Get("Authorization")), []byte(auth)) {
		return "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	}
	return "", ""
}

func bedrockMockError(ctx *fasthttp.RequestCtx, errType, msg string) {
	ctx.Response.Header.Set("X-Amzn-Errortype", errType+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	writeReply(ctx, &Reply{Status: bedrockErrorStatus(errType), Body: mustJSON(map[string]string{"message": msg})})
}

// converseToChat translates a Converse request to a chat request: the
// inverse of toConverse.
func converseToChat(c *converseRequest, model string, stream bool) []byte {
	req := chatRequest{Model: model, Stream: stream}
	if stream {
		req.StreamOptions = &chatStreamOptions{IncludeUsage: true}
	}
	for _, s := range c.System {
		req.Messages = append(req.Messages, chatMessage{Role: "system", Content: textContent(s.Text)})
	}
	for _, m := range c.Messages {
		var parts []chatPart
		var calls []chatToolCall
		for _, b := range m.Content {
			switch {
			case b.ToolResult != nil:
				var texts []string
				for _, rc := range b.ToolResult.Content {
					if rc.Text != nil {
						texts = append(texts, *rc.Text)
					} else if rc.JSON != nil {
						texts = append(texts, string(rc.JSON))
					}
				}
				req.Messages = append(req.Messages, chatMessage{Role: "tool", ToolCallID: b.ToolResult.ToolUseID, Content: textContent(strings.Join(texts, ""))})
			case b.ToolUse != nil:
				calls = append(calls, chatToolCall{ID: b.ToolUse.ToolUseID, Type: "function", Function: chatFunctionCall{Name: b.ToolUse.Name, Arguments: string(b.ToolUse.Input)}})
			case b.Image != nil:
				parts = append(parts, chatPart{Type: "image_url", ImageURL: &struct {
					URL string `json:"url"`
				}{"data:image/" + string(b.Image.Format) + ";base64," + base64.StdEncoding.EncodeToString(b.Image.Source.Bytes)}})
			case b.Text != nil:
				parts = append(parts, chatPart{Type: "text", Text: *b.Text})
			}
		}
		if len(parts) == 0 && len(calls) == 0 {
			continue
		}
		msg := chatMessage{Role: string(m.Role), Content: mustJSON(parts)}
		if len(parts) == 1 && parts[0].Type == "text" {
			msg.Content = textContent(parts[0].Text)
		}
		msg.ToolCalls = calls
		req.Messages = append(req.Messages, msg)
	}
	if ic := c.InferenceConfig; ic != nil {
		req.MaxTokens = ic.MaxTokens
	}
	if tc := c.ToolConfig; tc != nil {
		for _, t := range tc.Tools {
			var ct chatTool
			ct.Type, ct.Function.Name, ct.Function.Description, ct.Function.Parameters = "function", t.ToolSpec.Name, t.ToolSpec.Description, t.ToolSpec.InputSchema.JSON
			req.Tools = append(req.Tools, ct)
		}
		switch ch := tc.ToolChoice; {
		case ch == nil:
		case ch.Tool != nil:
			req.ToolChoice = mustJSON(map[string]any{"type": "function", "function": map[string]string{"name": ch.Tool.Name}})
		case ch.Any != nil:
			req.ToolChoice = json.RawMessage(`"required"`)
		}
	}
	return mustJSON(req)
}

// chatToConverse translates a chat completion to a Converse reply: the
// inverse of fromConverse.
func chatToConverse(r *chatReply) *converseResponse {
	out := &converseResponse{StopReason: types.StopReasonEndTurn, Metrics: &bedrockMetrics{LatencyMs: 1}}
	if len(r.Choices) > 0 && r.Choices[0].Message != nil {
		c := r.Choices[0]
		msg := &bedrockMessage{Role: types.ConversationRoleAssistant}
		if t := c.Message.text(); t != "" || len(c.Message.ToolCalls) == 0 {
			msg.Content = append(msg.Content, bedrockBlock{Text: &t})
		}
		for _, tc := range c.Message.ToolCalls {
			msg.Content = append(msg.Content, bedrockBlock{ToolUse: &bedrockToolUse{ToolUseID: tc.ID, Name: tc.Function.Name, Input: json.RawMessage(tc.Function.Arguments)}})
		}
		out.Output.Message = msg
		out.StopReason = bedrockStopOf(c.FinishReason)
	}
	if r.Usage != nil {
		out.Usage = &bedrockUsage{InputTokens: r.Usage.PromptTokens, OutputTokens: r.Usage.CompletionTokens, TotalTokens: r.Usage.TotalTokens}
	}
	return out
}

// bedrockStopOf is the Converse stop reason of a chat finish reason.
func bedrockStopOf(reason *string) types.StopReason {
	if reason == nil {
		return types.StopReasonEndTurn
	}
	switch *reason {
	case "length":
		return types.StopReasonMaxTokens
	case "tool_calls":
		return types.StopReasonToolUse
	case "content_filter":
		return types.StopReasonContentFiltered
	}
	return types.StopReasonEndTurn
}

// bedrockMockStream writes the chat mock's chunks as ConverseStream
// events: messageStart, a text block's deltas or a tool use's start and
// input fragments, contentBlockStop, messageStop, and metadata with usage.
type bedrockMockStream struct {
	enc     *eventstream.Encoder
	w       io.Writer
	block   int
	open    bool // a content block is open
	started bool
}

func (s *bedrockMockStream) emit(eventType string, payload any) error {
	var h eventstream.Headers
	h.Set(":event-type", eventstream.StringValue(eventType))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("event"))
	return s.enc.Encode(s.w, eventstream.Message{Headers: h, Payload: mustJSON(payload)})
}

func (s *bedrockMockStream) closeBlock() error {
	if !s.open {
		return nil
	}
	s.open = false
	err := s.emit("contentBlockStop", map[string]int{"contentBlockIndex": s.block})
	s.block++
	return err
}

func (s *bedrockMockStream) translate(data []byte) error {
	var chunk chatReply
	if json.Unmarshal(data, &chunk) != nil {
		return nil
	}
	if chunk.Usage != nil {
		u := chunk.Usage
		return s.emit("metadata", map[string]any{
			"usage":   bedrockUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens},
			"metrics": bedrockMetrics{LatencyMs: 1},
		})
	}
	for _, c := range chunk.Choices {
		if !s.started {
			s.started = true
			if err := s.emit("messageStart", map[string]any{"role": types.ConversationRoleAssistant}); err != nil {
				return err
			}
		}
		if c.Delta != nil {
			for _, tc := range c.Delta.ToolCalls {
				if tc.ID != "" {
					if err := s.closeBlock(); err != nil {
						return err
					}
					s.open = true
					if err := s.emit("contentBlockStart", map[string]any{"contentBlockIndex": s.block,
						"start": map[string]any{"toolUse": map[string]string{"toolUseId": tc.ID, "name": tc.Function.Name}}}); err != nil {
						return err
					}
				}
				if tc.Function.Arguments != "" {
					if err := s.emit("contentBlockDelta", map[string]any{"contentBlockIndex": s.block,
						"delta": map[string]any{"toolUse": map[string]string{"input": tc.Function.Arguments}}}); err != nil {
						return err
					}
				}
			}
			if t := c.Delta.text(); t != "" {
				s.open = true
				if err := s.emit("contentBlockDelta", map[string]any{"contentBlockIndex": s.block, "delta": map[string]string{"text": t}}); err != nil {
					return err
				}
			}
		}
		if c.FinishReason != nil {
			if err := s.closeBlock(); err != nil {
				return err
			}
			if err := s.emit("messageStop", map[string]any{"stopReason": bedrockStopOf(c.FinishReason)}); err != nil {
				return err
			}
		}
	}
	return nil
}
