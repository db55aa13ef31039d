package translate

import (
	"encoding/json"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// Bedrock's Converse and ConverseStream bodies, as far as Sluice
// translates them. The AWS SDK's types (bedrockruntime/types) cannot be
// these: a ContentBlock, a ToolChoice or a stream event is a union behind
// an interface (ContentBlockMemberText, ContentBlockMemberToolUse…) that
// encoding/json neither writes in the wire's shape nor reads, and only the
// SDK's own unexported serializers do. So the JSON shapes are written out
// here, with the SDK's enums (roles, stop reasons, image formats) for their
// values; bedrock_sdk_test.go holds them to the SDK: what the SDK client
// sends decodes into them and encodes back the same, and what they encode
// the SDK client reads.

type converseRequest struct {
	Messages        []bedrockMessage        `json:"messages"`
	System          []bedrockSystemBlock    `json:"system,omitempty"`
	InferenceConfig *bedrockInferenceConfig `json:"inferenceConfig,omitempty"`
	ToolConfig      *bedrockToolConfig      `json:"toolConfig,omitempty"`
}

type bedrockSystemBlock struct {
	Text string `json:"text"`
}

type bedrockMessage struct {
	Role    types.ConversationRole `json:"role"`
	Content []bedrockBlock         `json:"content"`
}

// bedrockBlock is a ContentBlock: one of its members is set.
type bedrockBlock struct {
	Text             *string            `json:"text,omitempty"`
	Image            *bedrockImage      `json:"image,omitempty"`
	ToolUse          *bedrockToolUse    `json:"toolUse,omitempty"`
	ToolResult       *bedrockToolResult `json:"toolResult,omitempty"`
	ReasoningContent json.RawMessage    `json:"reasoningContent,omitempty"`
}

type bedrockImage struct {
	Format types.ImageFormat `json:"format"`
	Source struct {
		Bytes []byte `json:"bytes"` // base64 in JSON
	} `json:"source"`
}

type bedrockToolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type bedrockToolResult struct {
	ToolUseID string                     `json:"toolUseId"`
	Content   []bedrockToolResultContent `json:"content"`
	Status    types.ToolResultStatus     `json:"status,omitempty"`
}

type bedrockToolResultContent struct {
	Text *string         `json:"text,omitempty"`
	JSON json.RawMessage `json:"json,omitempty"`
}

type bedrockInferenceConfig struct {
	MaxTokens     *int64   `json:"maxTokens,omitempty"`
	Temperature   *float64 `json:"temperature,omitempty"`
	TopP          *float64 `json:"topP,omitempty"`
	StopSequences []string `json:"stopSequences,omitempty"`
}

type bedrockToolConfig struct {
	Tools      []bedrockTool      `json:"tools"`
	ToolChoice *bedrockToolChoice `json:"toolChoice,omitempty"`
}

type bedrockTool struct {
	ToolSpec struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		InputSchema struct {
			JSON json.RawMessage `json:"json"`
		} `json:"inputSchema"`
	} `json:"toolSpec"`
}

type bedrockToolChoice struct {
	Auto *struct{} `json:"auto,omitempty"`
	Any  *struct{} `json:"any,omitempty"`
	Tool *struct {
		Name string `json:"name"`
	} `json:"tool,omitempty"`
}

type converseResponse struct {
	Output struct {
		Message *bedrockMessage `json:"message,omitempty"`
	} `json:"output"`
	StopReason types.StopReason `json:"stopReason"`
	Usage      *bedrockUsage    `json:"usage,omitempty"`
	Metrics    *bedrockMetrics  `json:"metrics,omitempty"`
}

type bedrockUsage struct {
	InputTokens           int64 `json:"inputTokens"`
	OutputTokens          int64 `json:"outputTokens"`
	TotalTokens           int64 `json:"totalTokens"`
	CacheReadInputTokens  int64 `json:"cacheReadInputTokens,omitempty"`
	CacheWriteInputTokens int64 `json:"cacheWriteInputTokens,omitempty"`
}

type bedrockMetrics struct {
	LatencyMs int64 `json:"latencyMs"`
}

// bedrockStreamEvent is the payload of one ConverseStream event; which
// members are set depends on the event's :event-type (messageStart,
// contentBlockStart, contentBlockDelta, contentBlockStop, messageStop,
// metadata).
type bedrockStreamEvent struct {
	Role              types.ConversationRole `json:"role,omitempty"`
	ContentBlockIndex *int                   `json:"contentBlockIndex,omitempty"`
	Start             *struct {
		ToolUse *struct {
			ToolUseID string `json:"toolUseId"`
			Name      string `json:"name"`
		} `json:"toolUse,omitempty"`
	} `json:"start,omitempty"`
	Delta *struct {
		Text    *string `json:"text,omitempty"`
		ToolUse *struct {
			Input string `json:"input"`
		} `json:"toolUse,omitempty"`
	} `json:"delta,omitempty"`
	StopReason types.StopReason `json:"stopReason,omitempty"`
	Usage      *bedrockUsage    `json:"usage,omitempty"`
	Metrics    *bedrockMetrics  `json:"metrics,omitempty"`
}
