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
	var aggregated []policy.Finding
	for _, name := range names {
		gd, ok := g.guards[name]
		if !ok {
			g.log.Error("policy names a response plugin that is not loaded", "request_id", x.ev.RequestID, "plugin", name)
			return nil, fmt.Errorf("%w: the %s plugin is not loaded", errGuard, name)
		}
		found, err := g.runGuard(context.Background(), x, gd, texts)
		if err != nil {
			if gd.FailOpen {
				g.log.Warn("response plugin failed; reply allowed (fail_mode open)", "request_id", x.ev.RequestID, "plugin", name, "error", err)
				continue
			}
			g.log.Error("response plugin failed; reply withheld (fail_mode closed)", "request_id", x.ev.RequestID, "plugin", name, "error", err)
			return nil, fmt.Errorf("%w: the %s plugin could not check the reply", errGuard, name)
		}
		all = append(all, found...)
		aggregated = aggregate(aggregated, name, found, nil)
	}
	if len(all) > 0 {
		x.replyMask = g.decideReply(x, aggregated)
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

// filterReply applies the reply phase to a whole chat completion. It returns
// the body to send, or the error to answer with instead.
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
	texts := make([]string, len(c.Choices))
	for i, ch := range c.Choices {
		texts[i] = ch.Text
	}
	if scan != nil {
		out, found, err := redact.ScanTexts(texts, *scan, &x.vault)
		x.noteReplyFindings(found)
		if err != nil {
			return nil, replyBlocked(err)
		}
		texts = out
	}
	if restore {
		for i := range texts {
			texts[i] = x.vault.Restore(texts[i])
		}
	}
	out, err := c.Rewrite(texts)
	if err != nil {
		g.log.Error("reply could not be rewritten", "request_id", x.ev.RequestID, "error", err)
		return nil, api.Internal("The reply could not be rewritten.")
	}
	return out, nil
}

// replyFilter applies the reply phase to a stream, chunk by chunk.
type replyFilter struct {
	rs      *redact.ReplyStream
	content api.ReplyContent
	texts   []string
	// last is the last chunk seen for each choice, to carry text still held
	// back for a choice that never got a finish_reason.
	last map[int][]byte
}

// newReplyFilter returns nil when the reply phase has nothing to do, so that
// streams pass through untouched.
func (g *Gateway) newReplyFilter(x *exchange) *replyFilter {
	scan, restore := g.replyWork(x)
	if scan == nil && !restore {
		return nil
	}
	return &replyFilter{rs: redact.NewReplyStream(&x.vault, scan, restore), last: map[int][]byte{}}
}

// chunk filters one stream event. It returns the event to send (nil for
// none).
func (f *replyFilter) chunk(data []byte) ([]byte, error) {
	if err := f.content.ParseChunk(data); err != nil {
		return nil, err
	}
	if len(f.content.Choices) == 0 {
		return data, nil
	}
	f.texts = f.texts[:0]
	for _, ch := range f.content.Choices {
		out, err := f.rs.Next(ch.Index, ch.Text)
		if err != nil {
			return nil, err
		}
		if ch.Finished {
			rest, err := f.rs.Finish(ch.Index)
			if err != nil {
				return nil, err
			}
			out += rest
		} else {
			f.last[ch.Index] = data
		}
		f.texts = append(f.texts, out)
	}
	return f.content.Rewrite(f.texts)
}

// end releases what is still held for choices whose stream ended without a
// finish_reason, as copies of their last chunks.
func (f *replyFilter) end() ([][]byte, error) {
	var out [][]byte
	for _, i := range f.rs.Unfinished() {
		rest, err := f.rs.Finish(i)
		if err != nil {
			return out, err
		}
		if rest == "" || f.last[i] == nil {
			continue
		}
		if err := f.content.ParseChunk(f.last[i]); err != nil {
			return out, err
		}
		texts := make([]string, len(f.content.Choices))
		for k, ch := range f.content.Choices {
			if ch.Index == i {
				texts[k] = rest
			}
		}
		b, err := f.content.Rewrite(texts)
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
