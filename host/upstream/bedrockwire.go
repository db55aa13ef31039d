package upstream

import (
	"encoding/json"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// Bedrock's Converse and ConverseStream bodies, as far as the bedrock
// adapter and the mock translate them. The SDK's types are unions behind
// interfaces that only its own (unexported) serializers write, so the JSON
// shapes are written out here with the SDK's enums for their values.

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

// bedrockErrorStatus is the HTTP status Bedrock answers an error of this
// type with.
func bedrockErrorStatus(errType string) int {
	switch errType {
	case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "MissingAuthenticationTokenException", "IncompleteSignatureException":
		return 403
	case "ResourceNotFoundException", "UnknownOperationException":
		return 404
	case "ModelTimeoutException":
		return 408
	case "ThrottlingException", "ModelNotReadyException":
		return 429
	case "InternalServerException", "ModelStreamErrorException":
		return 500
	case "ServiceUnavailableException":
		return 503
	}
	return 400
}

// bedrockErrorType is the error Bedrock names for an HTTP status.
func bedrockErrorType(status int) string {
	switch status {
	case 403:
		return "AccessDeniedException"
	case 404:
		return "ResourceNotFoundException"
	case 408:
		return "ModelTimeoutException"
	case 429:
		return "ThrottlingException"
	case 503:
		return "ServiceUnavailableException"
	}
	if status >= 500 {
		return "InternalServerException"
	}
	return "ValidationException"
}
