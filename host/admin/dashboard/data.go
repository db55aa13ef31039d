package dashboard

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/host/store"
)

// span is one of the ranges the page offers: Buckets buckets of Bucket each,
// the last one holding now.
type span struct {
	Buckets int
	Bucket  time.Duration
}

// spans are the ranges accepted by the range parameter. Daily buckets start
// at UTC midnight (see store.SeriesQuery), so "7d" is today and the six days
// before, whole.
var spans = map[string]span{
	"24h": {24, time.Hour},
	"7d":  {7, 24 * time.Hour},
	"30d": {30, 24 * time.Hour},
}

const defaultRange = "7d"

// window is a resolved range: [From, To), cut into buckets.
type window struct {
	Name   string
	From   time.Time
	To     time.Time
	Bucket time.Duration
	n      int
}

// rangeJSON tells the page what it is looking at.
type rangeJSON struct {
	Name          string    `json:"name"`
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	BucketSeconds int64     `json:"bucket_seconds"`
}

func (w window) json() rangeJSON {
	return rangeJSON{Name: w.Name, From: w.From, To: w.To, BucketSeconds: int64(w.Bucket / time.Second)}
}

// resolve aligns the range named name on bucket boundaries around now. To is
// the end of the bucket that holds now rather than now itself, so that every
// bucket is whole and an event stamped a moment ahead of this clock (another
// replica's) is still counted.
func resolve(name string, now time.Time) (window, bool) {
	if name == "" {
		name = defaultRange
	}
	s, ok := spans[name]
	if !ok {
		return window{}, false
	}
	width := int64(s.Bucket / time.Second)
	sec := now.Unix()
	end := sec - ((sec%width)+width)%width + width
	return window{
		Name:   name,
		From:   time.Unix(end-int64(s.Buckets)*width, 0).UTC(),
		To:     time.Unix(end, 0).UTC(),
		Bucket: s.Bucket,
		n:      s.Buckets,
	}, true
}

// rangeNames lists the accepted ranges, shortest first, for error messages.
func rangeNames() string {
	names := make([]string, 0, len(spans))
	for n := range spans {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		sa, sb := spans[a], spans[b]
		return cmp.Compare(time.Duration(sa.Buckets)*sa.Bucket, time.Duration(sb.Buckets)*sb.Bucket)
	})
	return strings.Join(names, ", ")
}

// window reads the range parameter, answering 400 when it is not one of spans.
func (d *Dashboard) window(ctx *fasthttp.RequestCtx) (window, bool) {
	name := string(ctx.QueryArgs().Peek("range"))
	w, ok := resolve(name, d.now())
	if !ok {
		badParam(ctx, "range", fmt.Sprintf("range %q is not one of %s.", name, rangeNames()))
	}
	return w, ok
}

// totals is a group's sums. Costs are in billionths of a dollar, as stored:
// integers stay exact in JSON up to 2^53, about nine million dollars.
type totals struct {
	Requests         int64 `json:"requests"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
	CostNanos        int64 `json:"cost_nanos"`
}

func (t *totals) add(r store.ReportRow) {
	t.Requests += r.Requests
	t.PromptTokens += r.PromptTokens
	t.CompletionTokens += r.CompletionTokens
	t.TotalTokens += r.TotalTokens
	t.CostNanos += r.CostNanos
}

type departmentJSON struct {
	// Department is "" for requests refused before a client was known.
	Department string `json:"department"`
	totals
	// CostSeries and TokenSeries hold one value per bucket of the range,
	// zeros included.
	CostSeries  []int64 `json:"cost_nanos_series"`
	TokenSeries []int64 `json:"total_tokens_series"`
}

type usageJSON struct {
	Range   rangeJSON   `json:"range"`
	Buckets []time.Time `json:"buckets"`
	// Departments are ordered by spend, then tokens, then name.
	Departments []departmentJSON `json:"departments"`
	Total       totals           `json:"total"`
}

func (d *Dashboard) serveUsage(ctx *fasthttp.RequestCtx) {
	w, ok := d.window(ctx)
	if !ok || !d.flush(ctx) {
		return
	}
	// One series query gives both the chart and the totals, so the two can
	// never disagree.
	points, err := d.store.UsageSeries(ctx, store.SeriesQuery{
		From: w.From, To: w.To, Bucket: w.Bucket, GroupBy: store.GroupByDepartment,
	})
	if err != nil {
		d.internal(ctx, "reading the usage series", err)
		return
	}
	out := usageJSON{Range: w.json(), Buckets: make([]time.Time, w.n), Departments: []departmentJSON{}}
	for i := range out.Buckets {
		out.Buckets[i] = w.From.Add(time.Duration(i) * w.Bucket)
	}
	index := map[string]int{}
	for _, p := range points {
		i, ok := index[p.Group]
		if !ok {
			i = len(out.Departments)
			index[p.Group] = i
			out.Departments = append(out.Departments, departmentJSON{
				Department:  p.Group,
				CostSeries:  make([]int64, w.n),
				TokenSeries: make([]int64, w.n),
			})
		}
		dep := &out.Departments[i]
		dep.add(p.ReportRow)
		out.Total.add(p.ReportRow)
		b := int(p.Start.Sub(w.From) / w.Bucket)
		if b < 0 || b >= w.n {
			continue // cannot happen: the query asked for these buckets only
		}
		dep.CostSeries[b] += p.CostNanos
		dep.TokenSeries[b] += p.TotalTokens
	}
	slices.SortFunc(out.Departments, func(a, b departmentJSON) int {
		return cmp.Or(cmp.Compare(b.CostNanos, a.CostNanos), cmp.Compare(b.TotalTokens, a.TotalTokens),
			strings.Compare(a.Department, b.Department))
	})
	writeJSON(ctx, out)
}

// Orders of the top clients.
const (
	byCost   = "cost"
	byTokens = "tokens"
)

const (
	defaultClients = 10
	maxClients     = 100
)

type clientJSON struct {
	Client string `json:"client"`
	// Department is the client's current department; "" when the client
	// has been deleted since.
	Department string `json:"department"`
	totals
}

type clientsJSON struct {
	Range rangeJSON `json:"range"`
	By    string    `json:"by"`
	// Clients are the first Limit clients by By, ties broken by the other
	// measure, then by id.
	Clients []clientJSON `json:"clients"`
	// Count is how many clients used the gateway in the range.
	Count int `json:"count"`
}

func (d *Dashboard) serveClients(ctx *fasthttp.RequestCtx) {
	w, ok := d.window(ctx)
	if !ok {
		return
	}
	args := ctx.QueryArgs()
	by := string(args.Peek("by"))
	switch by {
	case "":
		by = byCost
	case byCost, byTokens:
	default:
		badParam(ctx, "by", fmt.Sprintf("by %q is not one of %s, %s.", by, byCost, byTokens))
		return
	}
	limit := defaultClients
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > maxClients {
			badParam(ctx, "limit", fmt.Sprintf("limit %q is not a whole number from 1 to %d.", v, maxClients))
			return
		}
		limit = n
	}
	if !d.flush(ctx) {
		return
	}
	rows, err := d.store.Report(ctx, store.ReportQuery{From: w.From, To: w.To, GroupBy: store.GroupByClient})
	if err != nil {
		d.internal(ctx, "reporting usage per client", err)
		return
	}
	clients, err := d.store.ListClients(ctx)
	if err != nil {
		d.internal(ctx, "listing clients", err)
		return
	}
	departments := make(map[string]string, len(clients))
	for _, c := range clients {
		departments[c.ID] = c.Department
	}
	out := clientsJSON{Range: w.json(), By: by, Clients: []clientJSON{}}
	for _, r := range rows {
		if r.Group == "" {
			continue // refused before a client was known: not a client
		}
		c := clientJSON{Client: r.Group, Department: departments[r.Group]}
		c.add(r)
		out.Clients = append(out.Clients, c)
	}
	out.Count = len(out.Clients)
	slices.SortFunc(out.Clients, func(a, b clientJSON) int {
		first, second := cmp.Compare(b.CostNanos, a.CostNanos), cmp.Compare(b.TotalTokens, a.TotalTokens)
		if by == byTokens {
			first, second = second, first
		}
		return cmp.Or(first, second, strings.Compare(a.Client, b.Client))
	})
	out.Clients = out.Clients[:min(limit, len(out.Clients))]
	writeJSON(ctx, out)
}

// reasons say in words what the codes of DESIGN.md, the gateway and the
// shipped policies mean. reason labels the others.
var reasons = map[string]string{
	"invalid_api_key":          "Missing or bad API key",
	"key_expired":              "API key expired",
	"client_disabled":          "Client disabled",
	"model_not_allowed":        "Model not allowed",
	"model_not_found":          "Unknown model",
	"not_found":                "Unknown path or stored response",
	"method_not_allowed":       "HTTP method not supported",
	"rate_limit_exceeded":      "Rate limit (requests or tokens per minute)",
	"budget_exceeded":          "Token or money budget exhausted",
	"budget_nearly_exhausted":  "Budget nearly exhausted (policy)",
	"limits_unavailable":       "Limits could not be checked (fail-closed)",
	"ip_rate_limited":          "Too many failed requests from one address",
	"auth_rate_limited":        "Too many attempts with a bad key",
	"content_policy_violation": "Blocked by content policy",
	"pii_detected":             "Blocked: personal data or secret in prompt",
	"unscannable_text":         "Text the guardrails cannot scan",
	"guardrail_unavailable":    "Guardrail plugin failed (fail-closed)",
	"policy_error":             "Policy could not decide (fail-closed)",
	"outside_business_hours":   "Outside business hours (policy)",
	"upstream_error":           "Upstream failed",
	"upstream_timeout":         "Upstream timed out",
	"upstream_rate_limited":    "Upstream rate-limited the gateway",
	"upstream_quota_exhausted": "Provider quota of every deployment used up",
	"no_deployment_in_region":  "No deployment in the allowed region",
	"reply_over_reservation":   "Reply longer than its reservation",
	"client_disconnected":      "Caller disconnected",
	"request_timeout":          "Caller's deadline passed",
	"shutdown":                 "Gateway shutting down",
	"auth_unavailable":         "Key store unavailable",
	"request_too_large":        "Request body too large",
	"prompt_too_large":         "Prompt too large",
	"prompt_too_long":          "Prompt too long",
	"max_tokens_too_large":     "max_tokens too large",
	"invalid_json":             "Malformed JSON body",
	"invalid_request_body":     "Invalid request body",
	"malformed_request":        "Malformed request",
	"unknown_parameter":        "Unknown parameter",
	"invalid_value":            "Invalid parameter value",
	"invalid_tags":             "Invalid usage tags",
	"tier_unknown":             "Client tier unknown",
	"internal_error":           "Internal error",
}

// reason is the label of a code: its entry in reasons, the status of an
// upstream's own error ("upstream_502"), or, for a code from an operator's
// policy, the code in words ("ticket_required": "Ticket required").
func reason(code string) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	if status, ok := strings.CutPrefix(code, "upstream_"); ok && len(status) == 3 && strings.Trim(status, "0123456789") == "" {
		return "Upstream answered " + status
	}
	words := strings.TrimSpace(strings.ReplaceAll(code, "_", " "))
	if words == "" {
		return "Unlabelled error"
	}
	first, size := utf8.DecodeRuneInString(words)
	return string(unicode.ToUpper(first)) + words[size:]
}

type denialJSON struct {
	Code     string `json:"code"`
	Reason   string `json:"reason"`
	Requests int64  `json:"requests"`
}

type denialsJSON struct {
	Range rangeJSON `json:"range"`
	// Denials are ordered by requests, most first, then by code.
	Denials []denialJSON `json:"denials"`
	Total   int64        `json:"total"`
}

func (d *Dashboard) serveDenials(ctx *fasthttp.RequestCtx) {
	w, ok := d.window(ctx)
	if !ok || !d.flush(ctx) {
		return
	}
	counts, err := d.store.DenialCounts(ctx, w.From, w.To)
	if err != nil {
		d.internal(ctx, "counting denials", err)
		return
	}
	out := denialsJSON{Range: w.json(), Denials: make([]denialJSON, len(counts))}
	for i, c := range counts {
		out.Denials[i] = denialJSON{Code: c.Code, Reason: reason(c.Code), Requests: c.Requests}
		out.Total += c.Requests
	}
	writeJSON(ctx, out)
}

type healthJSON struct {
	// Reported is false when the gateway gave the dashboard no source of
	// health, as opposed to one that reports no plugins.
	Reported  bool      `json:"reported"`
	CheckedAt time.Time `json:"checked_at"`
	Health
}

func (d *Dashboard) serveHealth(ctx *fasthttp.RequestCtx) {
	out := healthJSON{CheckedAt: d.now().UTC()}
	if d.health != nil {
		out.Reported = true
		out.Health = d.health(ctx)
	}
	if out.Plugins == nil {
		out.Plugins = []plugin.Status{}
	}
	writeJSON(ctx, out)
}

// flush makes the newest events visible when a flusher is configured,
// answering 500 when it fails rather than showing totals that look complete.
func (d *Dashboard) flush(ctx *fasthttp.RequestCtx) bool {
	if d.flusher == nil {
		return true
	}
	if err := d.flusher.Flush(ctx); err != nil {
		d.internal(ctx, "flushing the ledger", err)
		return false
	}
	return true
}

func (d *Dashboard) internal(ctx *fasthttp.RequestCtx, what string, err error) {
	d.log.Error("dashboard request failed", "op", what, "error", err)
	fail(ctx, api.Internal("The dashboard could not read its data: "+what+"."))
}

func badParam(ctx *fasthttp.RequestCtx, param, msg string) {
	e := api.InvalidRequest("invalid_value", msg)
	e.Param = param
	fail(ctx, e)
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(ctx, api.Internal("The answer could not be encoded."))
		return
	}
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
