package server

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluicehq/sluice/host/config"
)

// openai-go retries a tokens-per-minute 429 by itself: it waits the
// retry-after-ms the 429 carries, which is the tokens window's reset, and the
// retry succeeds. Budgets and per-minute limits are reported apart.
func TestOpenAIGoWaitsTheTokensResetAndSucceeds(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the end of a wall-clock minute")
	}
	const tpm = 2000
	h := newHarness(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{TPM: tpm, DailyTokens: 1_000_000}})

	type attempt struct {
		at     time.Time
		status int
		header http.Header
	}
	var (
		mu       sync.Mutex
		attempts []attempt
	)
	record := option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(r)
		if err == nil {
			mu.Lock()
			attempts = append(attempts, attempt{time.Now(), resp.StatusCode, resp.Header.Clone()})
			mu.Unlock()
		}
		return resp, err
	})
	c := openai.NewClient(option.WithBaseURL("http://"+h.srv.Addr()+"/v1"), option.WithAPIKey(h.key),
		option.WithMaxRetries(2), record)

	// The tokens windows are wall-clock minutes: fill this one a few
	// seconds before it ends, so that the wait is seconds, not a minute.
	if s := time.Now().Second(); s < 50 || s > 55 {
		time.Sleep(time.Duration((110-s)%60)*time.Second - time.Duration(time.Now().Nanosecond()))
	}

	prompt := openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(strings.Repeat("lorem ipsum ", 300))},
		MaxTokens: openai.Int(10)}
	var first *http.Response
	resp, err := c.Chat.Completions.New(context.Background(), prompt, option.WithResponseInto(&first))
	if err != nil {
		t.Fatal(err)
	}
	hd := first.Header
	if hd.Get("x-ratelimit-limit-tokens") != strconv.Itoa(tpm) || hd.Get("x-ratelimit-reset-tokens") != "0s" ||
		hd.Get("x-sluice-budget-limit-tokens-day") != "1000000" || hd.Get("x-ratelimit-limit-requests") != "" {
		t.Fatalf("a 200 under a TPM and a daily budget: %v", hd)
	}
	remaining, _ := strconv.Atoi(hd.Get("x-ratelimit-remaining-tokens"))
	estimate := tpm - remaining // the prompt as counted, plus max_tokens
	used := int(resp.Usage.TotalTokens)
	time.Sleep(100 * time.Millisecond) // the reply's commit

	// The same prompt asking 20 tokens more than fit: the window has room
	// for it once 20 of the first request's tokens have weighed out.
	ask := prompt
	ask.MaxTokens = openai.Int(int64(tpm - used - estimate + 10 + 20))
	mu.Lock()
	attempts = nil
	mu.Unlock()
	if _, err := c.Chat.Completions.New(context.Background(), ask); err != nil {
		t.Fatalf("after its retries: %v", err)
	}
	if len(attempts) != 2 || attempts[0].status != 429 || attempts[1].status != 200 {
		t.Fatalf("attempts %+v, want a 429 then a 200", attempts)
	}
	denied := attempts[0].header
	reset, err := time.ParseDuration(denied.Get("x-ratelimit-reset-tokens"))
	ms, _ := strconv.ParseInt(denied.Get("retry-after-ms"), 10, 64)
	if err != nil || reset <= 0 || reset > 15*time.Second || time.Duration(ms)*time.Millisecond != reset ||
		denied.Get("x-ratelimit-remaining-tokens") == "" || denied.Get("x-should-retry") != "" {
		t.Fatalf("the 429's reset-tokens %q, retry-after-ms %q: %v", denied.Get("x-ratelimit-reset-tokens"), denied.Get("retry-after-ms"), denied)
	}
	if waited := attempts[1].at.Sub(attempts[0].at); waited < reset || waited > reset+2*time.Second {
		t.Fatalf("openai-go waited %s after a 429 whose tokens window resets in %s", waited, reset)
	}
}

// resetRule is the rule rate-limit helpers for OpenAI-compatible APIs use to
// read x-ratelimit-reset-*, as in the parseDuration of the Groq and OpenAI
// adapters of JavaScript limiters ("6m23.456s", "1.5s", "2m0s", "0s",
// "500ms", "2h30m0s"): optional hours, minutes, fractional seconds and
// milliseconds, anchored. groq-go (ResetTime.Time) uses Go's
// time.ParseDuration instead; both must read the same value.
var resetRule = regexp.MustCompile(`^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$`)

func parseReset(s string) (time.Duration, bool) {
	m := resetRule.FindStringSubmatch(s)
	if m == nil || s == "" {
		return 0, false
	}
	var d float64
	for i, unit := range []float64{3600e3, 60e3, 1e3, 1} {
		if m[i+1] != "" {
			v, _ := strconv.ParseFloat(m[i+1], 64)
			d += v * unit
		}
	}
	return time.Duration(d * float64(time.Millisecond)), true
}

// Every reset Sluice writes, for a minute window or a budget, reads the same
// by a JavaScript helper's rule and by Go's.
func TestResetHeadersReadByRetryHelpers(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{RPM: 2, TPM: 100_000, DailyTokens: 50_000, MonthlyTokens: 1_000_000}})
	c := h.client(h.key)
	var seen int
	check := func(hd http.Header) {
		for name, vs := range hd {
			name = strings.ToLower(name)
			if !strings.Contains(name, "-reset-") {
				continue
			}
			seen++
			byRule, ok := parseReset(vs[0])
			byGo, err := time.ParseDuration(vs[0])
			if !ok || err != nil || byRule.Round(time.Millisecond) != byGo {
				t.Errorf("%s: %q reads as %s by the helper's rule (ok %v) and %s by Go (%v)", name, vs[0], byRule, ok, byGo, err)
			}
			if strings.HasPrefix(name, "x-ratelimit-") && byGo > 90*time.Second {
				t.Errorf("%s: %q is longer than a per-minute window can make anyone wait", name, vs[0])
			}
		}
	}
	for range 2 {
		var r *http.Response
		if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi"), option.WithResponseInto(&r)); err != nil {
			t.Fatal(err)
		}
		check(r.Header)
	}
	_, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hi"))
	check(apiError(t, err, 429, "rate_limit_exceeded").Response.Header)
	if seen < 3*(4+2) {
		t.Fatalf("saw %d reset headers over three replies, want the four windows each, and two per scope", seen)
	}
	for _, s := range []string{"120ms", "1.5s", "6m0s", "9h12m59s"} {
		if _, ok := parseReset(s); !ok {
			t.Errorf("the rule does not read OpenAI's own %q", s)
		}
	}
}
