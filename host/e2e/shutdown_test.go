package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // "sqlite", to look up the ledger by request id

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/tokens"
)

// TestSIGTERMKeepsEveryAnsweredRequest stops a gateway with SIGTERM while
// eight callers keep it busy: the process exits 0 within shutdown_timeout,
// and every request a caller got an answer to is in the ledger afterwards,
// with the status the caller saw.
func TestSIGTERMKeepsEveryAnsweredRequest(t *testing.T) {
	const callers = 8
	cfg := baseConfig(t)
	cfg.Upstreams[0].Latency = config.Duration(50 * time.Millisecond)
	cfg.Server.ShutdownTimeout = config.Duration(5 * time.Second)
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "research", "open")

	l := startLoad(g.client(key), callers, 20, true)
	time.Sleep(500 * time.Millisecond)
	signalled := time.Now()
	code, took := g.stop(syscall.SIGTERM)
	answers := l.wait(10 * time.Second)
	if code != 0 {
		t.Errorf("sluice exited with %d after SIGTERM", code)
	}
	if limit := cfg.Server.ShutdownTimeout.D(); took > limit {
		t.Errorf("sluice took %v to exit; shutdown_timeout is %v", took, limit)
	}

	ledger := ledgerStatuses(t, cfg.StorePath())
	answered, late, missing := 0, 0, 0
	for _, a := range answers {
		if a.status == 0 {
			continue
		}
		answered++
		if a.at.After(signalled) {
			late++
		}
		if a.requestID == "" {
			t.Errorf("an answer (%s) without x-request-id", a.outcome())
			continue
		}
		status, ok := ledger[a.requestID]
		switch {
		case !ok:
			missing++
			t.Errorf("request %s was answered %s but is not in the ledger", a.requestID, a.outcome())
		case status != a.status:
			t.Errorf("request %s was answered %d; the ledger says %d", a.requestID, a.status, status)
		}
	}
	if answered == 0 {
		t.Fatal("no request was answered")
	}
	t.Logf("SIGTERM under load from %d callers: exit %d after %v; %d requests answered (%d after the signal), %d in the ledger, %d missing; outcomes %v",
		callers, code, took.Round(time.Millisecond), answered, late, len(ledger), missing, tally(answers))
}

// ledgerStatuses opens the SQLite store a stopped gateway left and returns
// the status of every request in its ledger, by request id.
func ledgerStatuses(t *testing.T, path string) map[string]int {
	t.Helper()
	ctx := context.Background()
	// Opening through the store checks that the file is a store whose
	// migrations are all applied; the Store has no lookup by request id, so
	// the events are read with plain SQL.
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("opening the stopped gateway's store: %v", err)
	}
	rows, err := st.Report(ctx, store.ReportQuery{GroupBy: store.GroupByClient})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	var reported int64
	for _, r := range rows {
		reported += r.Requests
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := db.QueryContext(ctx, `SELECT request_id, status FROM usage_events`)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]int{}
	for q.Next() {
		var id string
		var status int
		if err := q.Scan(&id, &status); err != nil {
			t.Fatal(err)
		}
		out[id] = status
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	if int64(len(out)) != reported {
		t.Fatalf("the ledger holds %d request ids but reports %d requests", len(out), reported)
	}
	return out
}

// TestSIGTERMRecordsStreamsLongerThanTheDeadline stops a gateway with
// SIGTERM while streams that would last far longer than shutdown_timeout
// are being read: the process exits 0, each caller's stream ends with a
// "shutdown" error event, and every stream is in the ledger, billed at
// least what its caller was sent, with usage_source "shutdown".
func TestSIGTERMRecordsStreamsLongerThanTheDeadline(t *testing.T) {
	const streams = 6
	cfg := baseConfig(t)
	// 300ms before the reply, 30ms between chunks: the reply to the
	// prompt below takes about 12s to stream.
	cfg.Upstreams[0].Latency = config.Duration(300 * time.Millisecond)
	cfg.Server.ShutdownTimeout = config.Duration(1500 * time.Millisecond)
	g := startGateway(t, cfg)
	key, _ := g.createClient("app", "research", "open")
	prompt := strings.Repeat("stream ", 400)
	body := `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`

	type seen struct {
		requestID, content, last string
		err                      error
	}
	results := make([]seen, streams)
	started := make(chan struct{}, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+cfg.Server.Listen+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results[i].err = err
				started <- struct{}{}
				return
			}
			defer resp.Body.Close()
			results[i].requestID = resp.Header.Get("x-request-id")
			sc := bufio.NewScanner(resp.Body)
			first := true
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				results[i].last = data
				var chunk struct {
					Choices []struct{ Delta struct{ Content string } }
				}
				if json.Unmarshal([]byte(data), &chunk) == nil && len(chunk.Choices) > 0 {
					results[i].content += chunk.Choices[0].Delta.Content
					if first {
						first = false
						started <- struct{}{}
					}
				}
			}
			results[i].err = sc.Err()
		})
	}
	for range streams {
		<-started
	}
	time.Sleep(200 * time.Millisecond)
	code, took := g.stop(syscall.SIGTERM)
	wg.Wait()
	if code != 0 {
		t.Errorf("sluice exited with %d after SIGTERM with streams open", code)
	}

	db, err := sql.Open("sqlite", cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, r := range results {
		if r.err != nil || r.requestID == "" {
			t.Errorf("stream %d: %v (request id %q)", i, r.err, r.requestID)
			continue
		}
		if !strings.Contains(r.last, `"code":"shutdown"`) {
			t.Errorf("stream %d ended with %q, want a shutdown error event", i, r.last)
		}
		var completion int64
		var source, rowCode string
		err := db.QueryRow(`SELECT completion_tokens, usage_source, code FROM usage_events WHERE request_id = ?`, r.requestID).
			Scan(&completion, &source, &rowCode)
		if err != nil {
			t.Errorf("stream %d (%s) is not in the ledger: %v", i, r.requestID, err)
			continue
		}
		if sent := tokens.Count(r.content); completion < sent || sent == 0 || source != store.UsageShutdown || rowCode != "shutdown" {
			t.Errorf("stream %d: ledger %d completion tokens, usage_source %q, code %q; the caller was sent %d tokens; want at least that, shutdown, shutdown",
				i, completion, source, rowCode, sent)
		}
	}
	t.Logf("SIGTERM with %d streams open: exit %d after %v (shutdown_timeout %v); all streams checked in the ledger",
		streams, code, took.Round(time.Millisecond), cfg.Server.ShutdownTimeout.D())
}
