package translate

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Event is one server-sent event of a streamed Response: its name and its
// JSON data.
type Event struct {
	Name string
	Data []byte
}

// Stream turns the chunks of a streamed chat completion, one at a time and
// already through the reply guardrails, into the events of a streamed
// Response: response.created and response.in_progress first; for each
// output item its added event, its deltas and, at the end, its done events;
// and response.completed (or response.incomplete) with the usage last.
// Every text an event carries came from a chunk it was given.
type Stream struct {
	meta    Meta
	seq     int
	started bool
	items   []*streamItem
	msg     *streamItem         // the open message item
	calls   map[int]*streamItem // function calls by the chunk's tool call index
	usage   *Usage
	finish  string
	// failed is set once an error event is out: nothing follows it.
	failed bool
}

type streamItem struct {
	item    outputItem
	index   int
	done    bool
	text    strings.Builder
	refusal strings.Builder
	args    strings.Builder
	// textPart and refusalPart are the content indexes of the message's
	// parts, -1 until the part is added.
	textPart, refusalPart int
}

// NewStream starts the events of the Response m describes.
func NewStream(m Meta) *Stream {
	return &Stream{meta: m, calls: map[int]*streamItem{}}
}

func (s *Stream) emit(out []Event, name string, fields map[string]any) []Event {
	fields["type"] = name
	fields["sequence_number"] = s.seq
	s.seq++
	b, _ := marshal(fields)
	return append(out, Event{Name: name, Data: b})
}

func (s *Stream) start(out []Event) []Event {
	if s.started {
		return out
	}
	s.started = true
	r := s.meta.object("in_progress", nil, nil, "")
	out = s.emit(out, "response.created", map[string]any{"response": r})
	return s.emit(out, "response.in_progress", map[string]any{"response": r})
}

// Chunk translates one chat.completion.chunk (the JSON of its data line).
func (s *Stream) Chunk(data []byte) ([]Event, error) {
	var c chatReply
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("translate: reading a chat completion chunk: %w", err)
	}
	if s.failed {
		return nil, nil
	}
	if present(c.Error) {
		// The upstream's own words are not passed on: they can quote the
		// request, and no guardrail has read them.
		return s.Fail("upstream_error", "The upstream reported an error during the stream.", ""), nil
	}
	out := s.start(nil)
	if c.Usage != nil {
		s.usage = c.Usage.responses()
	}
	for _, ch := range c.Choices {
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
		}
		d := ch.Delta
		if d == nil {
			continue
		}
		if d.Content != nil && *d.Content != "" {
			out = s.textDelta(out, *d.Content, false)
		}
		if d.Refusal != nil && *d.Refusal != "" {
			out = s.textDelta(out, *d.Refusal, true)
		}
		for k, tc := range d.ToolCalls {
			idx := k
			if tc.Index != nil {
				idx = *tc.Index
			}
			it := s.calls[idx]
			if it == nil {
				out = s.closeMessage(out)
				callID := tc.ID
				if !validID(callID) {
					callID = NewID("call_")
				}
				empty := ""
				it = s.add(outputItem{Type: "function_call", ID: NewID("fc_"), Status: "in_progress", CallID: callID,
					Name: tc.Function.Name, Arguments: &empty})
				s.calls[idx] = it
				out = s.emit(out, "response.output_item.added", map[string]any{"output_index": it.index, "item": it.item})
			} else if tc.Function.Name != "" {
				it.item.Name += tc.Function.Name
			}
			if a := tc.Function.Arguments; a != "" {
				it.args.WriteString(a)
				out = s.emit(out, "response.function_call_arguments.delta", map[string]any{"item_id": it.item.ID,
					"output_index": it.index, "delta": a})
			}
		}
	}
	return out, nil
}

func (s *Stream) add(item outputItem) *streamItem {
	it := &streamItem{item: item, index: len(s.items), textPart: -1, refusalPart: -1}
	s.items = append(s.items, it)
	return it
}

// textDelta adds text (or a refusal) to the open message item, opening the
// item and the part first when needed.
func (s *Stream) textDelta(out []Event, delta string, isRefusal bool) []Event {
	if s.msg == nil {
		empty := []outputPart{}
		s.msg = s.add(outputItem{Type: "message", ID: NewID("msg_"), Status: "in_progress", Role: "assistant", Content: &empty})
		out = s.emit(out, "response.output_item.added", map[string]any{"output_index": s.msg.index, "item": s.msg.item})
	}
	m := s.msg
	part, b, event := &m.textPart, &m.text, "response.output_text.delta"
	if isRefusal {
		part, b, event = &m.refusalPart, &m.refusal, "response.refusal.delta"
	}
	if *part < 0 {
		*part = nextPart(m)
		p := textPart("")
		if isRefusal {
			p = refusalPart("")
		}
		out = s.emit(out, "response.content_part.added", map[string]any{"item_id": m.item.ID, "output_index": m.index,
			"content_index": *part, "part": p})
	}
	b.WriteString(delta)
	fields := map[string]any{"item_id": m.item.ID, "output_index": m.index, "content_index": *part, "delta": delta}
	if !isRefusal {
		fields["logprobs"] = []string{}
	}
	return s.emit(out, event, fields)
}

func nextPart(m *streamItem) int {
	n := 0
	if m.textPart >= 0 {
		n++
	}
	if m.refusalPart >= 0 {
		n++
	}
	return n
}

// closeMessage ends the open message item: a function call that follows
// is an item of its own.
func (s *Stream) closeMessage(out []Event) []Event {
	if s.msg == nil {
		return out
	}
	m := s.msg
	s.msg = nil
	parts := make([]outputPart, nextPart(m))
	if m.textPart >= 0 {
		p := textPart(m.text.String())
		parts[m.textPart] = p
		out = s.emit(out, "response.output_text.done", map[string]any{"item_id": m.item.ID, "output_index": m.index,
			"content_index": m.textPart, "text": m.text.String(), "logprobs": []string{}})
		out = s.emit(out, "response.content_part.done", map[string]any{"item_id": m.item.ID, "output_index": m.index,
			"content_index": m.textPart, "part": p})
	}
	if m.refusalPart >= 0 {
		p := refusalPart(m.refusal.String())
		parts[m.refusalPart] = p
		out = s.emit(out, "response.refusal.done", map[string]any{"item_id": m.item.ID, "output_index": m.index,
			"content_index": m.refusalPart, "refusal": m.refusal.String()})
		out = s.emit(out, "response.content_part.done", map[string]any{"item_id": m.item.ID, "output_index": m.index,
			"content_index": m.refusalPart, "part": p})
	}
	m.item.Content, m.item.Status, m.done = &parts, "completed", true
	return s.emit(out, "response.output_item.done", map[string]any{"output_index": m.index, "item": m.item})
}

// End closes every open item and ends the Response with its usage: the
// upstream's, from the chunk that carried it, or none when it sent none.
func (s *Stream) End() []Event {
	if s.failed {
		return nil
	}
	out := s.start(nil)
	out = s.closeMessage(out)
	for _, it := range s.items {
		if it.done {
			continue
		}
		args := it.args.String()
		it.item.Arguments, it.item.Status, it.done = &args, "completed", true
		out = s.emit(out, "response.function_call_arguments.done", map[string]any{"item_id": it.item.ID,
			"output_index": it.index, "name": it.item.Name, "arguments": args})
		out = s.emit(out, "response.output_item.done", map[string]any{"output_index": it.index, "item": it.item})
	}
	items := make([]outputItem, len(s.items))
	for i, it := range s.items {
		items[i] = it.item
	}
	status, reason := statusOf(s.finish)
	event := "response.completed"
	if status == "incomplete" {
		event = "response.incomplete"
	}
	return s.emit(out, event, map[string]any{"response": s.meta.object(status, items, s.usage, reason)})
}

// Fail is the error event that ends a Response the gateway stopped: a
// reply the guardrails refused, or an upstream that broke off.
func (s *Stream) Fail(code, message, param string) []Event {
	if s.failed {
		return nil
	}
	out := s.start(nil)
	s.failed = true
	var p any
	if param != "" {
		p = param
	}
	return s.emit(out, "error", map[string]any{"code": code, "message": message, "param": p})
}
