package api

import "fmt"

// ResponsesRequest is what the gateway needs to know about a POST
// /v1/responses body (OpenAI's Responses API). Like a ChatRequest it keeps
// the body it was parsed from, and it collects the body's texts by
// exclusion: every string but the API's ids and enums is scanned, whatever
// member it sits in, known or not. Turning the body into a chat completion
// for an upstream is the translate package's job; it reads the body as
// SetTexts left it, so the upstream receives the texts the guardrails
// passed.
type ResponsesRequest struct {
	Model  string
	Stream bool
	// MaxOutputTokens is max_output_tokens, 0 when absent, or the lower
	// limit LowerMaxTokens set.
	MaxOutputTokens int64
	// ItemCount is the number of input items (1 for a string input): the
	// messages of the model call, as a tokenizer counts them.
	ItemCount int
	// Texts are every text of the request the model reads, and members
	// Sluice has no name for, in the order of the body; TextInfo[i] says
	// where Texts[i] sits. An input item's index is its Message; the
	// instructions are NotMessage.
	Texts    []string
	TextInfo []Text

	doc   document
	texts collected
}

// The top-level members of a Responses request that Sluice reads itself.
const (
	responsesModel = iota
	responsesStream
	responsesMaxOutputTokens
	responsesInput
	responsesFieldCount
)

var responsesFields = [responsesFieldCount]string{"model", "stream", "max_output_tokens", "input"}

// responsesContentNode is the content of an input or output message, or
// the output of a function call: a string, or an array of parts
// (input_text, input_image, input_file, output_text, refusal).
func responsesContentNode(loc Location) *node {
	return &node{loc: loc, other: LocOther, fields: map[string]*node{
		"type":        skipNode,
		"text":        {loc: loc, other: loc},
		"refusal":     {loc: LocRefusal, other: LocRefusal},
		"image_url":   {loc: LocURL, other: LocURL},
		"file_url":    {loc: LocURL, other: LocURL},
		"file_data":   {loc: LocFile, other: LocFile},
		"filename":    {loc: LocName},
		"file_id":     skipNode,
		"detail":      skipNode,
		"annotations": freeNode(LocAnnotation),
		"logprobs":    skipNode,
	}}
}

// responsesItemNode is one input item: a message, a function call, a
// function call's output, a reasoning item, or a type Sluice refuses.
func responsesItemNode() *node {
	return &node{loc: LocOther, other: LocOther, fields: map[string]*node{
		"type": skipNode, "role": skipNode, "id": skipNode, "status": skipNode, "call_id": skipNode,
		"content":   responsesContentNode(LocContent),
		"output":    responsesContentNode(LocContent),
		"name":      {loc: LocName},
		"arguments": {loc: LocToolArguments, json: true},
		"summary":   freeNode(LocReasoning),
		// A reasoning item's encrypted_content is the provider's opaque
		// blob, which no model reads through Sluice: reasoning items are
		// not sent upstream (translate), and random bytes scanned as text
		// only make findings no one wrote.
		"encrypted_content": skipNode,
	}}
}

// responsesToolNode is a tool definition: all of it is text the model
// reads, but for its type and strictness.
func responsesToolNode() *node {
	def := freeNode(LocToolDefinition)
	return &node{loc: LocToolDefinition, other: LocToolDefinition, fields: map[string]*node{
		"type": skipNode, "strict": skipNode,
		"name": {loc: LocToolDefinition}, "description": {loc: LocToolDefinition}, "parameters": def,
	}}
}

// responsesSchema is a Responses API request. As for chatSchema, numbers
// and booleans are never text, and only the API's ids and string enums are
// skipped.
var responsesSchema = &node{loc: LocOther, other: LocOther, fields: map[string]*node{
	"model":                skipNode,
	"stream":               skipNode,
	"input":                indexed(responsesItemNode()),
	"instructions":         {loc: LocContent},
	"tools":                responsesToolNode(),
	"tool_choice":          skipNode,
	"parallel_tool_calls":  skipNode,
	"text":                 {loc: LocResponseFormat, other: LocResponseFormat, fields: map[string]*node{"verbosity": skipNode, "format": {loc: LocResponseFormat, other: LocResponseFormat, fields: map[string]*node{"type": skipNode, "strict": skipNode, "schema": freeNode(LocResponseFormat)}}}},
	"metadata":             freeNode(LocMetadata),
	"user":                 {loc: LocUser},
	"safety_identifier":    {loc: LocUser},
	"reasoning":            skipNode,
	"include":              skipNode,
	"store":                skipNode,
	"background":           skipNode,
	"service_tier":         skipNode,
	"truncation":           skipNode,
	"prompt_cache_key":     skipNode,
	"previous_response_id": skipNode,
	"stream_options":       skipNode,
}}

// ParseResponsesRequest reads a /v1/responses body: a JSON object with a
// model and an input. Every problem is a 400 naming the parameter. What the
// body asks of the model (items, tools, formats) is checked when it is
// translated for the upstream.
func ParseResponsesRequest(body []byte) (*ResponsesRequest, *Error) {
	r := &ResponsesRequest{}
	if aerr := r.doc.parse(body, responsesFields[:], -1, nil); aerr != nil {
		return nil, aerr
	}
	var aerr *Error
	if r.Model, aerr = r.doc.model(); aerr != nil {
		return nil, aerr
	}
	if r.Stream, aerr = boolMember(r.doc.value(responsesStream), "stream"); aerr != nil {
		return nil, aerr
	}
	if v := r.doc.value(responsesMaxOutputTokens); present(v) {
		n, aerr := intMember(v, "max_output_tokens")
		if aerr != nil {
			return nil, aerr
		}
		if n < 16 || n > MaxTokensLimit {
			// OpenAI's own lower bound is 16.
			return nil, param("max_output_tokens", "max_output_tokens must be an integer from 16 to %d", MaxTokensLimit)
		}
		r.MaxOutputTokens = n
	}
	v := r.doc.value(responsesInput)
	if !present(v) {
		return nil, param("input", "you must provide an input parameter")
	}
	switch v[0] {
	case '"':
		r.ItemCount = 1
	case '[':
		s := scanner{buf: v}
		s.open()
		for i := 0; s.more(i == 0, ']'); i++ {
			if s.peek() != '{' {
				return nil, param(fmt.Sprintf("input[%d]", i), "input[%d] must be an object", i)
			}
			s.skip()
			r.ItemCount++
		}
		if r.ItemCount == 0 {
			return nil, param("input", "input must contain at least one item")
		}
	default:
		return nil, wrongType("input", "expected a string or an array of input items")
	}
	r.collect()
	return r, nil
}

func (r *ResponsesRequest) collect() {
	r.texts = collected{}
	r.texts.collect(r.doc.body, responsesSchema, r.doc.dropped)
	r.Texts, r.TextInfo = r.texts.texts, r.texts.meta
	// A string input is the one message of the call.
	if v := r.doc.value(responsesInput); len(v) > 0 && v[0] == '"' {
		start := r.doc.members[r.doc.last[responsesInput]-1].valStart
		for i, ref := range r.texts.refs {
			if ref.parent < 0 && ref.span.start == start {
				r.TextInfo[i] = Text{Loc: LocContent, Message: 0, Part: -1}
			}
		}
	}
}

// Body is the request as SetTexts left it, with the earlier occurrences of
// a repeated model, stream, max_output_tokens or input dropped (the last one
// is what Sluice read and scanned). The translation to a chat completion
// reads this, never the caller's original bytes.
func (r *ResponsesRequest) Body() []byte {
	var values [responsesFieldCount][]byte
	return r.doc.upstream(r.Model, values[:], "")
}

// SetTexts replaces the texts, in the order of Texts, keeping every other
// byte; it is how redaction reaches the request.
func (r *ResponsesRequest) SetTexts(texts []string) error {
	body, err := r.texts.rewrite(r.doc.body, texts)
	if err != nil {
		return err
	}
	if aerr := r.doc.parse(body, responsesFields[:], -1, nil); aerr != nil {
		return fmt.Errorf("api: the rewritten request does not parse: %s", aerr.Message)
	}
	r.collect()
	return nil
}

// LowerMaxTokens lowers the reply limit to n when the request asks for
// more or sets none, and reports whether it did; n <= 0 changes nothing.
func (r *ResponsesRequest) LowerMaxTokens(n int64) bool {
	if n <= 0 || (r.MaxOutputTokens > 0 && r.MaxOutputTokens <= n) {
		return false
	}
	r.MaxOutputTokens = n
	return true
}
