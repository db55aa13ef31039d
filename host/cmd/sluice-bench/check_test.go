package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestReadRecordedReadsBenchmarksMD(t *testing.T) {
	f, err := os.Open("../../../BENCHMARKS.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, err := readRecorded(f)
	if err != nil {
		t.Fatal(err)
	}
	var sluice1 *recorded
	for i, r := range rec {
		if r.target == "sluice" && r.concurrency == 1 {
			sluice1 = &rec[i]
		}
	}
	if sluice1 == nil || sluice1.latencyRatio <= 0 || sluice1.throughputFraction <= 0 || sluice1.throughputFraction > 1 {
		t.Fatalf("BENCHMARKS.md's comparison table read as %+v; make bench-check needs its sluice row at concurrency 1", rec)
	}
}

// rows builds the direct, proxy and sluice rows of a run from their p50s
// and req/s, round by round.
func runOf(direct, proxy, sluice []roundFigures) []resultRow {
	row := func(name string, rounds []roundFigures) resultRow {
		r := resultRow{Target: name, Concurrency: 1, rounds: rounds}
		r.P50, r.Throughput = rounds[len(rounds)/2].p50, rounds[len(rounds)/2].throughput
		return r
	}
	return []resultRow{row("direct", direct), row("proxy", proxy), row("sluice", sluice)}
}

func TestRegressionIsWorseInEveryRound(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	direct := []roundFigures{{ms(0.2), 5000}, {ms(0.2), 5000}, {ms(0.2), 5000}}
	proxy := []roundFigures{{ms(0.3), 3000}, {ms(0.3), 3000}, {ms(0.3), 3000}}
	table := `| target | conc | Sluice adds (p50) | proxy adds (p50) | latency ratio | of proxy req/s | aim |
|---|---:|---:|---:|---:|---:|---|
| sluice | 1 | 0.425 | 0.099 | 4.0× | 45% | not met |
`
	rec, err := readRecorded(strings.NewReader("text\n\n" + table + "\nmore text\n"))
	if err != nil || len(rec) != 1 {
		t.Fatalf("%v %+v", err, rec)
	}
	cases := []struct {
		name   string
		sluice []roundFigures
		want   int
	}{
		// Ratios 3.0, 5.0, 4.5 and 40–50%: the recorded figures are inside the spread.
		{"within the spread", []roundFigures{{ms(0.5), 1200}, {ms(0.7), 1500}, {ms(0.65), 1350}}, 0},
		// Ratios 5–6× in every round: worse than 4.0× every time.
		{"latency worse in every round", []roundFigures{{ms(0.7), 1350}, {ms(0.8), 1350}, {ms(0.75), 1350}}, 1},
		// 30–40% in every round against 45% recorded, and 6–7×.
		{"both worse", []roundFigures{{ms(0.8), 900}, {ms(0.9), 1200}, {ms(0.85), 1000}}, 2},
	}
	for _, c := range cases {
		found, compared := regressions(rec, compare(runOf(direct, proxy, c.sluice)))
		if compared != 1 || len(found) != c.want {
			t.Errorf("%s: %d compared, regressions %+v; want %d", c.name, compared, found, c.want)
		}
	}
}

func TestReadRecordedRefusesAFileWithoutTheTable(t *testing.T) {
	if _, err := readRecorded(strings.NewReader("| a | b |\n|---|---|\n| 1 | 2 |\n")); err == nil {
		t.Fatal("a file without the comparison table must not pass the check")
	}
}
