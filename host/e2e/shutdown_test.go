package e2e

import (
	"context"
	"database/sql"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // "sqlite", to look up the ledger by request id

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/store"
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
