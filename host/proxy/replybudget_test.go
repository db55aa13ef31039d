package proxy

import (
	"testing"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/limits"
)

// shrink lowers an open ask to the most its refusing budget can hold, in
// tokens or in money, per choice; it never shrinks a caller's own limit,
// nor into a per-minute limit, nor to nothing.
func TestAskShrinksToTheBudgetLeft(t *testing.T) {
	// $2 and $8 per million tokens: 2,000 and 8,000 nano-dollars a token.
	m := config.Model{InputPerMillion: 2, OutputPerMillion: 8}
	cases := []struct {
		name  string
		a     ask
		d     limits.Denial
		ok    bool
		reply int64
	}{
		{"daily tokens", ask{model: m, prompt: 100, reply: 1024, choices: 1, open: true},
			limits.Denial{Kind: limits.KindDailyTokens, Limit: 1000, Used: 400}, true, 500},
		{"n choices share the rest", ask{model: m, prompt: 100, reply: 1024, choices: 3, open: true},
			limits.Denial{Kind: limits.KindMonthlyTokens, Limit: 1000, Used: 400}, true, 166},
		{"money", ask{model: m, prompt: 100, reply: 1024, choices: 1, open: true},
			// 1,000,000 nano-dollars left: 200,000 for the prompt, 100 reply tokens for the rest.
			limits.Denial{Kind: limits.KindMonthlyMoney, Limit: 5_000_000, Used: 4_000_000}, true, 100},
		{"the caller's own limit", ask{model: m, prompt: 100, reply: 1024, choices: 1},
			limits.Denial{Kind: limits.KindDailyTokens, Limit: 1000, Used: 400}, false, 1024},
		{"a rate limit", ask{model: m, prompt: 100, reply: 1024, choices: 1, open: true},
			limits.Denial{Kind: limits.KindTPM, Limit: 1000, Used: 400}, false, 1024},
		{"no room for the prompt", ask{model: m, prompt: 700, reply: 1024, choices: 1, open: true},
			limits.Denial{Kind: limits.KindDailyTokens, Limit: 1000, Used: 400}, false, 1024},
		{"never larger", ask{model: m, prompt: 10, reply: 50, choices: 1, open: true},
			// a stale denial that says there is room: the ask still shrinks
			limits.Denial{Kind: limits.KindDailyTokens, Limit: 1000, Used: 0}, true, 49},
	}
	for _, c := range cases {
		got, ok := c.a.shrink(&c.d)
		if ok != c.ok || got.reply != c.reply {
			t.Errorf("%s: shrink = %d, %v; want %d, %v", c.name, got.reply, ok, c.reply, c.ok)
		}
		if ok && got.cost().Tokens > c.d.Limit-c.d.Used && c.d.Kind != limits.KindMonthlyMoney {
			t.Errorf("%s: the smaller ask costs %d tokens, more than the %d left", c.name, got.cost().Tokens, c.d.Limit-c.d.Used)
		}
		if ok && c.d.Kind == limits.KindMonthlyMoney && got.cost().Nanos > c.d.Limit-c.d.Used {
			t.Errorf("%s: the smaller ask costs %d nano-dollars, more than the %d left", c.name, got.cost().Nanos, c.d.Limit-c.d.Used)
		}
	}
}

// The guard stops a reply only past its margin, and counts nothing while
// the reply's bytes cannot hold that many tokens.
func TestReplyGuardStopsPastTheMargin(t *testing.T) {
	g := newReplyGuard(40) // stops past 40 + 10 + 16 = 66 tokens
	whole := ""
	stopped := 0
	for i := 1; i <= 200; i++ {
		whole += "word "
		if g.over(whole, "word ") {
			stopped = i
			break
		}
	}
	if stopped < 66 || stopped > 70 {
		t.Errorf("stopped after %d one-token words; want just past 66", stopped)
	}
	var none replyGuard
	if none.over("a b c", "a b c") {
		t.Error("a guard without a reservation stopped a reply")
	}
}
