package usage

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/store"
)

// Report formats accepted by WriteReport.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// reportColumns are the numeric columns after the group, in order.
var reportColumns = []string{"requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"}

// cacheColumns follow reportColumns in a report (not in a series): the
// requests the reply cache answered and what they would have cost.
var cacheColumns = []string{"cache_hits", "saved_usd"}

// WriteReport writes rows grouped by groupBy (store.GroupByDepartment,
// GroupByClient, GroupByModel or GroupByEndpoint) in one of three formats:
//   - "table": aligned text for people, ending with a TOTAL line;
//   - "json": an array of objects whose group field is named after groupBy,
//     with snake_case fields and cost_usd as an exact decimal;
//   - "csv": a header row, then one row per group, with no total row so
//     that spreadsheets can sum the columns themselves.
//
// Costs are printed in dollars with six decimals, the precision they are
// stored with, so nothing is rounded away.
func WriteReport(w io.Writer, rows []store.ReportRow, groupBy, format string) error {
	if !store.ValidGroupBy(groupBy) {
		return fmt.Errorf("write report: unknown grouping %q: want %s", groupBy, store.GroupByNames)
	}
	switch format {
	case FormatTable:
		return writeTable(w, rows, groupBy)
	case FormatJSON:
		return writeJSON(w, rows, groupBy)
	case FormatCSV:
		return writeCSV(w, rows, groupBy)
	}
	return fmt.Errorf("write report: unknown format %q: want %q, %q or %q", format, FormatTable, FormatJSON, FormatCSV)
}

// dollars formats billionths of a dollar as an exact decimal, without going
// through float64: six decimals at least, as many as it takes up to nine.
// 1,500,000 is "0.001500"; 320 is "0.00000032".
func dollars(nanos int64) string {
	sign := ""
	u := uint64(nanos)
	if nanos < 0 {
		sign = "-"
		u = -u
	}
	frac := fmt.Sprintf("%09d", u%1_000_000_000)
	for len(frac) > 6 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	return fmt.Sprintf("%s%d.%s", sign, u/1_000_000_000, frac)
}

func cells(r store.ReportRow) []string {
	return []string{
		strconv.FormatInt(r.Requests, 10),
		strconv.FormatInt(r.PromptTokens, 10),
		strconv.FormatInt(r.CompletionTokens, 10),
		strconv.FormatInt(r.TotalTokens, 10),
		dollars(r.CostNanos),
	}
}

// reportCells are a report row's cells: cells and the cache's.
func reportCells(r store.ReportRow) []string {
	return append(cells(r), strconv.FormatInt(r.CacheHits, 10), dollars(r.SavedNanos))
}

func writeTable(w io.Writer, rows []store.ReportRow, groupBy string) error {
	var total store.ReportRow
	lines := make([][]string, 0, len(rows)+1)
	for _, r := range rows {
		lines = append(lines, append([]string{groupLabel(r.Group)}, reportCells(r)...))
		total.Requests += r.Requests
		total.PromptTokens += r.PromptTokens
		total.CompletionTokens += r.CompletionTokens
		total.TotalTokens += r.TotalTokens
		total.CostNanos += r.CostNanos
		total.CacheHits += r.CacheHits
		total.SavedNanos += r.SavedNanos
	}
	header := append([]string{strings.ToUpper(groupBy)}, upper(append(reportColumns, cacheColumns...))...)
	return table(w, header, 1, lines, append([]string{"TOTAL"}, reportCells(total)...))
}

// groupLabel names the group of events without one in tables: denied
// requests without a client still belong in the totals.
func groupLabel(g string) string {
	if g == "" {
		return "(none)"
	}
	return g
}

// table writes aligned columns: the first text columns left-aligned, the
// others (numbers) right-aligned, and, when total is set, a rule and a
// total line.
func table(w io.Writer, header []string, text int, lines [][]string, total []string) error {
	all := append([][]string{header}, lines...)
	if total != nil {
		all = append(all, total)
	}
	widths := make([]int, len(header))
	for _, line := range all {
		for i, c := range line {
			widths[i] = max(widths[i], len(c))
		}
	}
	var b strings.Builder
	for n, line := range all {
		if total != nil && n == len(all)-1 {
			for i, wd := range widths {
				if i > 0 {
					b.WriteString("  ")
				}
				b.WriteString(strings.Repeat("-", wd))
			}
			b.WriteByte('\n')
		}
		for i, c := range line {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len(c))
			switch {
			case i >= text:
				b.WriteString(pad + c)
			case i == len(line)-1:
				b.WriteString(c) // no trailing blanks
			default:
				b.WriteString(c + pad)
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func upper(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToUpper(s)
	}
	return out
}

func writeJSON(w io.Writer, rows []store.ReportRow, groupBy string) error {
	// Written by hand to keep the field order stable and to print cost_usd
	// as an exact decimal rather than a float64's shortest form.
	key, err := json.Marshal(groupBy)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("[")
	for i, r := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		group, err := json.Marshal(r.Group)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "\n  {%s: %s, \"requests\": %d, \"prompt_tokens\": %d, \"completion_tokens\": %d, \"total_tokens\": %d, \"cost_usd\": %s, \"cache_hits\": %d, \"saved_usd\": %s}",
			key, group, r.Requests, r.PromptTokens, r.CompletionTokens, r.TotalTokens, dollars(r.CostNanos), r.CacheHits, dollars(r.SavedNanos))
	}
	if len(rows) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err = io.WriteString(w, b.String())
	return err
}

func writeCSV(w io.Writer, rows []store.ReportRow, groupBy string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(append([]string{groupBy}, append(reportColumns, cacheColumns...)...)); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(append([]string{r.Group}, reportCells(r)...)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ParseDate parses a report bound: a day such as "2026-11-27", taken as UTC
// midnight, or an RFC 3339 timestamp such as "2026-11-27T09:30:00+01:00".
func ParseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD (UTC midnight) or RFC 3339 such as 2026-11-27T09:30:00Z", s)
	}
	return t, nil
}

// WriteSeries writes a time series (see store.UsageSeries) grouped by
// groupBy in one of the formats of WriteReport: one line or object per
// bucket and group, the bucket's start first, as RFC 3339 in UTC. Buckets
// without events are absent; a chart fills them with zeros.
func WriteSeries(w io.Writer, points []store.SeriesPoint, groupBy, format string) error {
	switch groupBy {
	case store.GroupByDepartment, store.GroupByClient, store.GroupByModel:
	default:
		return fmt.Errorf("write series: unknown grouping %q: want %q, %q or %q",
			groupBy, store.GroupByDepartment, store.GroupByClient, store.GroupByModel)
	}
	start := func(p store.SeriesPoint) string { return p.Start.UTC().Format(time.RFC3339) }
	switch format {
	case FormatTable:
		lines := make([][]string, len(points))
		for i, p := range points {
			lines[i] = append([]string{start(p), groupLabel(p.Group)}, cells(p.ReportRow)...)
		}
		header := append([]string{"START", strings.ToUpper(groupBy)}, upper(reportColumns)...)
		return table(w, header, 2, lines, nil)
	case FormatJSON:
		key, _ := json.Marshal(groupBy)
		var b strings.Builder
		b.WriteString("[")
		for i, p := range points {
			if i > 0 {
				b.WriteString(",")
			}
			group, _ := json.Marshal(p.Group)
			fmt.Fprintf(&b, "\n  {\"start\": %q, %s: %s, \"requests\": %d, \"prompt_tokens\": %d, \"completion_tokens\": %d, \"total_tokens\": %d, \"cost_usd\": %s}",
				start(p), key, group, p.Requests, p.PromptTokens, p.CompletionTokens, p.TotalTokens, dollars(p.CostNanos))
		}
		if len(points) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("]\n")
		_, err := io.WriteString(w, b.String())
		return err
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(append([]string{"start", groupBy}, reportColumns...)); err != nil {
			return err
		}
		for _, p := range points {
			if err := cw.Write(append([]string{start(p), p.Group}, cells(p.ReportRow)...)); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("write series: unknown format %q: want %q, %q or %q", format, FormatTable, FormatJSON, FormatCSV)
}

// WriteDenials writes denied and failed requests per code (see
// store.DenialCounts) in one of the formats of WriteReport; the table ends
// with a TOTAL line.
func WriteDenials(w io.Writer, counts []store.DenialCount, format string) error {
	switch format {
	case FormatTable:
		lines := make([][]string, len(counts))
		var total int64
		for i, c := range counts {
			lines[i] = []string{c.Code, strconv.FormatInt(c.Requests, 10)}
			total += c.Requests
		}
		return table(w, []string{"CODE", "REQUESTS"}, 1, lines, []string{"TOTAL", strconv.FormatInt(total, 10)})
	case FormatJSON:
		type row struct {
			Code     string `json:"code"`
			Requests int64  `json:"requests"`
		}
		rows := make([]row, len(counts))
		for i, c := range counts {
			rows[i] = row{c.Code, c.Requests}
		}
		b, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write([]string{"code", "requests"}); err != nil {
			return err
		}
		for _, c := range counts {
			if err := cw.Write([]string{c.Code, strconv.FormatInt(c.Requests, 10)}); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("write denials: unknown format %q: want %q, %q or %q", format, FormatTable, FormatJSON, FormatCSV)
}
