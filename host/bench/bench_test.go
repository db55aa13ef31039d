package bench

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// serve starts h on a loopback port for the test's lifetime and returns its address.
func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	tests := []struct {
		name string
		lat  []time.Duration
		q    float64
		want time.Duration
	}{
		{"no samples", nil, 0.5, 0},
		{"one sample", []time.Duration{ms(7)}, 0.99, ms(7)},
		{"p50 of 1..100", hundred, 0.50, ms(50)},
		{"p90 of 1..100", hundred, 0.90, ms(90)},
		{"p99 of 1..100", hundred, 0.99, ms(99)},
		{"p100 is the maximum", hundred, 1, ms(100)},
		{"p0 is the minimum", hundred, 0, ms(1)},
		{"p50 of four takes the second", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 0.5, ms(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Result{Latencies: tt.lat}).Percentile(tt.q); got != tt.want {
				t.Errorf("Percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Fatalf("Median reordered its input: %v", tt.in)
			}
		}
	}
}

func TestSummarizeTakesMediansOfRounds(t *testing.T) {
	round := func(lat time.Duration, n, errors int) Result {
		r := Result{Elapsed: time.Second, Errors: errors}
		for range n {
			r.Latencies = append(r.Latencies, lat)
		}
		if errors > 0 {
			r.Failures = map[string]int{"status 503": errors}
		}
		return r
	}
	// The middle round wins on every figure; the disturbed one does not drag it.
	s := Summarize([]Result{round(ms(1), 1000, 0), round(ms(50), 10, 2), round(ms(2), 900, 0)})
	if s.P50 != ms(2) || s.P99 != ms(2) {
		t.Errorf("p50, p99 = %v, %v; want the median round's 2ms", s.P50, s.P99)
	}
	if s.Throughput != 900 || s.ThroughputMin != 10 || s.ThroughputMax != 1000 {
		t.Errorf("throughput = %v (%v..%v), want 900 (10..1000)", s.Throughput, s.ThroughputMin, s.ThroughputMax)
	}
	if s.Requests != 1910 || s.Errors != 2 || s.Failures["status 503"] != 2 {
		t.Errorf("totals = %d requests, %d errors %v; want 1910, 2 status 503", s.Requests, s.Errors, s.Failures)
	}
}

func TestFailureReasonsMostFrequentFirst(t *testing.T) {
	s := Summary{Failures: map[string]int{"timeout": 2, "status 429": 9, "status 502": 2}}
	got := strings.Join(s.FailureReasons(), ",")
	if want := "status 429,status 502,timeout"; got != want {
		t.Errorf("FailureReasons = %s, want %s", got, want)
	}
}

func TestRunMeasuresAndCountsErrors(t *testing.T) {
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Request.Header.Peek("X-Want")) == "fail" {
			ctx.SetStatusCode(fasthttp.StatusTooManyRequests)
			ctx.SetBodyString(`{"error":{"code":"rate_limit_exceeded"}}`)
			return
		}
		if string(ctx.PostBody()) != `{"ping":1}` || !ctx.IsPost() {
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
			return
		}
		time.Sleep(time.Millisecond)
		ctx.SetBodyString("ok")
	})
	base := Load{Addr: addr, Path: "/v1/x", Body: []byte(`{"ping":1}`), Concurrency: 2,
		Warmup: ms(50), Duration: ms(300)}

	ok, err := Run(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	if ok.Errors != 0 || ok.Requests() < 20 {
		t.Fatalf("healthy target: %d requests, %d errors %v", ok.Requests(), ok.Errors, ok.Failures)
	}
	// Two workers on a 1ms server cannot exceed 2000 req/s; warm-up must not count.
	if rps := ok.Throughput(); rps <= 0 || rps > 2000 {
		t.Errorf("throughput %v req/s, want within (0, 2000]", rps)
	}
	if p50 := ok.Percentile(0.5); p50 < time.Millisecond {
		t.Errorf("p50 %v is below the server's 1ms sleep", p50)
	}

	failing := base
	failing.Header = [][2]string{{"X-Want", "fail"}}
	bad, err := Run(context.Background(), failing)
	if err != nil {
		t.Fatal(err)
	}
	if bad.Requests() != 0 || bad.Errors == 0 || bad.Failures["status 429"] != bad.Errors {
		t.Errorf("failing target: %d ok, %d errors %v; want every request counted as status 429",
			bad.Requests(), bad.Errors, bad.Failures)
	}
	if !strings.Contains(bad.FailureSample, "rate_limit_exceeded") {
		t.Errorf("failure sample %q does not show the reply body", bad.FailureSample)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	addr := serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	ctx, cancel := context.WithTimeout(context.Background(), ms(100))
	defer cancel()
	began := time.Now()
	_, err := Run(ctx, Load{Addr: addr, Path: "/", Concurrency: 4, Duration: time.Minute})
	if err == nil {
		t.Fatal("Run of a cancelled load returned no error")
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Run took %v to stop after cancellation", took)
	}
}

func TestRunRefusesBadLoads(t *testing.T) {
	tests := []struct {
		name string
		load Load
	}{
		{"private address", Load{Addr: "10.0.0.1:80", Path: "/", Concurrency: 1, Duration: time.Second}},
		{"public name", Load{Addr: "example.com:80", Path: "/", Concurrency: 1, Duration: time.Second}},
		{"no port", Load{Addr: "127.0.0.1", Path: "/", Concurrency: 1, Duration: time.Second}},
		{"no workers", Load{Addr: "127.0.0.1:1", Path: "/", Concurrency: 0, Duration: time.Second}},
		{"too many workers", Load{Addr: "127.0.0.1:1", Path: "/", Concurrency: MaxConcurrency + 1, Duration: time.Second}},
		{"no duration", Load{Addr: "127.0.0.1:1", Path: "/", Concurrency: 1}},
		{"too long", Load{Addr: "127.0.0.1:1", Path: "/", Concurrency: 1, Duration: MaxDuration + time.Second}},
		{"relative path", Load{Addr: "127.0.0.1:1", Path: "v1", Concurrency: 1, Duration: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.load); err == nil {
				t.Errorf("Run(%+v) returned no error", tt.load)
			}
		})
	}
}

func TestCheckLoopbackAccepts(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8080", "127.1.2.3:1", "[::1]:80", "localhost:9090"} {
		if err := CheckLoopback(addr); err != nil {
			t.Errorf("CheckLoopback(%q) = %v", addr, err)
		}
	}
}

func TestProxyForwardsRequestAndResponse(t *testing.T) {
	upstream := serve(t, func(ctx *fasthttp.RequestCtx) {
		if len(ctx.Request.Header.Peek("Proxy-Authorization")) > 0 {
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
			ctx.SetBodyString("hop-by-hop header forwarded")
			return
		}
		ctx.SetStatusCode(fasthttp.StatusCreated)
		ctx.Response.Header.Set("X-Upstream", "yes")
		ctx.Response.Header.Set("X-Seen-Auth", string(ctx.Request.Header.Peek("Authorization")))
		ctx.SetBodyString(string(ctx.Method()) + " " + string(ctx.RequestURI()) + " " + string(ctx.PostBody()))
	})
	proxy := NewProxy(upstream)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go proxy.Serve(ln)
	t.Cleanup(func() { proxy.Shutdown() })

	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + ln.Addr().String() + "/v1/chat/completions?x=1")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.Set("Authorization", "Bearer k")
	req.Header.Set("Proxy-Authorization", "Basic secret")
	req.SetBodyString(`{"model":"m"}`)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != fasthttp.StatusCreated {
		t.Fatalf("status %d (%s), want the upstream's 201", resp.StatusCode(), resp.Body())
	}
	if got, want := string(resp.Body()), `POST /v1/chat/completions?x=1 {"model":"m"}`; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
	if string(resp.Header.Peek("X-Upstream")) != "yes" || string(resp.Header.Peek("X-Seen-Auth")) != "Bearer k" {
		t.Errorf("headers not carried through: %s", resp.Header.String())
	}
}

func TestProxyAnswers502WhenUpstreamIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there any more

	addr := serve(t, NewProxy(dead).Handler)
	status, _, err := fasthttp.GetTimeout(nil, "http://"+addr+"/", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if status != fasthttp.StatusBadGateway {
		t.Errorf("status %d, want 502", status)
	}
}
