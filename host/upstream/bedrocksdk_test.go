package upstream

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	"github.com/valyala/fasthttp"
)

// bedrockClient is the AWS SDK's Bedrock runtime client pointed at the
// Bedrock mock on a real socket, signing with creds.
func bedrockClient(t *testing.T, creds aws.CredentialsProvider) *bedrockruntime.Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: BedrockMockHandler(NewMock(0), "us-east-1")}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return bedrockruntime.New(bedrockruntime.Options{
		Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String("http://" + ln.Addr().String()),
		RetryMaxAttempts: 1,
	})
}

// TestBedrockMockServesTheAWSSDK holds the Bedrock mock to the protocol of
// the real service as the AWS SDK speaks it: Converse and ConverseStream
// with tools, exact usage, the SDK's own SigV4 signature accepted, and a
// wrong secret refused as Bedrock refuses it. Sluice's bedrock upstream is
// tested against the same mock, so the mock standing in for Bedrock is
// itself checked against the SDK.
func TestBedrockMockServesTheAWSSDK(t *testing.T) {
	ctx := context.Background()
	c := bedrockClient(t, credentials.NewStaticCredentialsProvider(MockAWSAccessKeyID, MockAWSSecretAccessKey, ""))
	model := "anthropic.claude-3-5-haiku-20241022-v1:0"
	msgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hello there"}}}}

	out, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: msgs,
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(20)}})
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok || len(msg.Value.Content) == 0 {
		t.Fatalf("Converse output %#v", out.Output)
	}
	text, _ := msg.Value.Content[0].(*types.ContentBlockMemberText)
	if text == nil || !strings.Contains(text.Value, "hello there") {
		t.Errorf("reply %#v, want the mock's echo", msg.Value.Content[0])
	}
	if u := out.Usage; u == nil || *u.InputTokens == 0 || *u.OutputTokens == 0 || *u.TotalTokens != *u.InputTokens+*u.OutputTokens {
		t.Errorf("usage %+v", out.Usage)
	}

	// Streamed, with a tool the mock calls (it calls a tool the prompt names).
	toolMsgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "get_weather for Paris"}}}}
	tool := &types.ToolMemberToolSpec{Value: types.ToolSpecification{Name: aws.String("get_weather"),
		InputSchema: &types.ToolInputSchemaMemberJson{Value: documentOf(map[string]any{
			"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}})}}}
	stream, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(model), Messages: toolMsgs,
		ToolConfig: &types.ToolConfiguration{Tools: []types.Tool{tool}}})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	events := stream.GetStream()
	var toolName string
	var stop types.StopReason
	var usage *types.TokenUsage
	for ev := range events.Events() {
		switch e := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockStart:
			if s, ok := e.Value.Start.(*types.ContentBlockStartMemberToolUse); ok {
				toolName = aws.ToString(s.Value.Name)
			}
		case *types.ConverseStreamOutputMemberMessageStop:
			stop = e.Value.StopReason
		case *types.ConverseStreamOutputMemberMetadata:
			usage = e.Value.Usage
		}
	}
	if err := events.Close(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if err := events.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if toolName != "get_weather" || stop != types.StopReasonToolUse {
		t.Errorf("streamed tool %q, stop %q; want a get_weather call ending in tool_use", toolName, stop)
	}
	if usage == nil || *usage.OutputTokens == 0 {
		t.Errorf("streamed usage %+v", usage)
	}

	// A client with the wrong secret is refused as Bedrock refuses it.
	bad := bedrockClient(t, credentials.NewStaticCredentialsProvider(MockAWSAccessKeyID, "not-the-secret", ""))
	_, err = bad.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: msgs})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidSignatureException" && apiErr.ErrorCode() != "AccessDeniedException" {
		t.Errorf("wrong secret: %v, want Bedrock's signature refusal", err)
	}
}

// documentOf is v as the SDK's JSON document type.
func documentOf(v any) document.Interface { return document.NewLazyDocument(v) }
