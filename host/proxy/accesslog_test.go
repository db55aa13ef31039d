package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/store"
)

func accessEvent() store.UsageEvent {
	return store.UsageEvent{RequestID: "req_1", Endpoint: pathChat, ClientID: "app", Department: "research", KeyID: "key_1",
		Model: "gpt-4o-mini", Status: 200, PromptTokens: 12, CompletionTokens: 5, CostNanos: 1234, UsageSource: "upstream", LatencyMS: 3}
}

func TestAccessLineShape(t *testing.T) {
	var buf bytes.Buffer
	g := &Gateway{log: slog.New(slog.NewJSONHandler(&buf, nil))}
	ev := accessEvent()
	var st metrics.Stages
	st[metrics.StagePolicy] = 42 * time.Microsecond
	st[metrics.StageTotal] = 3 * time.Millisecond
	var scratch [numStageAttrs]slog.Attr
	g.logAccess(&ev, "dec_1", &st, &scratch)
	var line struct {
		Msg       string           `json:"msg"`
		RequestID string           `json:"request_id"`
		Stages    map[string]int64 `json:"stages_us"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if line.Msg != "request" || line.RequestID != "req_1" || line.Stages["policy"] != 42 || line.Stages["total"] != 3000 || len(line.Stages) != numStageAttrs {
		t.Fatalf("access line %s", buf.Bytes())
	}
}

// BenchmarkAccessLine is the access log's cost per request, allocations
// included, with the JSON handler the gateway runs with.
func BenchmarkAccessLine(b *testing.B) {
	g := &Gateway{log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	ev := accessEvent()
	var st metrics.Stages
	var scratch [numStageAttrs]slog.Attr
	b.ReportAllocs()
	for b.Loop() {
		g.logAccess(&ev, "dec_1", &st, &scratch)
	}
}
