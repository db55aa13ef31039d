package proxy

import (
	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/tokens"
)

// ask is what a request asks the limiter to reserve: its prompt, and room for
// its reply. A budget must hold the whole reply before the request is sent,
// because a provider bills what it generates whether or not Sluice relays it.
type ask struct {
	model   config.Model
	prompt  int64 // tokens
	reply   int64 // reply tokens per choice; 0 for a request without a reply
	choices int64 // replies the upstream generates (chat's n); at least 1
	// open is set when the caller gave no reply limit and Sluice chose
	// reply: the upstream is then told the limit (so the provider cannot
	// generate past the reservation), and the limit may be lowered to what a
	// budget has left rather than refusing the request.
	open bool
}

func (a ask) cost() limits.Cost {
	reply := a.reply * max(a.choices, 1)
	return limits.Cost{Tokens: a.prompt + reply, Nanos: a.model.CostNanos(a.prompt, reply)}
}

// maxShrinks bounds how often a reservation is retried with a smaller reply:
// each retry answers one limit of one scope, so two scopes with a token and
// a money budget each need four; more means the counters are moving under
// the request, and the last denial stands.
const maxShrinks = 4

// shrink lowers an open ask's reply to what the budget that refused it has
// left, and reports whether the smaller ask is worth trying: a rate limit
// (requests or tokens per minute) is not shrunk into, since waiting helps
// there, and a reply of no token is no reply.
func (a ask) shrink(d *limits.Denial) (ask, bool) {
	if !a.open || !d.IsBudget() {
		return a, false
	}
	room := d.Limit - d.Used // what the budget has left, in its unit
	choices := max(a.choices, 1)
	var fits int64 // reply tokens per choice that fit room
	if d.Kind == limits.KindMonthlyMoney {
		// The largest reply whose cost fits: cost grows with the reply,
		// so a binary search over reply sizes finds it.
		lo, hi := int64(0), a.reply-1
		for lo < hi {
			mid := hi - (hi-lo)/2
			if a.model.CostNanos(a.prompt, mid*choices) <= room {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		fits = lo
	} else {
		fits = min((room-a.prompt)/choices, a.reply-1)
	}
	if fits < 1 {
		return a, false
	}
	a.reply = fits
	return a, true
}

// replyGuard stops a stream whose reply outgrows its reservation: an
// upstream that ignores the limit it was sent (or a caller's reply limit
// that Sluice did not rewrite) would otherwise generate, and bill, past the
// budget that admitted it. The reply is counted with Sluice's tokenizer
// (o200k), which can count a provider's reply some per cent higher or lower
// than the provider does, so the stream is stopped only past a margin of a
// quarter above the reservation: a provider that honours the limit never
// reaches it, and one that does not overspends by at most the margin.
type replyGuard struct {
	limit   int64 // reply tokens past which the stream stops; 0: none
	counted int64 // tokens of the reply at the last count
	since   int64 // bytes of reply read since then
}

func newReplyGuard(reserved int64) replyGuard {
	if reserved <= 0 {
		return replyGuard{}
	}
	return replyGuard{limit: reserved + reserved/4 + 16}
}

// over takes one chunk's generated text, whole being the reply read so far
// with it, and reports whether the reply is now over its limit. The whole
// reply is counted, since chunks counted one by one can count twice the
// tokens; but a token is at least one byte, so it is counted again only
// once the bytes read since the last count could have passed the limit.
func (g *replyGuard) over(whole, generated string) bool {
	if g.limit == 0 || generated == "" {
		return false
	}
	g.since += int64(len(generated))
	if g.counted+g.since <= g.limit {
		return false
	}
	g.counted, g.since = tokens.Count(whole), 0
	return g.counted > g.limit
}

// replyOverReservation is the stream's last event when the guard stopped it.
func replyOverReservation() *api.Error {
	return &api.Error{Status: 429, Type: api.TypeInsufficientQuota, Code: "reply_over_reservation",
		Message: "The reply outgrew the tokens reserved for it from the budget, and was stopped. Set max_tokens to bound the reply."}
}
