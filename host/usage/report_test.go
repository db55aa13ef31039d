package usage

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/store"
)

var sampleRows = []store.ReportRow{
	{Group: "", Requests: 3},
	{Group: "engineering", Requests: 120, PromptTokens: 50_000, CompletionTokens: 12_345, TotalTokens: 62_345, CostMicros: 1_234_567},
	{Group: "sales, EMEA", Requests: 7, PromptTokens: 900, CompletionTokens: 100, TotalTokens: 1000, CostMicros: 1},
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
	wantHeader := "client,requests,prompt_tokens,completion_tokens,total_tokens,cost_usd"
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
	if !strings.HasPrefix(lines[0], "DEPARTMENT") || !strings.HasSuffix(lines[0], "COST_USD") {
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
	return f[len(f)-5:]
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
	tests := map[int64]string{0: "0.000000", 1: "0.000001", 1_500_000: "1.500000", 123_456_789: "123.456789", -250: "-0.000250"}
	for micros, want := range tests {
		if got := dollars(micros); got != want {
			t.Errorf("dollars(%d) = %s, want %s", micros, got, want)
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
