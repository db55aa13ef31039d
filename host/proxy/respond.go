package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/redact"
	"github.com/sluicehq/sluice/host/scanview"
)

// The reply phase: what the decision says to do with the model's reply.
// Response plugins scan it; when they find something, the policy is asked
// again with the reply's findings in input.findings, as for a request's, and
// its answer says which types are masked (the decision's redact) and that
// anything else blocks the reply (a denial). Then the values redaction
// replaced in the request are put back when the decision says restore.
// Scanning comes first, so that the caller's own restored values are never
// taken for something the model wrote.

// piiTypes are the finding types of personal data and secrets (DESIGN.md); a
// reply blocked for one of them is pii_detected, for any other type
// content_policy_violation.
var piiTypes = []string{"EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "AWS_ACCESS_KEY",
	"GITHUB_TOKEN", "SLACK_TOKEN", "STRIPE_KEY", "GOOGLE_API_KEY", "OPENAI_KEY", "PRIVATE_KEY", "JWT"}

// errGuard marks a response plugin that could not scan.
var errGuard = errors.New("guardrail unavailable")

// replyWork says what the reply phase has to do for x: scan options (nil when
// no response plugin runs) and whether to restore.
func (g *Gateway) replyWork(x *exchange) (scan *redact.ScanOptions, restore bool) {
	restore = x.dec.Restore && x.vault.Len() > 0
	if len(x.dec.ResponsePlugins) == 0 {
		return nil, restore
	}
	names := x.dec.ResponsePlugins
	return &redact.ScanOptions{
		Scan: func(texts []string) ([]redact.Finding, error) {
			return g.scanReply(x, names, texts)
		},
		// scanReply has asked the policy about the findings it returns
		// before they are decided one by one.
		Decide: func(f redact.Finding) redact.Action {
			if slices.Contains(x.replyMask, f.Type) {
				return redact.Mask
			}
			return redact.Block
		},
	}, restore
}

// scanReply runs the response plugins over texts of the reply. A plugin that
// fails blocks the reply unless its fail mode is open.
func (g *Gateway) scanReply(x *exchange, names []string, texts []string) ([]redact.Finding, error) {
	var all []redact.Finding
	info := x.replyInfo
	if len(info) != len(texts) {
		info = nil // a stream's window: one text of one stream
	}
	agg := newAggregator(info)
	view := scanview.New(texts, adjacent(info))
	if view.Capped() {
		return nil, fmt.Errorf("%w: a text of the reply expands too far to be checked", errGuard)
	}
	for _, name := range names {
		gd, ok := g.guards[name]
		if !ok {
			g.log.Error("policy names a response plugin that is not loaded", "request_id", x.ev.RequestID, "plugin", name)
			return nil, fmt.Errorf("%w: the %s plugin is not loaded", errGuard, name)
		}
		found, _, err := g.runGuard(context.Background(), x, gd, view.Texts())
		if err != nil {
			if gd.FailOpen {
				g.log.Warn("response plugin failed; reply allowed (fail_mode open)", "request_id", x.ev.RequestID, "plugin", name, "error", err)
				continue
			}
			g.log.Error("response plugin failed; reply withheld (fail_mode closed)", "request_id", x.ev.RequestID, "plugin", name, "error", err)
			return nil, fmt.Errorf("%w: the %s plugin could not check the reply", errGuard, name)
		}
		found = view.Findings(found)
		all = append(all, found...)
		agg.add(name, found)
	}
	if len(all) > 0 {
		x.replyMask = g.decideReply(x, agg.findings())
	}
	return all, nil
}

// decideReply asks the policy about a reply's findings and returns the types
// to mask; none when the policy denies, or cannot decide.
func (g *Gateway) decideReply(x *exchange, found []policy.Finding) []string {
	if x.in == nil {
		return nil
	}
	in := *x.in
	in.Findings = found
	res, err := g.decider.Decide(stepContext, in)
	if g.decisions != nil {
		g.decisions.Record(x.ev.RequestID, res, err)
	}
	dec := res.Decision
	if err != nil {
		g.log.Error("policy evaluation of a reply failed; reply withheld", "request_id", x.ev.RequestID, "decision_id", res.ID,
			"kind", policy.ErrorKindOf(err), "at", policy.ErrorAt(err), "revision", res.Revision, "error", err)
		g.metrics.PolicyError()
		return nil
	}
	if !dec.Allowed {
		return nil
	}
	return dec.Redact
}

// filterReply applies the reply phase to a whole chat completion: every text
// of it, not only the content, is scanned and restored. It returns the body
// to send, or the error to answer with instead.
func (g *Gateway) filterReply(x *exchange, body []byte) ([]byte, *api.Error) {
	scan, restore := g.replyWork(x)
	if scan == nil && !restore {
		return body, nil
	}
	var c api.ReplyContent
	if err := c.ParseReply(body); err != nil {
		if scan == nil {
			// Only restoring: the caller gets the reply with placeholders
			// rather than no reply.
			g.log.Warn("reply could not be read to restore redacted values", "request_id", x.ev.RequestID, "error", err)
			return body, nil
		}
		g.log.Warn("reply could not be read for scanning", "request_id", x.ev.RequestID, "error", err)
		return nil, api.UpstreamError("The upstream's reply could not be read for the response checks.")
	}
	texts, info := c.Texts()
	x.replyInfo = info
	if scan != nil {
		out, found, err := redact.ScanTexts(texts, *scan, &x.vault)
		x.noteReplyFindings(found)
		if err != nil {
			return nil, replyBlocked(err)
		}
		if out != nil { // nil: nothing was masked
			texts = out
		}
	}
	if restore {
		texts = slices.Clone(texts)
		for i := range texts {
			texts[i] = x.vault.Restore(texts[i])
		}
	}
	out, err := c.RewriteTexts(texts)
	if err != nil {
		g.log.Error("reply could not be rewritten", "request_id", x.ev.RequestID, "error", err)
		return nil, api.Internal("The reply could not be rewritten.")
	}
	return out, nil
}

// replyFilter applies the reply phase to a stream, chunk by chunk. Each text
// of a choice's deltas (content, refusal, reasoning, each tool call's
// arguments…) is its own stream through the scanners, since each reaches the
// caller as its own string.
type replyFilter struct {
	rs      *redact.ReplyStream
	content api.ReplyContent
	texts   []string
	// last is the last chunk that carried each text stream, to carry what
	// is still held back for it when its choice ends.
	last map[int][]byte
	// open lists the text streams of each choice that have not ended.
	open  map[int][]int
	known map[int]bool
}

// newReplyFilter returns nil when the reply phase has nothing to do, so that
// streams pass through untouched.
func (g *Gateway) newReplyFilter(x *exchange) *replyFilter {
	scan, restore := g.replyWork(x)
	if scan == nil && !restore {
		return nil
	}
	return &replyFilter{rs: redact.NewReplyStream(&x.vault, scan, restore), last: map[int][]byte{}, open: map[int][]int{}, known: map[int]bool{}}
}

// streamKey names one text stream of a reply: the choice, the kind of text
// and the tool call. Texts outside any choice use choice -1.
func streamKey(choice int, t api.Text) int {
	return (choice+1)<<24 | int(t.Loc)<<16 | (t.Part + 1)
}

// chunk filters one stream event. It returns the events to send: text still
// held for a stream that this event's choice ends and that the event itself
// does not carry goes out first, in copies of the chunks that carried it.
func (f *replyFilter) chunk(data []byte) ([][]byte, error) {
	if err := f.content.ParseChunk(data); err != nil {
		return nil, err
	}
	texts, info := f.content.Texts()
	if len(texts) == 0 && !f.finishes() {
		return [][]byte{data}, nil
	}
	f.texts = append(f.texts[:0], texts...)
	keys := make([]int, len(texts))
	for i, t := range info {
		choice := -1
		if t.Message >= 0 {
			choice = f.content.Choices[t.Message].Index
		}
		keys[i] = streamKey(choice, t)
		if !f.known[keys[i]] {
			f.known[keys[i]] = true
			f.open[choice] = append(f.open[choice], keys[i])
		}
		out, err := f.rs.Next(keys[i], texts[i])
		if err != nil {
			return nil, err
		}
		f.texts[i] = out
	}
	var events [][]byte
	for _, ch := range f.content.Choices {
		if !ch.Finished {
			continue
		}
		for _, key := range f.open[ch.Index] {
			rest, err := f.rs.Finish(key)
			if err != nil {
				return nil, err
			}
			if rest == "" {
				continue
			}
			if i := slices.Index(keys, key); i >= 0 {
				f.texts[i] += rest
				continue
			}
			ev, err := f.carry(key, rest)
			if err != nil {
				return nil, err
			}
			events = append(events, ev)
		}
		delete(f.open, ch.Index)
	}
	for i, key := range keys {
		if texts[i] != "" {
			// data is the event reader's buffer, reused for the next event.
			f.last[key] = append(f.last[key][:0], data...)
		}
	}
	out, err := f.rewrite(data, texts)
	if err != nil {
		return nil, err
	}
	return append(events, out), nil
}

func (f *replyFilter) finishes() bool {
	for _, ch := range f.content.Choices {
		if ch.Finished {
			return true
		}
	}
	return false
}

// rewrite is the current chunk (data, whose texts were orig) with f.texts.
func (f *replyFilter) rewrite(data []byte, orig []string) ([]byte, error) {
	if slices.Equal(f.texts, orig) {
		return data, nil
	}
	return f.content.RewriteTexts(f.texts)
}

// carry is a copy of the last chunk that carried stream key, with rest as
// that stream's text and every other text empty.
func (f *replyFilter) carry(key int, rest string) ([]byte, error) {
	var c api.ReplyContent
	if err := c.ParseChunk(f.last[key]); err != nil {
		return nil, err
	}
	texts, info := c.Texts()
	out := make([]string, len(texts))
	for i, t := range info {
		choice := -1
		if t.Message >= 0 {
			choice = c.Choices[t.Message].Index
		}
		if streamKey(choice, t) == key {
			out[i] = rest
			break
		}
	}
	return c.RewriteTexts(out)
}

// end releases what is still held for text streams whose choice never got a
// finish_reason, as copies of the chunks that last carried them.
func (f *replyFilter) end() ([][]byte, error) {
	var out [][]byte
	for _, key := range f.rs.Unfinished() {
		rest, err := f.rs.Finish(key)
		if err != nil {
			return out, err
		}
		if rest == "" || f.last[key] == nil {
			continue
		}
		b, err := f.carry(key, rest)
		if err != nil {
			return out, err
		}
		out = append(out, b)
	}
	return out, nil
}

// replyBlocked is the answer to a reply the response checks stopped.
func replyBlocked(err error) *api.Error {
	var b *redact.Blocked
	if errors.As(err, &b) {
		if slices.Contains(piiTypes, b.Type) {
			return &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: "pii_detected",
				Message: fmt.Sprintf("The model's reply was withheld: personal data detected (%s).", b.Type)}
		}
		return &api.Error{Status: http.StatusBadRequest, Type: api.TypeInvalidRequest, Code: "content_policy_violation",
			Message: fmt.Sprintf("The model's reply was withheld by content policy (%s).", b.Type)}
	}
	return api.GuardrailUnavailable("The reply could not be checked; retry shortly.")
}

// noteReplyFindings adds the reply's findings to the ledger's summary, as
// reply.TYPE:count.
func (x *exchange) noteReplyFindings(found []redact.Finding) {
	if len(found) == 0 {
		return
	}
	counts := map[string]int{}
	for _, f := range found {
		counts[f.Type]++
	}
	if x.ev.Findings != "" {
		x.ev.Findings += ","
	}
	x.ev.Findings += typeCounts(counts, "reply.")
}
