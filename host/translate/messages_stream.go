package translate

import (
	"encoding/json"
	"fmt"

	"github.com/sluicehq/sluice/host/api"
)

// MessagesStream turns the chunks of a streamed chat completion, one at a
// time and already through the reply guardrails, into the events of a
// streamed Message, as Anthropic sends them: message_start (and a ping);
// for each content block its content_block_start, its content_block_delta
// events (text_delta, input_json_delta) and its content_block_stop;
// message_delta with the stop reason and the usage; message_stop. Every
// text an event carries came from a chunk it was given.
type MessagesStream struct {
	meta    MessagesMeta
	started bool
	blocks  int // content blocks started so far
	open    int // the open block's index, -1 for none
	text    int // the open text block's index, -1 for none
	calls   map[int]int
	finish  string
	stopSeq *string
	usage   *chatUsage
	failed  bool
}

// NewMessagesStream starts the events of the Message m describes.
func NewMessagesStream(m MessagesMeta) *MessagesStream {
	return &MessagesStream{meta: m, open: -1, text: -1, calls: map[int]int{}}
}

func event(out []Event, name string, fields map[string]any) []Event {
	fields["type"] = name
	b, _ := marshal(fields)
	return append(out, Event{Name: name, Data: b})
}

func (s *MessagesStream) start(out []Event) []Event {
	if s.started {
		return out
	}
	s.started = true
	var null *string
	out = event(out, "message_start", map[string]any{"message": map[string]any{
		"id": s.meta.ID, "type": "message", "role": "assistant", "model": s.meta.Model, "content": []any{},
		"stop_reason": null, "stop_sequence": null,
		"usage": messagesUsage{InputTokens: s.meta.PromptTokens},
	}})
	return event(out, "ping", map[string]any{})
}

func (s *MessagesStream) closeBlock(out []Event) []Event {
	if s.open < 0 {
		return out
	}
	out = event(out, "content_block_stop", map[string]any{"index": s.open})
	s.open, s.text = -1, -1
	return out
}

// Chunk translates one chat.completion.chunk (the JSON of its data line).
func (s *MessagesStream) Chunk(data []byte) ([]Event, error) {
	var c chatMessageReply
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("translate: reading a chat completion chunk: %w", err)
	}
	if s.failed {
		return nil, nil
	}
	if present(c.Error) {
		// The upstream's own words are not passed on: they can quote the
		// request, and no guardrail has read them.
		return s.Fail(api.UpstreamError("The upstream reported an error during the stream.")), nil
	}
	out := s.start(nil)
	if c.Usage != nil {
		s.usage = c.Usage
	}
	for _, ch := range c.Choices {
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
		}
		if ch.StopSequence != nil {
			s.stopSeq = ch.StopSequence
		}
		d := ch.Delta
		if d == nil {
			continue
		}
		for _, t := range []*string{d.Content, d.Refusal} {
			if t == nil || *t == "" {
				continue
			}
			if s.text < 0 {
				out = s.closeBlock(out)
				s.open, s.text = s.blocks, s.blocks
				s.blocks++
				out = event(out, "content_block_start", map[string]any{"index": s.open,
					"content_block": map[string]any{"type": "text", "text": ""}})
			}
			out = event(out, "content_block_delta", map[string]any{"index": s.text,
				"delta": map[string]any{"type": "text_delta", "text": *t}})
		}
		for k, tc := range d.ToolCalls {
			idx := k
			if tc.Index != nil {
				idx = *tc.Index
			}
			block, ok := s.calls[idx]
			if !ok {
				out = s.closeBlock(out)
				block = s.blocks
				s.blocks++
				s.calls[idx], s.open = block, block
				out = event(out, "content_block_start", map[string]any{"index": block, "content_block": map[string]any{
					"type": "tool_use", "id": toolUseID(tc.ID), "name": tc.Function.Name, "input": map[string]any{}}})
			}
			if a := tc.Function.Arguments; a != "" {
				out = event(out, "content_block_delta", map[string]any{"index": block,
					"delta": map[string]any{"type": "input_json_delta", "partial_json": a}})
			}
		}
	}
	return out, nil
}

// End closes the open block and ends the Message with its stop reason and
// usage: the upstream's, from the chunk that carried it.
func (s *MessagesStream) End() []Event {
	if s.failed {
		return nil
	}
	out := s.start(nil)
	out = s.closeBlock(out)
	reason := stopReason(s.finish, s.stopSeq)
	var seq *string
	if reason == "stop_sequence" {
		seq = s.stopSeq
	}
	u := s.usage.messages()
	if s.usage == nil {
		u.InputTokens = s.meta.PromptTokens
	}
	out = event(out, "message_delta", map[string]any{"delta": map[string]any{"stop_reason": reason, "stop_sequence": seq},
		"usage": u})
	return event(out, "message_stop", map[string]any{})
}

// Fail is the error event that ends a Message the gateway stopped: a
// reply the guardrails refused, or an upstream that broke off.
func (s *MessagesStream) Fail(e *api.Error) []Event {
	if s.failed {
		return nil
	}
	s.failed = true
	_, body := MessagesError(e)
	return []Event{{Name: "error", Data: body}}
}

// ChatStream turns the events of a streamed Message from an Anthropic
// upstream into the chunks of a streamed chat completion, ending with the
// usage chunk (empty choices) that an OpenAI upstream sends when asked for
// stream_options.include_usage: the provider's usage, which is billed.
type ChatStream struct {
	id, model string
	created   int64
	calls     map[int]int // the Message's block index to the tool call's
	usage     messagesUsage
	stop      *string
	stopSeq   *string
	done      bool
}

// NewChatStream starts the chunks of a chat completion created at created.
func NewChatStream(created int64) *ChatStream {
	return &ChatStream{created: created, calls: map[int]int{}}
}

// Done reports whether message_stop (or an error) was read: nothing
// follows it.
func (s *ChatStream) Done() bool { return s.done }

// streamEvent is any event of a streamed Message.
type streamEvent struct {
	Type    string `json:"type"`
	Index   int    `json:"index"`
	Message *struct {
		ID    string        `json:"id"`
		Model string        `json:"model"`
		Usage messagesUsage `json:"usage"`
	} `json:"message"`
	ContentBlock *struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
		Text string `json:"text"`
	} `json:"content_block"`
	Delta *struct {
		Type         string  `json:"type"`
		Text         string  `json:"text"`
		PartialJSON  string  `json:"partial_json"`
		StopReason   *string `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	} `json:"delta"`
	Usage *struct {
		InputTokens              *int64 `json:"input_tokens"`
		CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
		OutputTokens             *int64 `json:"output_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

func (s *ChatStream) chunk(delta map[string]any, finish any) []byte {
	choice := map[string]any{"index": 0, "delta": delta, "finish_reason": finish}
	if finish == "stop" && s.stopSeq != nil && s.stop != nil && *s.stop == "stop_sequence" {
		choice[chatStopSequence] = *s.stopSeq
	}
	b, _ := marshal(map[string]any{"id": "chatcmpl-" + s.id, "object": "chat.completion.chunk", "created": s.created,
		"model": s.model, "choices": []any{choice}})
	return b
}

// Event translates the data of one event into chat chunks (none for
// events a chat stream has no chunk for: pings, block stops).
func (s *ChatStream) Event(data []byte) ([][]byte, error) {
	var ev streamEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("translate: reading a Message stream event: %w", err)
	}
	switch ev.Type {
	case "message_start":
		if ev.Message != nil {
			s.id, s.model, s.usage = ev.Message.ID, ev.Message.Model, ev.Message.Usage
		}
		return [][]byte{s.chunk(map[string]any{"role": "assistant", "content": ""}, nil)}, nil
	case "content_block_start":
		b := ev.ContentBlock
		if b == nil {
			return nil, nil
		}
		switch b.Type {
		case "text":
			if b.Text != "" {
				return [][]byte{s.chunk(map[string]any{"content": b.Text}, nil)}, nil
			}
		case "tool_use":
			n := len(s.calls)
			s.calls[ev.Index] = n
			return [][]byte{s.chunk(map[string]any{"tool_calls": []any{map[string]any{"index": n, "id": b.ID, "type": "function",
				"function": map[string]any{"name": b.Name, "arguments": ""}}}}, nil)}, nil
		}
	case "content_block_delta":
		d := ev.Delta
		if d == nil {
			return nil, nil
		}
		switch d.Type {
		case "text_delta":
			if d.Text != "" {
				return [][]byte{s.chunk(map[string]any{"content": d.Text}, nil)}, nil
			}
		case "input_json_delta":
			n, ok := s.calls[ev.Index]
			if ok && d.PartialJSON != "" {
				return [][]byte{s.chunk(map[string]any{"tool_calls": []any{map[string]any{"index": n,
					"function": map[string]any{"arguments": d.PartialJSON}}}}, nil)}, nil
			}
		}
	case "message_delta":
		if u := ev.Usage; u != nil {
			set := func(dst *int64, v *int64) {
				if v != nil {
					*dst = *v
				}
			}
			set(&s.usage.InputTokens, u.InputTokens)
			set(&s.usage.CacheCreationInputTokens, u.CacheCreationInputTokens)
			set(&s.usage.CacheReadInputTokens, u.CacheReadInputTokens)
			set(&s.usage.OutputTokens, u.OutputTokens)
		}
		if d := ev.Delta; d != nil && d.StopReason != nil {
			s.stop, s.stopSeq = d.StopReason, d.StopSequence
			return [][]byte{s.chunk(map[string]any{}, chatFinishReason(d.StopReason))}, nil
		}
	case "message_stop":
		s.done = true
		b, _ := marshal(map[string]any{"id": "chatcmpl-" + s.id, "object": "chat.completion.chunk", "created": s.created,
			"model": s.model, "choices": []any{}, "usage": chatUsageOf(s.usage)})
		return [][]byte{b}, nil
	case "error":
		s.done = true
		b, _ := marshal(map[string]any{"error": map[string]any{"type": api.TypeServer, "code": "upstream_error", "param": nil,
			"message": "The Anthropic upstream reported an error during the stream."}})
		return [][]byte{b}, nil
	}
	return nil, nil
}
