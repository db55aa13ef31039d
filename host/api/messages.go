package api

import "fmt"

// MessagesRequest is what the gateway needs to know about a POST
// /v1/messages body (Anthropic's Messages API). Like a ResponsesRequest it
// keeps the body it was parsed from and collects its texts by exclusion:
// the system prompt, every block of every message (text, a tool_use's
// input, a tool_result's content, image data and URLs), tool definitions,
// stop sequences, metadata and any member Sluice has no name for. Turning
// the body into a chat completion is the translate package's job; it reads
// the body as SetTexts left it.
type MessagesRequest struct {
	Model  string
	Stream bool
	// MaxTokens is max_tokens, which the API requires, or the lower limit
	// LowerMaxTokens set.
	MaxTokens    int64
	MessageCount int
	// Texts are every text of the request the model reads, and members
	// Sluice has no name for, in the order of the body; TextInfo[i] says
	// where Texts[i] sits. A message's index is its Message; the system
	// prompt and tool definitions are NotMessage.
	Texts    []string
	TextInfo []Text

	doc   document
	texts collected
}

// The top-level members of a Messages request that Sluice reads itself.
const (
	messagesModel = iota
	messagesStream
	messagesMaxTokens
	messagesMessages
	messagesFieldCount
)

var messagesFields = [messagesFieldCount]string{"model", "stream", "max_tokens", "messages"}

// messagesBlockNode is a message's content, a system prompt or a
// tool_result's content: a string, or an array of blocks (text, image,
// tool_use, tool_result, which holds blocks of its own).
func messagesBlockNode() *node {
	n := &node{loc: LocContent, other: LocOther}
	n.fields = map[string]*node{
		"type":          skipNode,
		"id":            skipNode,
		"tool_use_id":   skipNode,
		"is_error":      skipNode,
		"cache_control": skipNode,
		"text":          {loc: LocContent},
		"name":          {loc: LocName},
		"input":         freeNode(LocToolArguments),
		"source": {loc: LocURL, other: LocURL, fields: map[string]*node{
			"type": skipNode, "media_type": skipNode,
			"data": {loc: LocFile},
			"url":  {loc: LocURL},
		}},
		"citations": freeNode(LocAnnotation),
		"content":   n,
	}
	return n
}

// messagesToolNode is a tool definition: all of it is text the model
// reads, but for its type and cache hint.
func messagesToolNode() *node {
	return &node{loc: LocToolDefinition, other: LocToolDefinition, fields: map[string]*node{
		"type": skipNode, "cache_control": skipNode,
		"name": {loc: LocToolDefinition}, "description": {loc: LocToolDefinition},
		"input_schema": freeNode(LocToolDefinition),
	}}
}

// messagesSchema is a Messages API request. Numbers and booleans are never
// text; only the API's ids and enums are skipped.
var messagesSchema = &node{loc: LocOther, other: LocOther, fields: map[string]*node{
	"model":  skipNode,
	"stream": skipNode,
	"messages": indexed(&node{loc: LocOther, other: LocOther, fields: map[string]*node{
		"role":    skipNode,
		"content": messagesBlockNode(),
	}}),
	"system":         messagesBlockNode(),
	"tools":          messagesToolNode(),
	"tool_choice":    skipNode,
	"stop_sequences": {loc: LocStop},
	"metadata":       {loc: LocMetadata, other: LocMetadata, fields: map[string]*node{"user_id": {loc: LocUser}}},
}}

// ParseMessagesRequest reads a /v1/messages body: a JSON object with a
// model, messages and max_tokens. Every problem is a 400 naming the
// parameter. What the body asks of the model (blocks, tools, parameters) is
// checked when it is translated for the upstream.
func ParseMessagesRequest(body []byte) (*MessagesRequest, *Error) {
	return parseMessages(body, true)
}

// ParseCountTokensRequest reads a /v1/messages/count_tokens body: a
// Messages request without max_tokens, which counting does not need.
func ParseCountTokensRequest(body []byte) (*MessagesRequest, *Error) {
	return parseMessages(body, false)
}

func parseMessages(body []byte, needMaxTokens bool) (*MessagesRequest, *Error) {
	r := &MessagesRequest{}
	if aerr := r.doc.parse(body, messagesFields[:], -1, nil); aerr != nil {
		return nil, aerr
	}
	var aerr *Error
	if r.Model, aerr = r.doc.model(); aerr != nil {
		return nil, aerr
	}
	if r.Stream, aerr = boolMember(r.doc.value(messagesStream), "stream"); aerr != nil {
		return nil, aerr
	}
	v := r.doc.value(messagesMaxTokens)
	switch {
	case present(v):
		n, aerr := intMember(v, "max_tokens")
		if aerr != nil {
			return nil, aerr
		}
		if n < 1 || n > MaxTokensLimit {
			return nil, param("max_tokens", "max_tokens must be an integer from 1 to %d", MaxTokensLimit)
		}
		r.MaxTokens = n
	case needMaxTokens:
		// Anthropic requires it, and so does Sluice: a Messages request
		// always says how long its reply may be.
		return nil, param("max_tokens", "max_tokens: Field required")
	}
	v = r.doc.value(messagesMessages)
	if !present(v) {
		return nil, param("messages", "messages: Field required")
	}
	if v[0] != '[' {
		return nil, wrongType("messages", "expected an array of messages")
	}
	s := scanner{buf: v}
	s.open()
	for i := 0; s.more(i == 0, ']'); i++ {
		if s.peek() != '{' {
			return nil, param(fmt.Sprintf("messages[%d]", i), "messages[%d] must be an object", i)
		}
		s.skip()
		r.MessageCount++
	}
	if r.MessageCount == 0 {
		return nil, param("messages", "messages: at least one message is required")
	}
	r.collect()
	return r, nil
}

func (r *MessagesRequest) collect() {
	r.texts = collected{}
	r.texts.collect(r.doc.body, messagesSchema, r.doc.dropped)
	r.Texts, r.TextInfo = r.texts.texts, r.texts.meta
}

// Body is the request as SetTexts left it, with the earlier occurrences of
// a repeated model, stream, max_tokens or messages dropped (the last one is
// what Sluice read and scanned). The translation reads this, never the
// caller's original bytes.
func (r *MessagesRequest) Body() []byte {
	var values [messagesFieldCount][]byte
	return r.doc.upstream(r.Model, values[:], "")
}

// SetTexts replaces the texts, in the order of Texts, keeping every other
// byte; it is how redaction reaches the request.
func (r *MessagesRequest) SetTexts(texts []string) error {
	body, err := r.texts.rewrite(r.doc.body, texts)
	if err != nil {
		return err
	}
	if aerr := r.doc.parse(body, messagesFields[:], -1, nil); aerr != nil {
		return fmt.Errorf("api: the rewritten request does not parse: %s", aerr.Message)
	}
	r.collect()
	return nil
}

// LowerMaxTokens lowers max_tokens to n when the request asks for more,
// and reports whether it did; n <= 0 changes nothing.
func (r *MessagesRequest) LowerMaxTokens(n int64) bool {
	if n <= 0 || r.MaxTokens <= n {
		return false
	}
	r.MaxTokens = n
	return true
}

// ReplyLimit is max_tokens.
func (r *MessagesRequest) ReplyLimit() int64 { return r.MaxTokens }
