package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/tokens"
)

// rawUpstream is an upstream scripted at the socket: each connection's
// request is read whole, then handed to reply with the connection.
type rawUpstream struct {
	ln    net.Listener
	reply func(c net.Conn)
	wg    sync.WaitGroup
}

func startRawUpstream(t *testing.T, reply func(c net.Conn)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, reply: reply}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				u.reply(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); u.wg.Wait() })
	return u
}

// serve routes model "scripted" of cfg to the upstream, with the given
// timeouts.
func (u *rawUpstream) serve(cfg *config.Config, timeout, idle time.Duration) {
	cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: "scripted", Type: "openai", BaseURL: "http://" + u.ln.Addr().String() + "/v1",
		Timeout: config.Duration(timeout), IdleTimeout: config.Duration(idle), MaxConns: 8})
	cfg.Models = append(cfg.Models, config.Model{Name: "scripted", Upstream: "scripted", UpstreamModel: "x",
		InputPerMillion: 1, OutputPerMillion: 2})
}

// TestUpstreamStallingMidBodyIs504: an upstream that sends the start of
// its reply and then nothing is a timeout, and the caller hears so once the
// upstream's idle timeout has passed, not at its (much longer) timeout.
func TestUpstreamStallingMidBodyIs504(t *testing.T) {
	release := make(chan struct{})
	u := startRawUpstream(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"id\":\"chatcmpl-1\",")
		<-release
	})
	defer close(release)
	cfg := testConfig(t, t.TempDir(), open)
	u.serve(cfg, time.Minute, 300*time.Millisecond)
	h := start(t, cfg)
	h.key = h.createClient("app", "research")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // well below the upstream's minute
	defer cancel()
	c := h.client(h.key)
	asked := time.Now()
	_, err := c.Chat.Completions.New(ctx, chat("scripted", "hello"))
	apiError(t, err, http.StatusGatewayTimeout, "upstream_timeout")
	t.Logf("504 after %v (idle timeout 300ms)", time.Since(asked).Round(time.Millisecond))
	if line := h.usageLine("app"); line["code"] != "upstream_timeout" || line["status"] != float64(504) {
		t.Errorf("access line %v: want status 504, code upstream_timeout", line)
	}
}

// TestStreamStallingMidwayEndsWithATimeoutEvent: a stream whose upstream
// goes silent after two chunks ends, after the idle timeout, with an
// upstream_timeout error event and without [DONE]; the caller is billed
// what was relayed.
func TestStreamStallingMidwayEndsWithATimeoutEvent(t *testing.T) {
	release := make(chan struct{})
	chunks := []string{"The weather in Paris ", "is mild and dry today"}
	u := startRawUpstream(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for _, ch := range chunks {
			ev := fmt.Sprintf(`data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%q}}]}`+"\n\n", ch)
			fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
		}
		<-release
	})
	defer close(release)
	cfg := testConfig(t, t.TempDir(), open)
	u.serve(cfg, time.Minute, 300*time.Millisecond)
	h := start(t, cfg)
	h.key = h.createClient("app", "research")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+h.srv.Addr()+"/v1/chat/completions",
		strings.NewReader(`{"model":"scripted","stream":true,"messages":[{"role":"user","content":"weather?"}]}`))
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the stream: %v (read %q)", err, body)
	}
	if resp.StatusCode != 200 || !strings.Contains(string(body), "is mild and dry today") ||
		!strings.Contains(string(body), `"code":"upstream_timeout"`) || strings.Contains(string(body), "[DONE]") {
		t.Fatalf("stream %d:\n%s\nwant both chunks, an upstream_timeout event and no [DONE]", resp.StatusCode, body)
	}
	h.srv.Ledger().Flush(context.Background())
	rows, err := h.srv.Store().Report(context.Background(), store.ReportQuery{GroupBy: store.GroupByClient})
	if err != nil || len(rows) != 1 {
		t.Fatalf("%+v %v", rows, err)
	}
	if want := tokens.Count(strings.Join(chunks, "")); rows[0].CompletionTokens != want {
		t.Errorf("the stalled stream was billed %d completion tokens; %d were relayed", rows[0].CompletionTokens, want)
	}
	if line := h.usageLine("app"); line["code"] != "upstream_timeout" || line["usage_source"] != "estimated" {
		t.Errorf("access line %v: want code upstream_timeout, usage_source estimated", line)
	}
}

// TestCallerLeavingBeforeTheFirstByteEndsTheUpstreamCall: a caller that
// closes its connection while the upstream has not answered yet is
// noticed: the upstream's connection is closed too, long before the
// upstream's timeout, and the request is in the ledger once, billed its
// reservation.
func TestCallerLeavingBeforeTheFirstByteEndsTheUpstreamCall(t *testing.T) {
	received := make(chan struct{}, 1)
	closedAt := make(chan time.Time, 1)
	u := startRawUpstream(t, func(c net.Conn) {
		received <- struct{}{}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, c) // until Sluice closes the connection
		closedAt <- time.Now()
	})
	cfg := testConfig(t, t.TempDir(), open)
	u.serve(cfg, time.Minute, time.Minute)
	h := start(t, cfg)
	h.key = h.createClient("app", "research")

	body := `{"model":"scripted","max_tokens":100,"messages":[{"role":"user","content":"are you there?"}]}`
	conn, err := net.Dial("tcp", h.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		h.key, len(body), body)
	select {
	case <-received:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the upstream")
	}
	conn.Close()
	left := time.Now()
	var noticed time.Duration
	select {
	case at := <-closedAt:
		noticed = at.Sub(left)
	case <-time.After(20 * time.Second): // the upstream's timeout is a minute
		t.Fatal("the upstream's connection was still open 20s after the caller left")
	}

	var rows []store.ReportRow
	deadline := time.Now().Add(10 * time.Second)
	for len(rows) == 0 && time.Now().Before(deadline) {
		h.srv.Ledger().Flush(context.Background())
		if rows, err = h.srv.Store().Report(context.Background(), store.ReportQuery{GroupBy: store.GroupByClient}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(rows) != 1 || rows[0].Requests != 1 {
		t.Fatalf("ledger %+v: want the one request", rows)
	}
	if rows[0].CompletionTokens != 100 {
		t.Errorf("billed %d completion tokens; the reservation was max_tokens 100", rows[0].CompletionTokens)
	}
	line := h.usageLine("app")
	if line["code"] != "client_disconnected" || line["status"] != float64(499) || line["usage_source"] != "reserved" {
		t.Errorf("access line %v: want status 499, code client_disconnected, usage_source reserved", line)
	}
	t.Logf("the upstream's connection was closed %v after the caller's", noticed.Round(time.Millisecond))
}

// TestMalformedRequestsAreNoLedgerRows: a client with a valid key that
// floods the gateway with bodies that are not JSON gets 400 invalid_json
// each time, and adds nothing to the ledger: the refusals are counted in the
// metrics by code, and logged sampled, without the body.
func TestMalformedRequestsAreNoLedgerRows(t *testing.T) {
	h := newHarness(t, open)
	const n = 200
	junk := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"jane@example.com ` + strings.Repeat("x", 2000) + `"`
	for i := range n {
		body := junk
		if i%2 == 1 {
			body = ""
		}
		resp, b := h.raw("POST", "/v1/chat/completions", h.key, body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"invalid_`) {
			t.Fatalf("malformed body: %d %s", resp.StatusCode, b)
		}
	}
	c := h.client(h.key)
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello")); err != nil {
		t.Fatal(err)
	}
	h.srv.Ledger().Flush(context.Background())
	rows, err := h.srv.Store().Report(context.Background(), store.ReportQuery{GroupBy: store.GroupByClient})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 1 {
		t.Fatalf("ledger %+v: want the one well-formed request only", rows)
	}
	fams := h.scrape()
	counted := sum(fams, "sluice_requests_total", map[string]string{"code": "invalid_json"}) +
		sum(fams, "sluice_requests_total", map[string]string{"code": "invalid_request_body"})
	if counted != n {
		t.Errorf("sluice_requests_total counts %v malformed requests, want %d", counted, n)
	}
	logs := h.logText()
	if lines := strings.Count(logs, "malformed request refused"); lines == 0 || lines > 3*unauthenticatedLines {
		t.Errorf("%d log lines for %d malformed requests in about a second", lines, n)
	}
	if strings.Contains(logs, "jane@example.com") || strings.Contains(logs, "xxxxxxxx") {
		t.Error("a malformed body reached the log")
	}
}

// TestKeyPrefixLimiterHoldsBackAReplayedKey: a revoked key replayed from
// many addresses (here, the per-IP limit off, as behind a balancer) is
// refused with 429 auth_rate_limited once its prefix has used its failed
// attempts, without a store lookup each time; a good key with the same
// prefix, known to the gateway, keeps working, and other keys are not
// affected.
func TestKeyPrefixLimiterHoldsBackAReplayedKey(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Server.IPLimit = config.IPLimit{} // off: every caller shares a balancer's address
	cfg.Server.KeyLimit = config.IPLimit{Rate: 0.5, Burst: 10}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello")); err != nil {
		t.Fatal(err)
	}
	// A key of the same prefix as the good one that does not exist, as a
	// revoked or guessed one would be.
	replayed := h.key[:len(h.key)-4] + "zzzz"
	if replayed == h.key {
		replayed = h.key[:len(h.key)-4] + "yyyy"
	}
	codes := map[string]int{}
	var limited *http.Response
	for range 60 {
		resp, body := h.raw("POST", "/v1/chat/completions", replayed, `{}`)
		var e struct{ Error struct{ Code, Type string } }
		json.Unmarshal(body, &e)
		codes[e.Error.Code]++
		if e.Error.Code == "auth_rate_limited" {
			limited = resp
			if resp.StatusCode != 429 || e.Error.Type != "rate_limit_error" || resp.Header.Get("retry-after") == "" {
				t.Fatalf("the key's 429: %d %s", resp.StatusCode, body)
			}
		}
	}
	if limited == nil || codes["invalid_api_key"] > 11 {
		t.Fatalf("answers by code: %v; want about 10 invalid_api_key, then auth_rate_limited", codes)
	}
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "still me")); err != nil {
		t.Fatalf("the good key of the same prefix: %v", err)
	}
	second := h.createClient("second", "research")
	sc := h.client(second)
	if _, err := sc.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "me too")); err != nil {
		t.Fatalf("another client's key: %v", err)
	}
	if got := sum(h.scrape(), "sluice_unauthenticated_requests_total", map[string]string{"reason": "auth_rate_limited"}); got != float64(codes["auth_rate_limited"]) {
		t.Errorf("sluice_unauthenticated_requests_total{reason=auth_rate_limited} = %v, want %d", got, codes["auth_rate_limited"])
	}
	t.Logf("a replayed key's answers: %v", codes)
}

// TestShutdownDeadlineEndsAWaitingCall: a non-streamed request still
// waiting for its upstream's first byte at the shutdown deadline is
// answered 503 shutdown, recorded billed its reservation, and the
// shutdown is orderly (no error), instead of the process exiting under it
// with the request unrecorded.
func TestShutdownDeadlineEndsAWaitingCall(t *testing.T) {
	received := make(chan struct{}, 1)
	u := startRawUpstream(t, func(c net.Conn) {
		received <- struct{}{}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, c)
	})
	cfg := testConfig(t, t.TempDir(), open)
	u.serve(cfg, time.Minute, time.Minute)
	h := start(t, cfg)
	h.key = h.createClient("app", "research")

	type result struct {
		status int
		body   string
	}
	answered := make(chan result, 1)
	go func() {
		resp, body := h.raw("POST", "/v1/chat/completions", h.key,
			`{"model":"scripted","max_tokens":100,"messages":[{"role":"user","content":"are you there?"}]}`)
		answered <- result{resp.StatusCode, string(body)}
	}()
	<-received
	srv := h.srv
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Errorf("shutdown with a request waiting on its upstream: %v", err)
	}
	h.srv = nil
	r := <-answered
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, `"code":"shutdown"`) {
		t.Errorf("the waiting request got %d %s, want 503 shutdown", r.status, r.body)
	}
	st, err := store.OpenSQLite(context.Background(), cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.Report(context.Background(), store.ReportQuery{GroupBy: store.GroupByClient})
	if err != nil || len(rows) != 1 || rows[0].Requests != 1 || rows[0].CompletionTokens != 100 {
		t.Errorf("the ledger after the shutdown: %+v %v; want the request, billed its reservation", rows, err)
	}
	line := h.usageLine("app")
	if line["code"] != "shutdown" || line["status"] != float64(503) || line["usage_source"] != "reserved" || line["completion_tokens"] != float64(100) {
		t.Errorf("access line %v: want 503 shutdown, billed the reservation (100 completion tokens)", line)
	}
}
