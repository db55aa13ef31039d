package policy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicehq/sluice/host/policy"
)

// decisions returns an allowed and a denied decision of the v2 policy, and
// a failed one.
func decisions(t *testing.T) (allowed, denied, failed policy.Result, failure error) {
	t.Helper()
	ctx := context.Background()
	s := newSet(t, policy.SetConfig{
		Policies: policy.Source{FS: v2Policy},
		Data:     map[string]any{"sluice": map[string]any{"tiers": tiers(), "departments": departments()}},
	})
	var err error
	if allowed, err = s.Decide(ctx, chat("standard", "gpt-4o-mini")); err != nil || !allowed.Decision.Allowed {
		t.Fatalf("allowed: %+v, %v", allowed.Decision, err)
	}
	if denied, err = s.Decide(ctx, chat("standard", "gpt-4o")); err != nil || denied.Decision.Allowed {
		t.Fatalf("denied: %+v, %v", denied.Decision, err)
	}
	broken := newSet(t, policy.SetConfig{Policies: policy.Source{FS: fstest.MapFS{
		"authz.rego": {Data: []byte("package sluice.authz\n\ndecision := 1 if input.never\n")},
	}}})
	failed, failure = broken.Decide(ctx, chat("standard", "gpt-4o-mini"))
	if failure == nil {
		t.Fatal("the broken policy decided")
	}
	return allowed, denied, failed, failure
}

// logLine is what the tests read back of a decision log line.
type logLine struct {
	Time       time.Time       `json:"time"`
	DecisionID string          `json:"decision_id"`
	RequestID  string          `json:"request_id"`
	Revision   string          `json:"revision"`
	DurationUS *int64          `json:"duration_us"`
	Input      map[string]any  `json:"input"`
	Result     json.RawMessage `json:"result"`
	Error      string          `json:"error"`
}

func readLines(t *testing.T, b []byte) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

func TestDecisionLogWritesEachDecisionAsOneLine(t *testing.T) {
	allowed, denied, failed, failure := decisions(t)
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	l, err := policy.OpenDecisionLog(path, policy.DecisionLogConfig{SampleRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	l.Record("req_1", allowed, nil)
	l.Record("req_2", denied, nil)
	l.Record("req_3", failed, failure)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, b)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), b)
	}
	for i, want := range []policy.Result{allowed, denied, failed} {
		got := lines[i]
		if got.DecisionID != want.ID || got.RequestID != "req_"+string(rune('1'+i)) || got.Revision != want.Revision ||
			got.DurationUS == nil || got.Time.IsZero() {
			t.Errorf("line %d: %+v, want decision %s of revision %s with its time and duration", i, got, want.ID, want.Revision)
		}
		client, _ := got.Input["client"].(map[string]any)
		if client["id"] != "billing-bot" {
			t.Errorf("line %d: input %v, want the client in it", i, got.Input)
		}
	}
	if !strings.Contains(string(lines[1].Result), `"code":"model_not_allowed"`) ||
		!strings.Contains(string(lines[1].Result), `"monthly_spend_usd":500.25`) {
		t.Errorf("denied line result %s, want the decision with its limits in dollars", lines[1].Result)
	}
	if lines[2].Error == "" || lines[2].Result != nil {
		t.Errorf("failed line: error %q, result %s; want the error and no result", lines[2].Error, lines[2].Result)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v, %v; want 0600", info.Mode(), err)
	}
}

func TestDecisionLogSamplesOnlyAllowedDecisions(t *testing.T) {
	allowed, denied, failed, failure := decisions(t)
	cases := []struct {
		rate         float64
		allowedMin   int
		allowedMax   int
		deniedWanted int
	}{
		{0, 0, 0, 200},
		{1, 1000, 1000, 200},
		{0.25, 150, 350, 200},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		l := policy.NewDecisionLog(&buf, policy.DecisionLogConfig{SampleRate: c.rate, Buffer: 2000})
		for range 1000 {
			l.Record("", allowed, nil)
		}
		for range 100 {
			l.Record("", denied, nil)
			l.Record("", failed, failure)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		var nAllowed, nOther int
		for _, line := range readLines(t, buf.Bytes()) {
			if line.DecisionID == allowed.ID {
				nAllowed++
			} else {
				nOther++
			}
		}
		if nAllowed < c.allowedMin || nAllowed > c.allowedMax || nOther != c.deniedWanted {
			t.Errorf("rate %v: %d allowed of 1000 and %d denied or failed of 200 written; want %d..%d and all",
				c.rate, nAllowed, nOther, c.allowedMin, c.allowedMax)
		}
		if l.Dropped() != 0 {
			t.Errorf("rate %v: %d dropped", c.rate, l.Dropped())
		}
	}
}

// stuckWriter blocks every write until released.
type stuckWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestDecisionLogNeverBlocksOnASlowWriter(t *testing.T) {
	_, denied, _, _ := decisions(t)
	w := &stuckWriter{release: make(chan struct{})}
	l := policy.NewDecisionLog(w, policy.DecisionLogConfig{Buffer: 8})
	start := time.Now()
	for range 1000 {
		l.Record("", denied, nil)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("1000 Records took %v with a stuck writer, want no waiting", took)
	}
	dropped := l.Dropped()
	// The writer goroutine holds a few entries in its own buffer before the
	// first write blocks; the rest beyond the 8 queued must be dropped.
	if dropped < 900 {
		t.Errorf("%d dropped, want nearly all of 1000 with a buffer of 8", dropped)
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := uint64(len(readLines(t, w.buf.Bytes()))); got+dropped != 1000 || got != l.Written() {
		t.Errorf("%d written + %d dropped, want 1000 in all (Written = %d)", got, dropped, l.Written())
	}
	// After Close, entries are dropped, not sent on a closed channel.
	l.Record("", denied, nil)
	if l.Dropped() != dropped+1 {
		t.Errorf("Record after Close: dropped %d, want %d", l.Dropped(), dropped+1)
	}
}

func TestDecisionLogReportsWriteErrors(t *testing.T) {
	_, denied, _, _ := decisions(t)
	l := policy.NewDecisionLog(failingWriter{}, policy.DecisionLogConfig{})
	l.Record("", denied, nil)
	if err := l.Close(); err == nil {
		t.Error("Close after a failed write = nil, want the error")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }
