package usage

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/store"
)

var sampleRows = []store.ReportRow{
	{Group: "", Requests: 3},
	{Group: "engineering", Requests: 120, PromptTokens: 50_000, CompletionTokens: 12_345, TotalTokens: 62_345, CostNanos: 1_234_567_000},
	{Group: "sales, EMEA", Requests: 7, PromptTokens: 900, CompletionTokens: 100, TotalTokens: 1000, CostNanos: 1_000},
}

func TestWriteReportJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteReport(&buf, sampleRows, store.GroupByDepartment, FormatJSON); err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Department       *string     `json:"department"`
		Requests         int64       `json:"requests"`
		PromptTokens     int64       `json:"prompt_tokens"`
		CompletionTokens int64       `json:"completion_tokens"`
		TotalTokens      int64       `json:"total_tokens"`
		CostUSD          json.Number `json:"cost_usd"`
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, buf.String())
	}
	if len(got) != len(sampleRows) {
		t.Fatalf("got %d objects, want %d", len(got), len(sampleRows))
	}
	wantCost := []string{"0.000000", "1.234567", "0.000001"}
	for i, r := range sampleRows {
		g := got[i]
		if g.Department == nil || *g.Department != r.Group || g.Requests != r.Requests ||
			g.PromptTokens != r.PromptTokens || g.CompletionTokens != r.CompletionTokens || g.TotalTokens != r.TotalTokens {
			t.Errorf("object %d = %+v, want %+v", i, g, r)
		}
		if string(g.CostUSD) != wantCost[i] {
			t.Errorf("object %d cost_usd = %s, want %s", i, g.CostUSD, wantCost[i])
		}
	}
}

func TestWriteReportJSONEmptyIsArray(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteReport(&buf, nil, store.GroupByModel, FormatJSON); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(buf.String()); got != "[]" {
		t.Errorf("empty report = %q, want []", got)
	}
}

func TestWriteReportCSV(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteReport(&buf, sampleRows, store.GroupByClient, FormatCSV); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v", err)
	}
	wantHeader := "client,requests,prompt_tokens,completion_tokens,total_tokens,cost_usd,cache_hits,saved_usd"
	if got := strings.Join(records[0], ","); got != wantHeader {
		t.Errorf("header = %s, want %s", got, wantHeader)
	}
	if len(records) != len(sampleRows)+1 {
		t.Fatalf("got %d records, want header and %d rows", len(records), len(sampleRows))
	}
	for i, r := range sampleRows {
		rec := records[i+1]
		if rec[0] != r.Group || rec[1] != strconv.FormatInt(r.Requests, 10) || rec[4] != strconv.FormatInt(r.TotalTokens, 10) {
			t.Errorf("row %d = %v, want %+v", i, rec, r)
		}
	}
	if got := records[2][5]; got != "1.234567" {
		t.Errorf("cost_usd = %s, want 1.234567", got)
	}
}

func TestWriteReportTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteReport(&buf, sampleRows, store.GroupByDepartment, FormatTable); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "DEPARTMENT") || !strings.HasSuffix(lines[0], "SAVED_USD") {
		t.Errorf("header = %q", lines[0])
	}
	// Every line has the same width, so the numeric columns line up.
	for _, l := range lines[1:] {
		if len(l) != len(lines[0]) {
			t.Errorf("line %q is %d wide, header is %d:\n%s", l, len(l), len(lines[0]), out)
		}
	}
	if !strings.Contains(out, "(none)") {
		t.Errorf("the row without a department is not labelled:\n%s", out)
	}

	// The TOTAL line must add up the rows above it.
	var sums [5]int64
	var costSum float64
	for _, l := range lines[1 : len(lines)-2] {
		f := fields(l)
		for i := range 4 {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			sums[i] += n
		}
		c, _ := strconv.ParseFloat(f[4], 64)
		costSum += c
	}
	total := strings.Fields(lines[len(lines)-1])
	if total[0] != "TOTAL" {
		t.Fatalf("last line = %q, want a TOTAL line", lines[len(lines)-1])
	}
	for i := range 4 {
		if total[i+1] != strconv.FormatInt(sums[i], 10) {
			t.Errorf("TOTAL column %d = %s, want %d", i, total[i+1], sums[i])
		}
	}
	if total[5] != "1.234568" {
		t.Errorf("TOTAL cost = %s, want 1.234568 (sum %.6f)", total[5], costSum)
	}
}

// fields returns the five numeric cells at the end of a table line; the
// group before them may contain spaces.
func fields(line string) []string {
	f := strings.Fields(line)
	return f[len(f)-7 : len(f)-2] // before the cache's two columns
}

func TestWriteReportRejectsUnknownOptions(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteReport(&buf, sampleRows, store.GroupByClient, "xml"); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("unknown format: err = %v", err)
	}
	if err := WriteReport(&buf, sampleRows, "tier", FormatTable); err == nil || !strings.Contains(err.Error(), "tier") {
		t.Errorf("unknown grouping: err = %v", err)
	}
}

func TestDollars(t *testing.T) {
	tests := map[int64]string{0: "0.000000", 1_000: "0.000001", 1: "0.000000001", 320: "0.00000032",
		1_500_000_000: "1.500000", 123_456_789_000: "123.456789", 123_456_789_012: "123.456789012", -250_000: "-0.000250"}
	for nanos, want := range tests {
		if got := dollars(nanos); got != want {
			t.Errorf("dollars(%d) = %s, want %s", nanos, got, want)
		}
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2026-11-27", want: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{in: " 2026-11-27 ", want: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{in: "2026-11-27T09:30:00Z", want: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)},
		{in: "2026-11-27T09:30:00+01:00", want: time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)},
		{in: "2026-11-27T09:30:00.123456789Z", want: time.Date(2026, 11, 27, 9, 30, 0, 123456789, time.UTC)},
		{in: "27/11/2026", wantErr: true},
		{in: "2026-13-01", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDate(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Errorf("ParseDate(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("ParseDate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

var samplePoints = []store.SeriesPoint{
	{Start: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), ReportRow: store.ReportRow{Group: "eng", Requests: 2, PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, CostNanos: 1_500_000}},
	{Start: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), ReportRow: store.ReportRow{Group: "", Requests: 1}},
	{Start: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), ReportRow: store.ReportRow{Group: "eng", Requests: 1, TotalTokens: 7, CostNanos: 1_000}},
}

func TestWriteSeries(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		var buf bytes.Buffer
		if err := WriteSeries(&buf, samplePoints, store.GroupByDepartment, FormatJSON); err != nil {
			t.Fatal(err)
		}
		var got []struct {
			Start       time.Time   `json:"start"`
			Department  *string     `json:"department"`
			Requests    int64       `json:"requests"`
			TotalTokens int64       `json:"total_tokens"`
			CostUSD     json.Number `json:"cost_usd"`
		}
		dec := json.NewDecoder(&buf)
		dec.UseNumber()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, buf.String())
		}
		if len(got) != 3 || !got[2].Start.Equal(samplePoints[2].Start) || got[0].Department == nil || *got[0].Department != "eng" ||
			got[0].Requests != 2 || got[2].TotalTokens != 7 || got[0].CostUSD != "0.001500" {
			t.Errorf("series JSON = %+v", got)
		}
	})
	t.Run("csv", func(t *testing.T) {
		var buf bytes.Buffer
		if err := WriteSeries(&buf, samplePoints, store.GroupByModel, FormatCSV); err != nil {
			t.Fatal(err)
		}
		records, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(records[0], ","); got != "start,model,requests,prompt_tokens,completion_tokens,total_tokens,cost_usd" {
			t.Errorf("header = %s", got)
		}
		if len(records) != 4 || records[3][0] != "2026-11-28T00:00:00Z" || records[3][5] != "7" {
			t.Errorf("records = %v", records)
		}
	})
	t.Run("table", func(t *testing.T) {
		var buf bytes.Buffer
		if err := WriteSeries(&buf, samplePoints, store.GroupByDepartment, FormatTable); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "START") || !strings.Contains(lines[2], "(none)") {
			t.Errorf("table:\n%s", buf.String())
		}
		for _, l := range lines[1:] {
			if len(l) != len(lines[0]) {
				t.Errorf("line %q is not as wide as the header:\n%s", l, buf.String())
			}
		}
	})
	if err := WriteSeries(io.Discard, samplePoints, "tier", FormatJSON); err == nil {
		t.Errorf("unknown grouping accepted")
	}
}

func TestWriteDenials(t *testing.T) {
	counts := []store.DenialCount{{Code: "rate_limit_exceeded", Requests: 12}, {Code: "budget_exceeded", Requests: 3}}
	var buf bytes.Buffer
	if err := WriteDenials(&buf, counts, FormatTable); err != nil {
		t.Fatal(err)
	}
	want := "CODE                 REQUESTS\n" +
		"rate_limit_exceeded        12\n" +
		"budget_exceeded             3\n" +
		"-------------------  --------\n" +
		"TOTAL                      15\n"
	if buf.String() != want {
		t.Errorf("table =\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := WriteDenials(&buf, counts, FormatJSON); err != nil {
		t.Fatal(err)
	}
	var got []store.DenialCount
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil || len(got) != 2 || got[0] != counts[0] {
		t.Errorf("json = %s (%v)", buf.String(), err)
	}
	buf.Reset()
	if err := WriteDenials(&buf, nil, FormatCSV); err != nil || buf.String() != "code,requests\n" {
		t.Errorf("empty csv = %q, %v", buf.String(), err)
	}
	if err := WriteDenials(&buf, counts, "xml"); err == nil {
		t.Errorf("unknown format accepted")
	}
}
