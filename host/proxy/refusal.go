package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/sluicehq/sluice/host/upstream"
)

// A provider's content filter may refuse what another provider, or another
// model, would answer. A model with fallback_on_refusal tries its next
// deployment instead of relaying such a refusal, as long as nothing of the
// reply has reached the caller: the upstream's 400 naming its content
// filter, a whole reply whose every choice finished with content_filter, or
// a stream whose first choice ends with content_filter before any text.
// The refusal is not the deployment's failure: its breaker does not count
// it.

// refusalCodes are the error codes with which providers refuse content:
// Azure OpenAI's content_filter, OpenAI's content_policy_violation.
var refusalCodes = map[string]bool{"content_filter": true, "content_policy_violation": true}

// finishContentFilter is the finish_reason of a choice a content filter
// cut short (OpenAI, Azure, and Gemini's and Bedrock's safety stops as the
// upstreams translate them).
const finishContentFilter = "content_filter"

// peekLimit bounds the events read ahead of the caller while looking for a
// streamed refusal: a stream that has said nothing decisive by then is
// relayed as it is.
const peekLimit = 8

// contentRefusal reports whether up is a content-policy refusal. A stream
// is read ahead until its first text, finish or error; up.Events is then
// replaced by one that replays what was read before the rest, so that up
// can still be relayed whole.
func contentRefusal(up *upstream.Reply) bool {
	switch {
	case up == nil:
		return false
	case up.Status == http.StatusBadRequest && up.Events == nil:
		var e struct {
			Error struct {
				Code any `json:"code"`
			} `json:"error"`
		}
		return json.Unmarshal(up.Body, &e) == nil && refusalCodes[stringOf(e.Error.Code)]
	case up.Status != http.StatusOK:
		return false
	case up.Events == nil:
		var reply struct {
			Choices []struct {
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if json.Unmarshal(up.Body, &reply) != nil || len(reply.Choices) == 0 {
			return false
		}
		for _, c := range reply.Choices {
			if c.FinishReason != finishContentFilter {
				return false
			}
		}
		return true
	}
	peek := &peekedEvents{Events: up.Events}
	up.Events = peek
	for range peekLimit {
		data, err := peek.Events.Next()
		// Kept as a copy: a stream may reuse its buffer for the next event.
		peek.read = append(peek.read, peeked{append([]byte(nil), data...), err})
		if err != nil {
			break
		}
		switch refused, decided := chunkRefusal(data); {
		case refused:
			return true
		case decided:
			return false
		}
	}
	return false
}

// stringOf is v when it is a string, "" otherwise (a provider's error code
// may be null or a number).
func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

// chunkRefusal reads one streamed chunk: decided once it carries text, a
// tool call or a finish, or is not a chat chunk at all; refused when it
// finishes with content_filter before any of those.
func chunkRefusal(data []byte) (refused, decided bool) {
	var chunk struct {
		Choices *[]struct {
			Delta struct {
				Content   string          `json:"content"`
				Refusal   string          `json:"refusal"`
				ToolCalls json.RawMessage `json:"tool_calls"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
	}
	if json.Unmarshal(data, &chunk) != nil || chunk.Choices == nil {
		return false, true
	}
	for _, c := range *chunk.Choices {
		if c.FinishReason != nil && *c.FinishReason == finishContentFilter {
			return true, true
		}
		if c.Delta.Content != "" || c.Delta.Refusal != "" || len(c.Delta.ToolCalls) > 0 || c.FinishReason != nil {
			return false, true
		}
	}
	return false, false
}

// peeked is one event read ahead of the caller.
type peeked struct {
	data []byte
	err  error
}

// peekedEvents replays the events read ahead, then reads on.
type peekedEvents struct {
	upstream.Events
	read []peeked
}

func (p *peekedEvents) Next() ([]byte, error) {
	if len(p.read) == 0 {
		return p.Events.Next()
	}
	e := p.read[0]
	if e.err == nil {
		p.read = p.read[1:]
	}
	// An error is kept: every later Next returns it, as the stream would.
	return e.data, e.err
}
