package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// recorded is one row of the comparison table a file records: a target's
// ratios against the bare proxy at one concurrency.
type recorded struct {
	target             string
	concurrency        int
	latencyRatio       float64 // 0 when the file gives none
	throughputFraction float64
}

// readRecorded reads the first comparison table of a Markdown file: the one
// whose header has the columns "target", "conc", "latency ratio" and
// "of proxy req/s", as BENCHMARKS.md's Results section writes it
// ("| sluice | 1 | 0.425 | 0.099 | 4.3× | 46% | … |").
func readRecorded(r io.Reader) ([]recorded, error) {
	sc := bufio.NewScanner(r)
	var cols map[string]int
	var out []recorded
	for sc.Scan() {
		cells, ok := tableCells(sc.Text())
		switch {
		case !ok && cols != nil:
			return out, nil // the table ended
		case !ok:
			continue
		case cols == nil:
			if slices.Contains(cells, "latency ratio") && slices.Contains(cells, "of proxy req/s") {
				cols = map[string]int{}
				for i, c := range cells {
					cols[c] = i
				}
				for _, need := range []string{"target", "conc"} {
					if _, ok := cols[need]; !ok {
						return nil, fmt.Errorf("the comparison table has no %q column", need)
					}
				}
			}
			continue
		case isRule(cells[0]):
			continue
		}
		row, err := parseRecordedRow(cells, cols)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", sc.Text(), err)
		}
		out = append(out, row)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cols == nil {
		return nil, fmt.Errorf("no table with the columns \"latency ratio\" and \"of proxy req/s\"")
	}
	return out, nil
}

// tableCells splits a Markdown table row into its trimmed cells.
func tableCells(line string) ([]string, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil, false
	}
	cells := strings.Split(line[1:len(line)-1], "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells, true
}

// isRule reports the cell of a table's separator row: "---", ":--:".
func isRule(cell string) bool { return cell != "" && strings.Trim(cell, "-:") == "" }

func parseRecordedRow(cells []string, cols map[string]int) (recorded, error) {
	cell := func(name string) string {
		if i, ok := cols[name]; ok && i < len(cells) {
			return cells[i]
		}
		return ""
	}
	var row recorded
	var err error
	row.target = cell("target")
	if row.concurrency, err = strconv.Atoi(cell("conc")); err != nil {
		return row, fmt.Errorf("concurrency: %w", err)
	}
	if ratio := strings.TrimSuffix(cell("latency ratio"), "×"); ratio != "" && ratio != "n/a" {
		if row.latencyRatio, err = strconv.ParseFloat(ratio, 64); err != nil {
			return row, fmt.Errorf("latency ratio: %w", err)
		}
	}
	pct, err := strconv.ParseFloat(strings.TrimSuffix(cell("of proxy req/s"), "%"), 64)
	if err != nil {
		return row, fmt.Errorf("of proxy req/s: %w", err)
	}
	row.throughputFraction = pct / 100
	return row, nil
}

// A regression is a figure worse than the recorded one in every round of
// this run: the recorded latency ratio below the lowest round's, or the
// recorded throughput fraction above the highest round's. Within the
// spread of the rounds the machine's noise cannot be told from a change.
type regression struct {
	target      string
	concurrency int
	what        string
}

func regressions(rec []recorded, now []comparison) (found []regression, compared int) {
	for _, r := range rec {
		i := slices.IndexFunc(now, func(c comparison) bool { return c.Target == r.target && c.Concurrency == r.concurrency })
		if i < 0 {
			continue
		}
		c := now[i]
		compared++
		if rg := c.LatencyRatioRange; rg != nil && r.latencyRatio > 0 && rg[0] > r.latencyRatio {
			found = append(found, regression{r.target, r.concurrency,
				fmt.Sprintf("latency ratio %.1f–%.1f× over the rounds, recorded %.1f×", rg[0], rg[1], r.latencyRatio)})
		}
		if rg := c.ThroughputFractionRange; rg != nil && rg[1] < r.throughputFraction {
			found = append(found, regression{r.target, r.concurrency,
				fmt.Sprintf("throughput %.0f–%.0f%% of the proxy's over the rounds, recorded %.0f%%", 100*rg[0], 100*rg[1], 100*r.throughputFraction)})
		}
	}
	return found, compared
}

// checkRecorded compares this run's comparisons with those file records,
// prints the verdict, and returns an error when something regressed.
func checkRecorded(w io.Writer, file string, now []comparison) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("-check: %w", err)
	}
	defer f.Close()
	rec, err := readRecorded(f)
	if err != nil {
		return fmt.Errorf("-check %s: %w", file, err)
	}
	found, compared := regressions(rec, now)
	if compared == 0 {
		return fmt.Errorf("-check %s: no target and concurrency of this run is recorded there", file)
	}
	if len(found) == 0 {
		fmt.Fprintf(w, "\nCheck against %s: %d figure(s) compared, none worse than recorded in every round.\n", file, compared)
		return nil
	}
	fmt.Fprintf(w, "\nCheck against %s: worse than recorded in every round:\n", file)
	for _, r := range found {
		fmt.Fprintf(w, "  %s at concurrency %d: %s\n", r.target, r.concurrency, r.what)
	}
	return fmt.Errorf("%d regression(s) against %s", len(found), file)
}
