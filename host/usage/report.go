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

// WriteReport writes rows grouped by groupBy (store.GroupByDepartment,
// GroupByClient or GroupByModel) in one of three formats:
//   - "table": aligned text for people, ending with a TOTAL line;
//   - "json": an array of objects whose group field is named after groupBy,
//     with snake_case fields and cost_usd as an exact decimal;
//   - "csv": a header row, then one row per group, with no total row so
//     that spreadsheets can sum the columns themselves.
//
// Costs are printed in dollars with six decimals, the precision they are
// stored with, so nothing is rounded away.
func WriteReport(w io.Writer, rows []store.ReportRow, groupBy, format string) error {
	switch groupBy {
	case store.GroupByDepartment, store.GroupByClient, store.GroupByModel:
	default:
		return fmt.Errorf("write report: unknown grouping %q: want %q, %q or %q",
			groupBy, store.GroupByDepartment, store.GroupByClient, store.GroupByModel)
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

// dollars formats millionths of a dollar as an exact decimal, e.g. 1500 as
// "0.001500", without going through float64.
func dollars(micros int64) string {
	sign := ""
	u := uint64(micros)
	if micros < 0 {
		sign = "-"
		u = -u
	}
	return fmt.Sprintf("%s%d.%06d", sign, u/1_000_000, u%1_000_000)
}

func cells(r store.ReportRow) []string {
	return []string{
		strconv.FormatInt(r.Requests, 10),
		strconv.FormatInt(r.PromptTokens, 10),
		strconv.FormatInt(r.CompletionTokens, 10),
		strconv.FormatInt(r.TotalTokens, 10),
		dollars(r.CostMicros),
	}
}

func writeTable(w io.Writer, rows []store.ReportRow, groupBy string) error {
	var total store.ReportRow
	lines := make([][]string, 0, len(rows)+2)
	header := append([]string{strings.ToUpper(groupBy)}, upper(reportColumns)...)
	lines = append(lines, header)
	for _, r := range rows {
		group := r.Group
		if group == "" {
			// Denied requests without a client still belong in the totals.
			group = "(none)"
		}
		lines = append(lines, append([]string{group}, cells(r)...))
		total.Requests += r.Requests
		total.PromptTokens += r.PromptTokens
		total.CompletionTokens += r.CompletionTokens
		total.TotalTokens += r.TotalTokens
		total.CostMicros += r.CostMicros
	}
	lines = append(lines, append([]string{"TOTAL"}, cells(total)...))

	widths := make([]int, len(header))
	for _, line := range lines {
		for i, c := range line {
			widths[i] = max(widths[i], len(c))
		}
	}
	var b strings.Builder
	for n, line := range lines {
		if n == len(lines)-1 {
			for i, wd := range widths {
				if i > 0 {
					b.WriteString("  ")
				}
				b.WriteString(strings.Repeat("-", wd))
			}
			b.WriteByte('\n')
		}
		for i, c := range line {
			if i == 0 {
				// The group is text: left-aligned. Numbers align right.
				b.WriteString(c + strings.Repeat(" ", widths[i]-len(c)))
				continue
			}
			b.WriteString("  " + strings.Repeat(" ", widths[i]-len(c)) + c)
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
		fmt.Fprintf(&b, "\n  {%s: %s, \"requests\": %d, \"prompt_tokens\": %d, \"completion_tokens\": %d, \"total_tokens\": %d, \"cost_usd\": %s}",
			key, group, r.Requests, r.PromptTokens, r.CompletionTokens, r.TotalTokens, dollars(r.CostMicros))
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
	if err := cw.Write(append([]string{groupBy}, reportColumns...)); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(append([]string{r.Group}, cells(r)...)); err != nil {
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
