package main

import (
	"testing"

	"github.com/google/pprof/profile"
)

// stack builds a sample whose stack is fns, leaf first.
func sampleOf(fns ...string) *profile.Sample {
	s := &profile.Sample{}
	for _, fn := range fns {
		s.Location = append(s.Location, &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: fn}}}})
	}
	return s
}

func TestStageOfChargesTheInnermostStage(t *testing.T) {
	const h = "github.com/sluicehq/sluice/host/"
	server := []string{h + "proxy.(*Gateway).Handler", "github.com/valyala/fasthttp.(*Server).serveConn", "runtime.goexit"}
	cases := []struct {
		stack []string
		want  string
	}{
		// OPA's work is the policy's, even though the handler is outside it.
		{append([]string{"github.com/open-policy-agent/opa/v1/topdown.eval", h + "policy.(*Set).Decide", h + "proxy.(*Gateway).admit"}, server...), "policy (input, OPA, decision log)"},
		// The upstream client is fasthttp too: it is the upstream's, not the server's.
		{append([]string{"github.com/valyala/fasthttp.(*HostClient).Do", h + "upstream.(*openAI).Send", h + "proxy.(*Gateway).sendCached"}, server...), "upstream client and routing"},
		{append([]string{"encoding/json.Unmarshal", h + "api.ParseChatRequest", h + "proxy.(*Gateway).serveAsChat"}, server...), "parse and encode (api, translate)"},
		{append([]string{"log/slog.(*Logger).LogAttrs", h + "proxy.(*Gateway).logAccess", h + "proxy.(*Gateway).record"}, server...), "access log"},
		{append([]string{h + "proxy.(*Gateway).authenticate"}, server...), "auth (key lookup)"},
		{append([]string{"runtime.mallocgc", h + "proxy.(*Gateway).forward"}, server...), "rest of the handler (proxy)"},
		// The server's own work, outside any handler: reading the request.
		{[]string{"bufio.(*Reader).Read", "github.com/valyala/fasthttp.(*Server).serveConn", "runtime.goexit"}, "HTTP server (fasthttp)"},
		{[]string{"runtime.gcBgMarkWorker", "runtime.goexit"}, runtimeStage},
	}
	for _, c := range cases {
		if got := stageOf(sampleOf(c.stack...)); got != c.want {
			t.Errorf("%s: charged to %q, want %q", c.stack[0], got, c.want)
		}
	}
}

func TestStageBudgetDividesByRequests(t *testing.T) {
	const h = "github.com/sluicehq/sluice/host/"
	cpu := &profile.Profile{SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}}}
	for _, s := range []struct {
		fn    string
		nanos int64
	}{{h + "policy.(*Set).Decide", 3_000_000}, {h + "tokens.Chat", 1_000_000}} {
		sm := sampleOf(s.fn)
		sm.Value = []int64{1, s.nanos}
		cpu.Sample = append(cpu.Sample, sm)
	}
	allocs := &profile.Profile{SampleType: []*profile.ValueType{{Type: "alloc_objects", Unit: "count"}, {Type: "alloc_space", Unit: "bytes"}}}
	sm := sampleOf(h + "policy.(*Engine).eval")
	sm.Value = []int64{5000, 1 << 20}
	allocs.Sample = append(allocs.Sample, sm)

	rows, err := stageBudget(cpu, allocs, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]StageRow{}
	for _, r := range rows {
		got[r.Stage] = r
	}
	p := got["policy (input, OPA, decision log)"]
	if p.CPUMicros != 30 || p.CPUShare != 0.75 || p.Allocs != 50 || p.AllocatedBytes != (1<<20)/100.0 {
		t.Fatalf("policy row %+v; want 30 µs, 75%%, 50 allocations, 10.24 KiB per request", p)
	}
	if tc := got["token count"]; tc.CPUMicros != 10 || tc.Allocs != 0 {
		t.Fatalf("token count row %+v", tc)
	}
	if _, err := stageBudget(cpu, allocs, 0); err == nil {
		t.Fatal("a profile with no request served must not give a table")
	}
}
