package api

import (
	"bytes"
	"encoding/json"
)

// Usage is the token count an upstream reports for one reply.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

var usageFields = []string{"usage"}

// ParseUsage reads the "usage" object of a reply body or of one stream chunk.
// ok is false when there is none (a chunk before the last, or an upstream that
// does not report usage).
func ParseUsage(body []byte) (u Usage, ok bool) {
	if !bytes.Contains(body, []byte(`"usage"`)) {
		return Usage{}, false
	}
	// One allocation-free pass finds the usage member; encoding/json then
	// decodes only that small object, not the whole reply.
	var d document
	if d.parse(body, usageFields, -1, nil) != nil {
		return Usage{}, false
	}
	v := d.value(0)
	if !present(v) || json.Unmarshal(v, &u) != nil {
		return Usage{}, false
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u, true
}

// StreamChunk is what the gateway reads from one chat.completion.chunk event.
type StreamChunk struct {
	Usage     Usage
	HasUsage  bool
	NoChoices bool   // the extra final chunk that carries only usage
	Content   string // concatenated delta content of all choices
	// Generated is every text the model generated in the chunk, which a
	// provider bills as completion tokens: the content, a refusal, the
	// reasoning, and the tool calls' names and arguments.
	Generated string
}

// ParseStreamChunk reads one SSE data payload of a chat completion stream.
func ParseStreamChunk(data []byte) (StreamChunk, bool) {
	var chunk struct {
		Choices []struct {
			Delta struct {
				Content          string `json:"content"`
				Refusal          string `json:"refusal"`
				ReasoningContent string `json:"reasoning_content"`
				Reasoning        string `json:"reasoning"`
				ToolCalls        []struct {
					Function struct {
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"delta"`
		} `json:"choices"`
		Usage *Usage `json:"usage"`
	}
	if json.Unmarshal(data, &chunk) != nil {
		return StreamChunk{}, false
	}
	var c StreamChunk
	c.NoChoices = len(chunk.Choices) == 0
	for _, ch := range chunk.Choices {
		d := &ch.Delta
		c.Content += d.Content
		c.Generated += d.Content + d.Refusal + d.ReasoningContent + d.Reasoning
		for _, tc := range d.ToolCalls {
			c.Generated += tc.Function.Name + tc.Function.Arguments
		}
	}
	if chunk.Usage != nil {
		c.Usage, c.HasUsage = *chunk.Usage, true
		if c.Usage.TotalTokens == 0 {
			c.Usage.TotalTokens = c.Usage.PromptTokens + c.Usage.CompletionTokens
		}
	}
	return c, true
}
