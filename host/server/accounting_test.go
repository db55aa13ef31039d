package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/tokens"
)

// TestFilesAreOwnerOnly starts Sluice with everything it writes under its
// data folder (ledger, decision log, compilation cache, generated admin token,
// demo key) and checks that no file or folder there is readable by anyone
// but its owner.
func TestFilesAreOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	// Files left by another tool or an older Sluice, readable by all, are
	// narrowed.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"decisions.jsonl", "sluice.db"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t, dir, open)
	cfg.PluginCacheDir = "" // under the data folder
	cfg.Server.AdminToken = ""
	cfg.Demo.Enabled = true
	h := start(t, cfg)
	cfg.Server.AdminToken = h.srv.AdminToken()
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "hello")); err != nil {
		t.Fatal(err)
	}
	h.raw("POST", "/v1/chat/completions", "no-such-key", `{}`)
	h.srv.Ledger().Flush(context.Background())

	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		seen[rel] = true
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s is %v, want %v", rel, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".", "sluice.db", "sluice.db-wal", "sluice.db-shm", "decisions.jsonl", "admin.token", "demo.key", "wasm-cache", "ledger.spool"} {
		if !seen[name] {
			t.Errorf("%s was not written; the test checks nothing for it (wrote %v)", name, seen)
		}
	}
}

// TestReservedLabelIsNoClientID: "other" is the metrics' overflow bucket, so
// a client or department named so would hide in it, or be blamed for it.
func TestReservedLabelIsNoClientID(t *testing.T) {
	h := newHarness(t, open)
	for _, body := range []string{`{"id":"other","department":"research"}`, `{"id":"fine","department":"other"}`} {
		if status, resp := h.admin("POST", "/admin/clients", body); status != http.StatusBadRequest {
			t.Errorf("POST /admin/clients %s: %d %s, want 400", body, status, resp)
		}
	}
}

// TestTinyRequestsAreBilledExactly sends 10,000 embeddings requests of a
// few tokens each through the gateway. At $0.02 per million tokens each
// costs well under a micro-dollar: a ledger that rounds each request to whole
// micro-dollars bills them $0. The report must bill the month what its
// tokens cost, to the nano-dollar.
func TestTinyRequestsAreBilledExactly(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	h := newHarness(t, open)
	body := []byte(`{"model":"text-embedding-3-small","input":"alpha beta gamma delta"}`)
	c := &fasthttp.Client{MaxConnsPerHost: 8}
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		next   atomic.Int64
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for next.Add(1) <= int64(n) {
				req.Reset()
				req.SetRequestURI("http://" + h.srv.Addr() + "/v1/embeddings")
				req.Header.SetMethod("POST")
				req.Header.Set("Authorization", "Bearer "+h.key)
				req.SetBody(body)
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d requests failed", f, n)
	}
	if err := h.srv.Ledger().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	status, out := h.admin("GET", "/admin/usage?group_by=client&format=json", "")
	if status != 200 {
		t.Fatalf("usage report %d %s", status, out)
	}
	var rows []struct {
		Client      string          `json:"client"`
		Requests    int64           `json:"requests"`
		TotalTokens int64           `json:"total_tokens"`
		Cost        json.RawMessage `json:"cost_usd"`
	}
	if err := json.Unmarshal(out, &rows); err != nil || len(rows) != 1 {
		t.Fatalf("report %s: %v", out, err)
	}
	r := rows[0]
	// $0.02 per million tokens is 20 nano-dollars a token.
	nanos := r.TotalTokens * 20
	want := fmt.Sprintf("%d.%09d", nanos/1e9, nanos%1e9)
	want = strings.TrimRight(want, "0")
	if got := strings.TrimRight(string(r.Cost), "0"); r.Requests != int64(n) || got != want || r.TotalTokens < int64(n) {
		t.Fatalf("%d requests of %d tokens billed $%s, want $%s", r.Requests, r.TotalTokens, r.Cost, want)
	}
	t.Logf("%d requests, %d tokens, billed $%s", r.Requests, r.TotalTokens, r.Cost)
}

// TestMalformedHeadersLeakNoKey sends a real key and the admin token, each
// followed by a NUL byte, which fasthttp refuses while parsing the headers,
// to both listeners: neither may appear in any log line, whichever library
// wrote it.
func TestMalformedHeadersLeakNoKey(t *testing.T) {
	h := newHarness(t, open)
	for _, tc := range []struct{ addr, secret string }{
		{h.srv.Addr(), h.key},
		{h.srv.AdminAddr(), h.cfg.Server.AdminToken},
	} {
		for _, header := range []string{"Authorization: Bearer " + tc.secret + "\x00", "x-api-key: " + tc.secret + "\x00tail", "X-Other: " + tc.secret + "\r\x00"} {
			conn, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n%s\r\nContent-Length: 2\r\n\r\n{}", header)
			conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			conn.Read(make([]byte, 4096)) // the 400, or the close
			conn.Close()
		}
	}
	h.stop()
	logs := h.logText()
	if !strings.Contains(logs, `"component":"http"`) {
		t.Fatalf("fasthttp logged nothing; the test checks nothing:\n%s", logs)
	}
	for _, s := range []string{h.key, h.cfg.Server.AdminToken, h.key[len(h.key)-12:]} {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q:\n%s", s, logs)
		}
	}
}

// TestFloodsCostNothing floods the gateway with requests that cannot be
// tied to a client (bad keys, made-up paths, unreadable requests): none is
// a ledger row, each is counted by reason, their log lines are sampled, and
// the address is held back with an OpenAI-shaped 429 once its refusals run
// out, while a key already known to be good keeps working from it.
func TestFloodsCostNothing(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Server.IPLimit = config.IPLimit{Rate: 1, Burst: 30}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	c := h.client(h.key)
	ctx := context.Background()
	if _, err := c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "hello")); err != nil {
		t.Fatal(err)
	}
	const n = 300
	codes := map[string]int{}
	var limited *http.Response
	for i := range n {
		var (
			resp *http.Response
			body []byte
		)
		switch i % 3 {
		case 0:
			resp, body = h.raw("POST", "/v1/chat/completions", "sk-sluice-not-a-key", `{}`)
		case 1:
			resp, body = h.raw("GET", "/"+strings.Repeat("probe/", 600), "", ``)
		default:
			conn, err := net.Dial("tcp", h.srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Bad: \x01\r\nContent-Length: 2\r\n\r\n{}")
			conn.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 4096)
			m, _ := conn.Read(buf)
			conn.Close()
			codes[string(buf[9:min(m, 12)])]++
			continue
		}
		var e struct{ Error struct{ Code, Type string } }
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("not OpenAI-shaped: %d %s", resp.StatusCode, body)
		}
		codes[e.Error.Code]++
		if e.Error.Code == "ip_rate_limited" {
			limited = resp
			if resp.StatusCode != 429 || e.Error.Type != "rate_limit_error" || resp.Header.Get("retry-after") == "" {
				t.Fatalf("the address's 429: %d %s, retry-after %q", resp.StatusCode, body, resp.Header.Get("retry-after"))
			}
		}
	}
	if limited == nil || codes["invalid_api_key"] == 0 || codes["not_found"] == 0 {
		t.Fatalf("answers by code: %v; want some of each and ip_rate_limited", codes)
	}
	if _, err := c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "still me")); err != nil {
		t.Fatalf("a known key from a held-back address: %v", err)
	}

	if err := h.srv.Ledger().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := h.srv.Store().Report(ctx, store.ReportQuery{GroupBy: store.GroupByClient})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Group != "app" || rows[0].Requests != 2 {
		t.Fatalf("ledger: %+v; want the client's two requests and nothing else", rows)
	}
	fams := h.scrape()
	var counted float64
	for _, reason := range []string{"invalid_api_key", "not_found", "malformed_request", "ip_rate_limited"} {
		got := sum(fams, "sluice_unauthenticated_requests_total", map[string]string{"reason": reason})
		if got <= 0 {
			t.Errorf("sluice_unauthenticated_requests_total{reason=%q} = %v", reason, got)
		}
		counted += got
	}
	if counted != n {
		t.Errorf("%v refusals counted, want %d", counted, n)
	}
	if lines := strings.Count(h.logText(), "request refused before authentication"); lines > 3*unauthenticatedLines {
		t.Errorf("%d log lines for %d refusals in about a second", lines, n)
	}
	if strings.Contains(h.logText(), "probe/probe/") {
		t.Error("a made-up path reached the log")
	}
}

// unauthenticatedLines is a generous bound on the lines a second of
// refusals may log.
const unauthenticatedLines = 25

// piiScans is how many times the pii plugin ran.
func (h *harness) piiScans() float64 {
	return sum(h.scrape(), "sluice_stage_duration_seconds", map[string]string{"stage": "plugin", "plugin": "pii"})
}

// TestPromptOverTierLimitIsRefusedBeforeScanning: a body over the tier's
// max_prompt_bytes is refused with 413 before any plugin reads it.
func TestPromptOverTierLimitIsRefusedBeforeScanning(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true, MaxPromptBytes: 4096})
	c := h.client(h.key)
	ctx := context.Background()
	_, err := c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "my card 4111 1111 1111 1111 "+strings.Repeat("pad ", 1500)))
	apiError(t, err, 413, "prompt_too_large")
	if got := h.piiScans(); got != 0 {
		t.Fatalf("the plugins scanned a prompt over max_prompt_bytes (%v scans)", got)
	}
	if _, err := c.Chat.Completions.New(ctx, chat("gpt-4o-mini", strings.Repeat("pad ", 500))); err != nil {
		t.Fatalf("a prompt under the limit: %v", err)
	}
}

// TestRefusalsCountTowardRPM: a client over its rpm with prompts the
// guardrails refuse gets 429 before any plugin runs.
func TestRefusalsCountTowardRPM(t *testing.T) {
	h := newHarness(t, config.Tier{Budget: config.Budget{RPM: 3}, Models: []string{"*"}, PIIDetection: true, ContentFilter: true})
	c := h.client(h.key)
	ctx := context.Background()
	scans := h.piiScans
	var err error
	for range 3 {
		_, err := c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "SSN 123-45-6789"))
		apiError(t, err, 400, "pii_detected")
	}
	before := scans()
	_, err = c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "SSN 123-45-6789"))
	e := apiError(t, err, 429, "rate_limit_exceeded")
	if e.Response.Header.Get("x-ratelimit-limit-requests") != "3" {
		t.Errorf("the 429 lacks OpenAI's headers: %v", e.Response.Header)
	}
	if after := scans(); after != before {
		t.Errorf("the plugins ran for a client over its rpm (%v scans, then %v)", before, after)
	}
}

// TestCallerStringsAreNotStored sends personal data and key material in
// every string a caller chooses (model, path, query, the headers the policy
// sees and others) through the gateway, with a good key and without, and
// looks for them in every file Sluice wrote (the SQLite ledger with its WAL,
// the decision log) and in its log.
func TestCallerStringsAreNotStored(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Policy.DecisionLogSample = 1
	cfg.Attribution.Tags = map[string][]string{"env": {"*"}, "owner": {"*"}}
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	secrets := []string{"ann.lee@example.com", "123-45-6789", "AKIA6AFQKVXPJEGZC7D3", h.key}
	dirty := "ann.lee@example.com SSN 123-45-6789 AKIA6AFQKVXPJEGZC7D3 " + h.key
	query := "?email=ann.lee@example.com&ssn=123-45-6789&key=" + h.key
	// tags is the x-sluice-tags header: a tag that holds what a tag may not
	// is refused (400 invalid_tags) before anything is stored of it.
	send := func(method, path, key, body, tags string) int {
		req, _ := http.NewRequest(method, "http://"+h.srv.Addr()+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		req.Header.Set("Content-Type", "application/json")
		for _, name := range []string{"User-Agent", "OpenAI-Organization", "OpenAI-Project", "X-Sluice-Purpose", "X-Request-Id", "X-Custom"} {
			req.Header.Set(name, dirty)
		}
		if tags != "" {
			req.Header.Set("X-Sluice-Tags", tags)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	chatBody := func(model string) string {
		b, _ := json.Marshal(map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": "hello"}}})
		return string(b)
	}
	for _, tc := range []struct {
		method, path, key, body string
		status                  int
		tags                    string
	}{
		{"POST", "/v1/chat/completions" + query, h.key, chatBody("gpt-4o-mini"), 200, ""},
		{"POST", "/v1/chat/completions" + query, h.key, chatBody("gpt-" + dirty), 404, ""},
		{"POST", "/v1/embeddings" + query, h.key, `{"model":"` + strings.ReplaceAll(dirty, " ", "-") + `","input":"hi"}`, 404, ""},
		{"GET", "/v1/models" + query, h.key, "", 200, ""},
		{"POST", "/v1/" + strings.ReplaceAll(dirty, " ", "/") + query, h.key, chatBody("gpt-4o-mini"), 404, ""},
		{"POST", "/v1/chat/completions" + query, "ann.lee@example.com", chatBody("gpt-" + dirty), 401, ""},
		{"PUT", "/v1/chat/completions" + query, h.key, chatBody("gpt-4o-mini"), 405, ""},
		{"POST", "/v1/chat/completions" + query, h.key, chatBody("gpt-4o-mini"), 400, "owner=" + dirty},
		{"POST", "/v1/chat/completions" + query, h.key, chatBody("gpt-4o-mini"), 400, "owner=123-45-6789"},
		{"POST", "/v1/chat/completions" + query, h.key, chatBody("gpt-4o-mini"), 400, "env=" + h.key},
		{"POST", "/v1/chat/completions" + query, h.key, chatBody("gpt-4o-mini"), 400, "env=AKIA6AFQKVXPJEGZC7D3"},
		{"POST", "/v1/chat/completions" + query, h.key, chatBody("gpt-4o-mini"), 400, "owner=ann.lee@example.com"},
	} {
		if got := send(tc.method, tc.path, tc.key, tc.body, tc.tags); got != tc.status {
			t.Errorf("%s %.40s…: %d, want %d", tc.method, tc.path, got, tc.status)
		}
	}
	h.stop() // flushes the ledger and closes the decision log

	wrote := map[string][]byte{"the log": h.logs.Bytes()}
	err := filepath.WalkDir(h.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		wrote[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"sluice.db", "decisions.jsonl"} {
		if len(wrote[filepath.Join(h.dataDir, must)]) == 0 {
			t.Fatalf("%s is empty or missing: the test checks nothing there", must)
		}
	}
	for name, b := range wrote {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q", name, s)
			}
		}
	}
}

// usageLine returns the access line of the client's last request.
func (h *harness) usageLine(client string) map[string]any {
	h.t.Helper()
	var last map[string]any
	for _, l := range strings.Split(h.logText(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" && m["client"] == client {
			last = m
		}
	}
	if last == nil {
		h.t.Fatalf("no access line for %s", client)
	}
	return last
}

// TestStreamLeftByTheCallerIsBilledWhatTheProviderBills: a caller that
// reads the first events of a stream and goes away is billed the whole reply,
// as the provider bills it, not the part it read.
func TestStreamLeftByTheCallerIsBilledWhatTheProviderBills(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams[0].Latency = config.Duration(300 * time.Millisecond) // 30 ms between chunks
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	whole := h.createClient("whole", "research")
	prompt := strings.Repeat("word ", 40)
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`

	// The same request, read to the end, says what the provider bills.
	c := h.client(whole)
	resp, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", prompt))
	if err != nil {
		t.Fatal(err)
	}

	conn, err := net.Dial("tcp", h.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		h.key, len(body), body)
	buf := make([]byte, 4096)
	if n, err := conn.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "200 OK") {
		t.Fatalf("first read: %v %q", err, buf[:n])
	}
	conn.Close()

	deadline := time.Now().Add(10 * time.Second)
	for {
		h.srv.Ledger().Flush(context.Background())
		rows, err := h.srv.Store().Report(context.Background(), store.ReportQuery{GroupBy: store.GroupByClient})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 2 {
			if rows[0].Group != "app" || rows[0].CompletionTokens != resp.Usage.CompletionTokens {
				t.Fatalf("the stream its caller left was billed %+v; the whole reply is %d completion tokens", rows[0], resp.Usage.CompletionTokens)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream was not recorded: %+v", rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if line := h.usageLine("app"); line["usage_source"] != "upstream" || line["code"] != "client_disconnected" {
		t.Errorf("access line %v: want usage_source upstream, code client_disconnected", line)
	}
}

// TestToolCallsAreBilledWithoutAUsageChunk: an upstream that streams tool
// calls, a refusal and reasoning and no usage chunk is billed for all of
// them, not only for delta.content.
func TestToolCallsAreBilledWithoutAUsageChunk(t *testing.T) {
	args := `{"location":"Paris, France","unit":"celsius","days":[1,2,3,4,5,6,7]}`
	events := []string{
		`{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"The user wants the weather for a week."}}]}`,
		`{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
		`{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":` + strconv.Quote(args) + `}}]}}]}`,
		`{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"refusal":"I will not share the forecast for the moon."},"finish_reason":"tool_calls"}]}`,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		for _, e := range events {
			fmt.Fprintf(ctx, "data: %s\n\n", e)
		}
		ctx.WriteString("data: [DONE]\n\n")
	}}
	go up.Serve(ln)
	t.Cleanup(func() { up.Shutdown() })
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: "tools", Type: "openai", BaseURL: "http://" + ln.Addr().String() + "/v1",
		Timeout: config.Duration(5 * time.Second), MaxConns: 4})
	cfg.Models = append(cfg.Models, config.Model{Name: "tool-model", Upstream: "tools", UpstreamModel: "x"})
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	resp, body := h.raw("POST", "/v1/chat/completions", h.key,
		`{"model":"tool-model","stream":true,"messages":[{"role":"user","content":"weather?"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "get_weather") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	want := tokens.Count("The user wants the weather for a week." + "get_weather" + args + "I will not share the forecast for the moon.")
	h.srv.Ledger().Flush(context.Background())
	rows, err := h.srv.Store().Report(context.Background(), store.ReportQuery{GroupBy: store.GroupByClient})
	if err != nil || len(rows) != 1 {
		t.Fatalf("%+v %v", rows, err)
	}
	if rows[0].CompletionTokens != want {
		t.Fatalf("the tool calls were billed %d completion tokens, want %d", rows[0].CompletionTokens, want)
	}
}

// TestDrainDelayKeepsAcceptingAfterReadinessTurns: on shutdown readiness
// turns false at once, and the public listener keeps serving for the drain
// delay, so a load balancer sees no refused connection.
func TestDrainDelayKeepsAcceptingAfterReadinessTurns(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Server.DrainDelay = config.Duration(700 * time.Millisecond)
	h := start(t, cfg)
	h.key = h.createClient("app", "research")
	closed := make(chan error, 1)
	srv := h.srv
	go func() { closed <- srv.Close(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	resp, err := http.Get("http://" + srv.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readiness while draining: %d, want 503", resp.StatusCode)
	}
	c := h.client(h.key)
	if _, err := c.Chat.Completions.New(context.Background(), chat("gpt-4o-mini", "still open?")); err != nil {
		t.Errorf("a request during the drain delay: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	h.srv = nil
}
