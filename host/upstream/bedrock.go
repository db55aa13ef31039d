package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/encoding/httpbinding"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
)

// bedrockService is the name Bedrock's runtime API is signed for.
const bedrockService = "bedrock"

// Bedrock is Amazon Bedrock's Converse API (converse and converse-stream),
// signed with AWS Signature Version 4. Chat requests are translated to
// Converse messages and content blocks, and replies back; a stream is read
// from AWS event-stream framing.
type Bedrock struct {
	http   *httpClient
	region string
	creds  aws.CredentialsProvider
	signer *v4.Signer
	now    func() time.Time
}

// NewBedrock returns a client for the bedrock upstream u, dialing with dial
// (nil: the network). Static keys in u are used when set; otherwise the
// AWS SDK's default credential chain.
func NewBedrock(u config.Upstream, dial fasthttp.DialFunc) (*Bedrock, error) {
	base := u.BaseURL
	if base == "" {
		base = "https://bedrock-runtime." + u.Region + ".amazonaws.com"
	}
	h, err := newHTTPClient(u, base, dial)
	if err != nil {
		return nil, err
	}
	b := &Bedrock{http: h, region: u.Region, signer: v4.NewSigner(), now: time.Now}
	if u.AWSAccessKeyID != "" {
		b.creds = credentials.NewStaticCredentialsProvider(u.AWSAccessKeyID, u.AWSSecretAccessKey, u.AWSSessionToken)
	} else {
		cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(u.Region))
		if err != nil {
			return nil, fmt.Errorf("AWS credentials: %w", err)
		}
		b.creds = cfg.Credentials
	}
	return b, nil
}

// Close releases idle connections.
func (b *Bedrock) Close() { b.http.Close() }

// Send translates the chat call c to Converse, or ConverseStream for a
// stream, and its reply back.
func (b *Bedrock) Send(ctx context.Context, c *Call) (*Reply, error) {
	if c.Endpoint != EndpointChat {
		return openAIErrorReply(404, "invalid_request_error", "unsupported_endpoint", "", "a bedrock upstream serves chat completions only"), nil
	}
	var req chatRequest
	if err := json.Unmarshal(c.Body, &req); err != nil {
		return refusalReply(err), nil
	}
	creq, err := toConverse(&req)
	if err != nil {
		return refusalReply(err), nil
	}
	body, _ := json.Marshal(creq)
	path := "/model/" + httpbinding.EscapePath(req.Model, true) + "/converse"
	if c.Stream {
		path += "-stream"
	}
	r, err := b.http.post(ctx, c, path, body, b)
	if err != nil {
		return nil, err
	}
	if r.status != fasthttp.StatusOK {
		code := "upstream_error"
		if r.awsError != "" {
			code = snakeCase(r.awsError)
		}
		reply := openAIErrorReply(r.status, errorTypeFor(r.status), code, "", "Bedrock refused the request")
		reply.Headers = r.headers // a Retry-After among them
		return reply, nil
	}
	id := "chatcmpl-bedrock-" + shortHash(c.Body)
	if r.stream == nil {
		var cr converseResponse
		if err := json.Unmarshal(r.body, &cr); err != nil {
			return openAIErrorReply(502, "server_error", "upstream_error", "", "Bedrock sent a reply that is not JSON"), nil
		}
		msg, finish, usage := fromConverse(&cr)
		return &Reply{Status: 200, Body: completion(id, b.now().Unix(), req.Model, msg, finish, usage), Headers: r.headers}, nil
	}
	s := &bedrockStream{body: r.stream, decoder: eventstream.NewDecoder(), out: chunker{id: id, created: b.now().Unix(), model: req.Model},
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage, tools: map[int]int{}}
	return &Reply{Status: 200, Events: &translatedEvents{body: r.stream, read: s.read}, Headers: r.headers}, nil
}

// authorize signs the request hr with SigV4, as the AWS SDK's signer does
// for Bedrock: the request is rebuilt as a net/http request with the
// headers that are signed (content type, accept, host and length), and the
// signature's headers are copied back.
func (b *Bedrock) authorize(ctx context.Context, hr *fasthttp.Request, stream bool) error {
	creds, err := b.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("AWS credentials: %w", err)
	}
	body := hr.Body()
	// The host and path as sent: the scheme is not signed.
	req, err := http.NewRequest(http.MethodPost, "https://"+b.http.host+string(hr.URI().PathOriginal()), nil)
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "application/vnd.amazon.eventstream")
		hr.Header.Set("Accept", "application/vnd.amazon.eventstream")
	}
	sum := sha256.Sum256(body)
	if err := b.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), bedrockService, b.region, b.now()); err != nil {
		return err
	}
	for _, name := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		if v := req.Header.Get(name); v != "" {
			hr.Header.Set(name, v)
		}
	}
	return nil
}

// toConverse translates a chat request to a Converse request.
func toConverse(req *chatRequest) (*converseRequest, error) {
	if err := req.commonRefusals(); err != nil {
		return nil, err
	}
	if rf := req.ResponseFormat; rf != nil && rf.Type != "text" && rf.Type != "" {
		return nil, refuse("response_format", "a bedrock upstream answers text only: response_format must be text")
	}
	out := &converseRequest{}
	add := func(role types.ConversationRole, blocks ...bedrockBlock) {
		// Converse wants the roles to alternate: a tool's results and the
		// user's next words form one user message.
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == role {
			out.Messages[n-1].Content = append(out.Messages[n-1].Content, blocks...)
			return
		}
		out.Messages = append(out.Messages, bedrockMessage{Role: role, Content: blocks})
	}
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			out.System = append(out.System, bedrockSystemBlock{Text: m.text()})
		case "user":
			parts, err := m.parts()
			if err != nil {
				return nil, err
			}
			var blocks []bedrockBlock
			for _, p := range parts {
				switch p.Type {
				case "text":
					blocks = append(blocks, bedrockBlock{Text: &p.Text})
				case "image_url":
					img, err := bedrockImageOf(p)
					if err != nil {
						return nil, err
					}
					blocks = append(blocks, bedrockBlock{Image: img})
				default:
					return nil, refuse("messages", "a bedrock upstream takes text and image parts only")
				}
			}
			if len(blocks) > 0 {
				add(types.ConversationRoleUser, blocks...)
			}
		case "assistant":
			var blocks []bedrockBlock
			if t := m.text(); t != "" {
				blocks = append(blocks, bedrockBlock{Text: &t})
			}
			for _, tc := range m.ToolCalls {
				args := json.RawMessage(tc.Function.Arguments)
				if !isJSONObject(args) {
					return nil, refuse("messages", "a tool call's arguments must be a JSON object")
				}
				blocks = append(blocks, bedrockBlock{ToolUse: &bedrockToolUse{ToolUseID: tc.ID, Name: tc.Function.Name, Input: args}})
			}
			if len(blocks) > 0 {
				add(types.ConversationRoleAssistant, blocks...)
			}
		case "tool":
			if m.ToolCallID == "" {
				return nil, refuse("messages", "a tool message must name the tool call it answers")
			}
			t := m.text()
			add(types.ConversationRoleUser, bedrockBlock{ToolResult: &bedrockToolResult{ToolUseID: m.ToolCallID,
				Content: []bedrockToolResultContent{{Text: &t}}}})
		default:
			return nil, refuse("messages", "a message's role must be system, developer, user, assistant or tool")
		}
	}
	stops, err := req.stops()
	if err != nil {
		return nil, err
	}
	if ic := (bedrockInferenceConfig{MaxTokens: req.maxTokens(), Temperature: req.Temperature, TopP: req.TopP, StopSequences: stops}); ic.MaxTokens != nil || ic.Temperature != nil || ic.TopP != nil || stops != nil {
		out.InferenceConfig = &ic
	}
	mode, name, err := req.toolChoice()
	if err != nil {
		return nil, err
	}
	// Converse has no "none": the model is sent no tools.
	if len(req.Tools) > 0 && mode != "none" {
		tc := &bedrockToolConfig{}
		for _, t := range req.Tools {
			if t.Type != "function" {
				return nil, refuse("tools", "a bedrock upstream takes function tools only")
			}
			var bt bedrockTool
			bt.ToolSpec.Name, bt.ToolSpec.Description = t.Function.Name, t.Function.Description
			bt.ToolSpec.InputSchema.JSON = t.Function.Parameters
			if len(bt.ToolSpec.InputSchema.JSON) == 0 {
				bt.ToolSpec.InputSchema.JSON = json.RawMessage(`{"type":"object"}`)
			}
			tc.Tools = append(tc.Tools, bt)
		}
		switch {
		case name != "":
			tc.ToolChoice = &bedrockToolChoice{Tool: &struct {
				Name string `json:"name"`
			}{name}}
		case mode == "required":
			tc.ToolChoice = &bedrockToolChoice{Any: &struct{}{}}
		}
		out.ToolConfig = tc
	}
	return out, nil
}

func bedrockImageOf(p chatPart) (*bedrockImage, error) {
	if p.ImageURL == nil {
		return nil, refuse("messages", "an image_url part has no url")
	}
	mt, data, err := dataURL(p.ImageURL.URL)
	if err != nil {
		return nil, err
	}
	format := types.ImageFormat(strings.TrimPrefix(mt, "image/"))
	switch format {
	case types.ImageFormatPng, types.ImageFormatJpeg, types.ImageFormatGif, types.ImageFormatWebp:
	default:
		return nil, refuse("messages", "a bedrock upstream takes png, jpeg, gif and webp images")
	}
	img := &bedrockImage{Format: format}
	img.Source.Bytes = data
	return img, nil
}

// fromConverse translates a Converse reply to a chat reply message, its
// finish reason and its usage.
func fromConverse(cr *converseResponse) (*chatMessage, string, *chatUsage) {
	var text strings.Builder
	var calls []chatToolCall
	if cr.Output.Message != nil {
		for _, b := range cr.Output.Message.Content {
			switch {
			case b.Text != nil:
				text.WriteString(*b.Text)
			case b.ToolUse != nil:
				args := string(b.ToolUse.Input)
				if args == "" || args == "null" {
					args = "{}"
				}
				calls = append(calls, chatToolCall{ID: b.ToolUse.ToolUseID, Type: "function", Function: chatFunctionCall{Name: b.ToolUse.Name, Arguments: args}})
			}
		}
	}
	return assistantMessage(text.String(), calls), bedrockFinish(cr.StopReason), bedrockChatUsage(cr.Usage)
}

// bedrockFinish is the chat finish reason of a Converse stop reason.
func bedrockFinish(r types.StopReason) string {
	switch r {
	case types.StopReasonToolUse:
		return "tool_calls"
	case types.StopReasonMaxTokens, types.StopReasonModelContextWindowExceeded:
		return "length"
	case types.StopReasonGuardrailIntervened, types.StopReasonContentFiltered:
		return "content_filter"
	}
	return "stop"
}

// bedrockChatUsage is the chat usage of Converse's: the prompt counts the
// tokens read from and written to the prompt cache, which Converse counts
// apart from inputTokens.
func bedrockChatUsage(u *bedrockUsage) *chatUsage {
	if u == nil {
		return nil
	}
	return newChatUsage(u.InputTokens+u.CacheReadInputTokens+u.CacheWriteInputTokens, u.OutputTokens, u.CacheReadInputTokens, 0)
}

// bedrockStream translates ConverseStream's event-stream messages to chat
// chunks.
type bedrockStream struct {
	body         *httpBody
	decoder      *eventstream.Decoder
	buf          []byte
	out          chunker
	includeUsage bool
	tools        map[int]int // content block index -> tool call index
	stopped      bool        // messageStop was read
}

// errBedrockStream is a stream Bedrock ended with an exception.
var errBedrockStream = errors.New("bedrock stream failed")

func (s *bedrockStream) read() ([][]byte, error) {
	msg, err := s.decoder.Decode(s.body, s.buf)
	if err == io.EOF {
		if !s.stopped {
			return nil, fmt.Errorf("%w: %w: it ended before messageStop", ErrUnavailable, errBedrockStream)
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, s.body.fail(err)
	}
	s.buf = msg.Payload[:0]
	header := func(name string) string {
		if v := msg.Headers.Get(name); v != nil {
			return v.String()
		}
		return ""
	}
	if t := header(":message-type"); t != "event" {
		// An exception (throttlingException, modelStreamErrorException…):
		// its name says what failed; its message is not logged.
		return nil, fmt.Errorf("%w: %w: %s", ErrUnavailable, errBedrockStream, header(":exception-type"))
	}
	var ev bedrockStreamEvent
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return nil, fmt.Errorf("%w: %w: unreadable event", ErrUnavailable, errBedrockStream)
	}
	block := 0
	if ev.ContentBlockIndex != nil {
		block = *ev.ContentBlockIndex
	}
	switch header(":event-type") {
	case "messageStart":
		return [][]byte{s.out.role()}, nil
	case "contentBlockStart":
		if ev.Start != nil && ev.Start.ToolUse != nil {
			i := len(s.tools)
			s.tools[block] = i
			return [][]byte{s.out.toolCall(i, ev.Start.ToolUse.ToolUseID, ev.Start.ToolUse.Name, "")}, nil
		}
	case "contentBlockDelta":
		switch {
		case ev.Delta == nil:
		case ev.Delta.Text != nil:
			return [][]byte{s.out.text(*ev.Delta.Text)}, nil
		case ev.Delta.ToolUse != nil:
			if i, ok := s.tools[block]; ok {
				return [][]byte{s.out.toolCall(i, "", "", ev.Delta.ToolUse.Input)}, nil
			}
		}
	case "messageStop":
		s.stopped = true
		return [][]byte{s.out.finish(bedrockFinish(ev.StopReason))}, nil
	case "metadata":
		if s.includeUsage && ev.Usage != nil {
			return [][]byte{s.out.usage(bedrockChatUsage(ev.Usage))}, nil
		}
	}
	return nil, nil
}

var _ Upstream = (*Bedrock)(nil)
