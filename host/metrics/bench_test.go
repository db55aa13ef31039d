package metrics

import (
	"testing"
	"time"
)

// BenchmarkRecord is the request path's cost of metrics: one answered chat
// with every stage timed and one plugin, once its series exist.
func BenchmarkRecord(b *testing.B) {
	m := newTest(Options{})
	r := Request{Endpoint: EndpointChat, Department: "finance", Client: "ledger-app", Model: "gpt-4o", Status: 200,
		PromptTokens: 100, CompletionTokens: 50, CostNanos: 1500,
		Stages: Stages{StageAuth: 5 * time.Microsecond, StageParse: 10 * time.Microsecond, StagePolicy: 40 * time.Microsecond,
			StageLimits: 3 * time.Microsecond, StageUpstream: 200 * time.Millisecond, StageTotal: 300 * time.Millisecond}}
	b.ReportAllocs()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			m.Record(&r)
			m.ObservePlugin("pii", 30*time.Microsecond)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			r := r
			for pb.Next() {
				m.Record(&r)
				m.ObservePlugin("pii", 30*time.Microsecond)
			}
		})
	})
}
