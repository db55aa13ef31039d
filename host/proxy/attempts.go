package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/routing"
	"github.com/sluicehq/sluice/host/upstream"
)

// attempt is one upstream call of a request, as the ledger lists it.
type attempt struct {
	Deployment string `json:"deployment"`
	Status     int    `json:"status"`          // the upstream's; 0 when it did not answer
	Error      string `json:"error,omitempty"` // timeout or unavailable when it did not
	MS         int64  `json:"ms"`
}

// sendRouted sends a request to the deployments its model's route plans,
// one after another, until one answers with anything but a failure of its
// own (a connection error, a timeout, 429, 5xx, or a refusal of the
// gateway's credentials) or, with fallback_on_refusal, a refusal of its
// content filter, the model's retry.attempts are spent, or its
// retry.deadline would pass. A deployment tried again is waited for with
// backoff. A deployment whose provider quota (rpm, tpm) the request does
// not fit is passed over without a call. target is the requested model's on
// entry and the one that answered on return: its prices bill the request.
// body makes the request's body for an upstream model name; estimate is
// the tokens the request reserved, charged to the quota until it is
// recorded.
func (g *Gateway) sendRouted(ctx context.Context, x *exchange, target *upstream.Target, call *upstream.Call,
	body func(upstreamModel string) ([]byte, error), estimate int64) (*upstream.Reply, *api.Error) {
	var plan []*routing.Deployment
	var rt *routing.Route
	if g.routes != nil {
		rt, _ = g.routes.Route(target.Model.Name)
		plan = g.plan(x, call, target.Model.Name)
	}
	if len(x.dec.Regions) > 0 {
		plan = slices.DeleteFunc(plan, func(d *routing.Deployment) bool { return !slices.Contains(x.dec.Regions, d.Region) })
		if len(plan) == 0 {
			return nil, &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Code: "no_deployment_in_region",
				Message: fmt.Sprintf("No deployment of %s is in a region your requests may be served from (%s).",
					target.Model.Name, strings.Join(x.dec.Regions, ", "))}
		}
	}
	if rt == nil || len(plan) == 0 {
		b, err := body(target.Model.UpstreamModel)
		if err != nil {
			return nil, errReencode
		}
		call.Body = b
		return g.send(ctx, *target, call)
	}
	retry := rt.Model.Retry
	call.Timeout, call.FirstByteTimeout = rt.Model.Timeout.D(), rt.Model.FirstByteTimeout.D()
	attempts := retry.Attempts
	if attempts == 0 {
		attempts = len(plan)
	}
	deadline := time.Now().Add(retry.Deadline.D())
	bodies := map[string][]byte{}
	tried := map[*routing.Deployment]int{}
	// notBefore is when a deployment that answered 429 or 503 with a
	// Retry-After may be called again.
	notBefore := map[*routing.Deployment]time.Time{}
	// refusedBy holds the deployments whose content filter refused the
	// request: asking again would only be refused again.
	refusedBy := map[*routing.Deployment]bool{}
	var (
		up   *upstream.Reply
		err  error
		last *routing.Deployment
		log  []attempt
		// quotaWait is the shortest wait until a deployment passed over
		// for its quota has room again.
		quotaWait time.Duration
	)
	for n := range attempts {
		d := plan[n%len(plan)]
		if refusedBy[d] {
			continue
		}
		if tried[d] > 0 {
			pause := max(g.routes.Backoff(retry, tried[d]-1), time.Until(notBefore[d]))
			if time.Now().Add(pause).After(deadline) {
				// The wait does not fit: the caller gets the last answer,
				// with its Retry-After.
				break
			}
			if !sleep(ctx, pause) {
				up, err = nil, upstream.ErrCancelled
				break
			}
		} else if n > 0 && time.Now().After(deadline) {
			break
		}
		if up != nil && up.Events != nil {
			up.Events.Close()
		}
		model := d.Target.Model.UpstreamModel
		b, ok := bodies[model]
		if !ok {
			if b, err = body(model); err != nil {
				return nil, errReencode
			}
			bodies[model] = b
		}
		call.Body = b
		quota, fits := g.reserveQuota(ctx, d, estimate)
		if !fits.ok {
			g.metrics.UpstreamAttempt(d.Name, metrics.AttemptQuota)
			log = append(log, attempt{Deployment: d.Name, Error: metrics.AttemptQuota})
			tried[d]++
			if quotaWait == 0 || fits.wait < quotaWait {
				quotaWait = fits.wait
			}
			continue
		}
		d.Start()
		began := time.Now()
		up, err = d.Target.Upstream.Send(ctx, call)
		took := time.Since(began)
		outcome := outcomeOf(up, err)
		d.End(time.Now(), retryable(outcome), took)
		if outcome == metrics.AttemptOK && rt.Model.FallbackOnRefusal && len(plan) > 1 && contentRefusal(up) {
			// Not the deployment's failure (its breaker was told it
			// answered), but another may answer.
			outcome, refusedBy[d] = metrics.AttemptContentRefused, true
		}
		g.metrics.UpstreamAttempt(d.Name, outcome)
		a := attempt{Deployment: d.Name, MS: took.Milliseconds()}
		if up != nil {
			a.Status = up.Status
		}
		if up == nil && (outcome == metrics.AttemptTimeout || outcome == metrics.AttemptUnavailable) || outcome == metrics.AttemptContentRefused {
			a.Error = outcome
		}
		log = append(log, a)
		last, tried[d] = d, tried[d]+1
		if !retryable(outcome) {
			// Charged until the request is recorded, with what it used.
			x.quota = quota
			break
		}
		g.limiter.Commit(quota, limits.Cost{})
		if up != nil {
			if wait := up.RetryAfter(time.Now()); wait > 0 {
				notBefore[d] = time.Now().Add(wait)
			}
		}
	}
	if len(log) > 1 {
		if b, err := json.Marshal(log); err == nil {
			x.ev.Attempts = string(b)
		}
	}
	if last == nil {
		// Every deployment was over its provider quota.
		if up != nil && up.Events != nil {
			up.Events.Close()
		}
		return quotaReply(quotaWait), &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeUnavailable, Code: "upstream_quota_exhausted",
			Message: fmt.Sprintf("Every deployment of %s is at the quota its provider grants the gateway; retry after the time in Retry-After. "+
				"This is not a limit on your key.", target.Model.Name)}
	}
	*target = last.Target
	x.ev.Deployment = last.Name
	return g.judge(ctx, last.Target, call, up, err)
}

// plan is the deployments a request for model tries: its configured
// fallbacks, or the ones the policy's decision puts in their place. A
// fallback the gateway does not serve is skipped, and logged by count (the
// policy may have copied it from the request).
func (g *Gateway) plan(x *exchange, call *upstream.Call, model string) []*routing.Deployment {
	fallbacks := x.dec.Fallbacks
	if fallbacks == nil {
		return g.routes.Plan(model, time.Now())
	}
	if n := g.routes.Unknown(fallbacks); n > 0 {
		g.log.Warn("policy fallbacks name models the gateway does not serve; skipped", "request_id", call.RequestID, "model", model, "unknown", n)
	}
	return g.routes.PlanWith(model, fallbacks, time.Now())
}

// quotaFit says whether a request fits a deployment's provider quota, and
// if not, how long until it may.
type quotaFit struct {
	ok   bool
	wait time.Duration
}

// reserveQuota charges a call of estimate tokens to d's provider quota. A
// deployment without one, or whose counters cannot be reached, fits: the
// request has passed its own limits, and the provider still has its say.
func (g *Gateway) reserveQuota(ctx context.Context, d *routing.Deployment, estimate int64) (limits.Reservation, quotaFit) {
	if d.Quota.Limits == (limits.Limits{}) {
		return limits.Reservation{}, quotaFit{ok: true}
	}
	res, result, err := g.limiter.Reserve(ctx, []limits.Scope{d.Quota}, limits.Cost{Tokens: estimate})
	if err != nil {
		g.log.Warn("deployment quota not checked", "deployment", d.Name, "error", err)
		return limits.Reservation{}, quotaFit{ok: true}
	}
	if result.Denial != nil {
		return limits.Reservation{}, quotaFit{wait: max(result.Denial.RetryAfter, time.Second)}
	}
	return res, quotaFit{ok: true}
}

// quotaReply carries the Retry-After of a request every deployment's quota
// refused.
func quotaReply(wait time.Duration) *upstream.Reply {
	secs := int64((wait + time.Second - 1) / time.Second)
	return &upstream.Reply{Status: http.StatusServiceUnavailable, Headers: []upstream.Header{{Name: "Retry-After", Value: strconv.FormatInt(secs, 10)}}}
}

// errReencode answers a request whose body could not be made for an
// upstream.
var errReencode = api.Internal("The request could not be re-encoded for the upstream.")

// outcomeOf classifies an upstream call's result for the metrics and the
// retries.
func outcomeOf(up *upstream.Reply, err error) string {
	switch {
	case errors.Is(err, upstream.ErrCancelled):
		return metrics.AttemptCancelled
	case errors.Is(err, upstream.ErrTimeout):
		return metrics.AttemptTimeout
	case err != nil:
		return metrics.AttemptUnavailable
	case up.Status == http.StatusTooManyRequests:
		return metrics.AttemptRateLimited
	case up.Status >= 500:
		return metrics.AttemptServerError
	case up.Status == http.StatusUnauthorized || up.Status == http.StatusForbidden:
		return metrics.AttemptRefused
	}
	return metrics.AttemptOK
}

// retryable reports whether an outcome is the deployment's failure, which
// another deployment (or the same, later) may not have.
func retryable(outcome string) bool {
	return outcome != metrics.AttemptOK && outcome != metrics.AttemptCancelled
}

// sleep waits d, or until ctx is done; it reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
