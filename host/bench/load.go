// Package bench holds the reusable parts of Sluice's end-to-end benchmark: a
// closed-loop HTTP load generator that records every latency, the statistics
// over its samples, and the bare fasthttp reverse proxy that Sluice is
// compared with.
//
// Load is only ever sent to loopback addresses: the benchmark measures
// processes on the same machine, and a typo must not turn it into a flood
// of some other host.
package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Limits on a Load, so that a mistyped flag cannot start an unbounded run.
const (
	MaxConcurrency = 1024
	MaxDuration    = 10 * time.Minute
)

// Load is one closed-loop run: Concurrency workers each send Body to Addr,
// wait for the reply, and send again, first for Warmup (not recorded), then
// for Duration (recorded).
type Load struct {
	// Addr is host:port of the target; the host must be a loopback address.
	Addr string
	// Path is the request path, such as /v1/chat/completions.
	Path string
	// Header holds extra request headers, name then value.
	Header [][2]string
	// Body is sent with POST and Content-Type application/json.
	Body []byte
	// Concurrency is the number of workers, each with at most one request in flight.
	Concurrency int
	// Warmup opens connections and warms caches before recording starts.
	Warmup time.Duration
	// Duration is how long latencies are recorded.
	Duration time.Duration
	// Timeout bounds one request. Default 10s.
	Timeout time.Duration
}

// Result is what one Load measured. Only requests sent and answered within
// the recorded window count.
type Result struct {
	// Latencies of the successful (2xx) requests, sorted ascending.
	Latencies []time.Duration
	// Elapsed is the recorded window.
	Elapsed time.Duration
	// Errors counts requests answered with a non-2xx status or not answered.
	Errors int
	// Failures counts Errors by reason, such as "status 429" or "timeout".
	Failures map[string]int
	// FailureSample is the start of the first non-2xx reply body, to tell
	// what went wrong without a second run.
	FailureSample string
}

// Requests is the number of successful requests in the window.
func (r Result) Requests() int { return len(r.Latencies) }

// Throughput is successful requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.Elapsed.Seconds()
}

// Percentile is the latency below which the fraction q (0 to 1) of the
// successful requests fall, by the nearest-rank method; 0 with no samples.
func (r Result) Percentile(q float64) time.Duration { return percentile(r.Latencies, q) }

// percentile is the nearest-rank q-quantile of sorted; 0 when it is empty.
func percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(q*float64(n)+0.999999999) - 1 // ceil(q·n), 1-based, to an index
	return sorted[min(max(rank, 0), n-1)]
}

// Run performs l and returns what it measured. It stops early, with ctx's
// error, when ctx is done.
func Run(ctx context.Context, l Load) (Result, error) {
	if err := l.check(); err != nil {
		return Result{}, err
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := &fasthttp.HostClient{
		Addr:                     l.Addr,
		MaxConns:                 l.Concurrency,
		MaxConnWaitTimeout:       timeout,
		NoDefaultUserAgentHeader: true,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		MaxIdleConnDuration:      time.Minute,
	}
	defer client.CloseIdleConnections()

	start := time.Now()
	from := start.Add(l.Warmup)
	to := from.Add(l.Duration)
	workers := make([]worker, l.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		// Preallocated so that growing a slice does not show up as latency.
		w.latencies = make([]time.Duration, 0, 4096)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx, client, &l, timeout, from, to)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	res := Result{Elapsed: l.Duration, Failures: map[string]int{}}
	total := 0
	for i := range workers {
		total += len(workers[i].latencies)
	}
	res.Latencies = make([]time.Duration, 0, total)
	for i := range workers {
		w := &workers[i]
		res.Latencies = append(res.Latencies, w.latencies...)
		res.Errors += w.errors
		for k, v := range w.failures {
			res.Failures[k] += v
		}
		if res.FailureSample == "" {
			res.FailureSample = w.sample
		}
	}
	slices.Sort(res.Latencies)
	return res, nil
}

func (l *Load) check() error {
	switch {
	case l.Concurrency < 1 || l.Concurrency > MaxConcurrency:
		return fmt.Errorf("bench: concurrency %d: want 1 to %d", l.Concurrency, MaxConcurrency)
	case l.Duration <= 0 || l.Warmup < 0 || l.Warmup+l.Duration > MaxDuration:
		return fmt.Errorf("bench: duration %s and warm-up %s: want a positive duration, %s at most in all",
			l.Duration, l.Warmup, MaxDuration)
	case !strings.HasPrefix(l.Path, "/"):
		return fmt.Errorf("bench: path %q: want an absolute path", l.Path)
	}
	return CheckLoopback(l.Addr)
}

// CheckLoopback returns an error unless addr is host:port with a loopback
// host (127.0.0.0/8, ::1 or localhost).
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bench: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("bench: address %q is not on loopback; load is only sent to this machine", addr)
}

// worker is one closed loop. Its samples are its own, so that recording
// takes no lock.
type worker struct {
	latencies []time.Duration
	errors    int
	failures  map[string]int
	sample    string
}

func (w *worker) run(ctx context.Context, client *fasthttp.HostClient, l *Load, timeout time.Duration, from, to time.Time) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for ctx.Err() == nil {
		req.Reset()
		req.SetRequestURI("http://" + l.Addr + l.Path)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		for _, h := range l.Header {
			req.Header.Set(h[0], h[1])
		}
		req.SetBodyRaw(l.Body)
		resp.Reset()

		sent := time.Now()
		if !sent.Before(to) {
			return
		}
		err := client.DoTimeout(req, resp, timeout)
		done := time.Now()
		if sent.Before(from) || done.After(to) {
			continue // warm-up, or straddles the end of the window
		}
		switch status := resp.StatusCode(); {
		case err != nil:
			w.fail(failureReason(err), "")
		case status < 200 || status > 299:
			w.fail(fmt.Sprintf("status %d", status), string(resp.Body()))
		default:
			w.latencies = append(w.latencies, done.Sub(sent))
		}
	}
}

func (w *worker) fail(reason, body string) {
	if w.failures == nil {
		w.failures = map[string]int{}
	}
	w.errors++
	w.failures[reason]++
	if w.sample == "" && body != "" {
		w.sample = truncate(body, 300)
	}
}

func failureReason(err error) string {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout):
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no free connections"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "connection closed"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + " error"
	}
	return "transport error"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
