package policy

import (
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is the document the policy sees as input. It mirrors the JSON shape
// in policies/README.md field for field.
type Input struct {
	Client  Client  `json:"client"`
	Request Request `json:"request"`
	// Findings are the plugins' findings aggregated by (plugin, type). Empty
	// on the first evaluation of a request, before any plugin has run.
	Findings []Finding `json:"findings"`
	// Time is when the request arrived; the zero value means now.
	Time time.Time `json:"-"`
}

// Client is the authenticated caller.
type Client struct {
	ID         string            `json:"id"`
	Department string            `json:"department"`
	Tier       string            `json:"tier"`
	Labels     map[string]string `json:"labels"`
}

// Request is what the caller asked for. Model is "" for requests that name
// no model.
type Request struct {
	Method       string `json:"method"`
	Path         string `json:"path"`
	Model        string `json:"model"`
	Stream       bool   `json:"stream"`
	MaxTokens    int    `json:"max_tokens"`
	PromptTokens int    `json:"prompt_tokens"`
	MessageCount int    `json:"message_count"`
}

// Finding is what one plugin found of one type across the request's
// messages. It never carries the matched text.
type Finding struct {
	Plugin string  `json:"plugin"`
	Type   string  `json:"type"`
	Count  int     `json:"count"`
	Score  float64 `json:"score"`
	// Messages are the indexes of the messages the type was found in.
	Messages []int `json:"messages"`
}

// Keys of the input document, built once: every request shares them.
var (
	keyClient       = ast.StringTerm("client")
	keyRequest      = ast.StringTerm("request")
	keyFindings     = ast.StringTerm("findings")
	keyTime         = ast.StringTerm("time")
	keyUnix         = ast.StringTerm("unix")
	keyID           = ast.StringTerm("id")
	keyDepartment   = ast.StringTerm("department")
	keyTier         = ast.StringTerm("tier")
	keyLabels       = ast.StringTerm("labels")
	keyMethod       = ast.StringTerm("method")
	keyPath         = ast.StringTerm("path")
	keyModel        = ast.StringTerm("model")
	keyStream       = ast.StringTerm("stream")
	keyMaxTokens    = ast.StringTerm("max_tokens")
	keyPromptTokens = ast.StringTerm("prompt_tokens")
	keyMessageCount = ast.StringTerm("message_count")
	keyPlugin       = ast.StringTerm("plugin")
	keyType         = ast.StringTerm("type")
	keyCount        = ast.StringTerm("count")
	keyScore        = ast.StringTerm("score")
	keyMessages     = ast.StringTerm("messages")
)

// value builds the input document as an AST value directly: going through
// map[string]any and JSON would cost more than the policy evaluation itself.
func (in Input) value() ast.Value {
	at := in.Time
	if at.IsZero() {
		at = time.Now()
	}
	return ast.NewObject(
		ast.Item(keyClient, in.Client.term()),
		ast.Item(keyRequest, in.Request.term()),
		ast.Item(keyFindings, findingsTerm(in.Findings)),
		ast.Item(keyTime, ast.ObjectTerm(ast.Item(keyUnix, ast.InternedTerm(at.Unix())))),
	)
}

func (c Client) term() *ast.Term {
	labels := ast.InternedEmptyObject
	if len(c.Labels) > 0 {
		obj := ast.NewObjectWithCapacity(len(c.Labels))
		for k, v := range c.Labels {
			obj.Insert(ast.InternedTerm(k), ast.InternedTerm(v))
		}
		labels = ast.NewTerm(obj)
	}
	return ast.ObjectTerm(
		ast.Item(keyID, ast.InternedTerm(c.ID)),
		ast.Item(keyDepartment, ast.InternedTerm(c.Department)),
		ast.Item(keyTier, ast.InternedTerm(c.Tier)),
		ast.Item(keyLabels, labels),
	)
}

func (r Request) term() *ast.Term {
	return ast.ObjectTerm(
		ast.Item(keyMethod, ast.InternedTerm(r.Method)),
		ast.Item(keyPath, ast.InternedTerm(r.Path)),
		ast.Item(keyModel, ast.InternedTerm(r.Model)),
		ast.Item(keyStream, ast.InternedTerm(r.Stream)),
		ast.Item(keyMaxTokens, ast.InternedTerm(r.MaxTokens)),
		ast.Item(keyPromptTokens, ast.InternedTerm(r.PromptTokens)),
		ast.Item(keyMessageCount, ast.InternedTerm(r.MessageCount)),
	)
}

// findingsTerm is never null: the policy may iterate it without checking.
func findingsTerm(fs []Finding) *ast.Term {
	if len(fs) == 0 {
		return ast.InternedEmptyArray
	}
	terms := make([]*ast.Term, len(fs))
	for i, f := range fs {
		msgs := make([]*ast.Term, len(f.Messages))
		for j, m := range f.Messages {
			msgs[j] = ast.InternedTerm(m)
		}
		terms[i] = ast.ObjectTerm(
			ast.Item(keyPlugin, ast.InternedTerm(f.Plugin)),
			ast.Item(keyType, ast.InternedTerm(f.Type)),
			ast.Item(keyCount, ast.InternedTerm(f.Count)),
			ast.Item(keyScore, ast.FloatNumberTerm(f.Score)),
			ast.Item(keyMessages, ast.ArrayTerm(msgs...)),
		)
	}
	return ast.ArrayTerm(terms...)
}
