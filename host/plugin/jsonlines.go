package plugin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ScanJSONLines scans a stream of JSON lines, one {"id": <any JSON>, "text":
// "..."} per line, and writes one line per input: {"id": <same>, "found":
// [{"type", "value", "start", "end"}]} with byte offsets into text and value =
// text[start:end]. A line that cannot be parsed or scanned yields
// {"id": <same or null>, "error": "..."} and the loop goes on; blank lines are
// skipped. It returns on the first read or write error, or when ctx is done.
// It backs the `sluice scan` command, whose output is for the operator running
// it, which is why it prints matched values.
func ScanJSONLines(ctx context.Context, p *Plugin, in io.Reader, out io.Writer) error {
	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for lineNo := 1; ; lineNo++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, readErr := r.ReadBytes('\n')
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return fmt.Errorf("scan json lines: read line %d: %w", lineNo, readErr)
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if err := enc.Encode(scanLine(ctx, p, line, lineNo)); err != nil {
				return fmt.Errorf("scan json lines: write result of line %d: %w", lineNo, err)
			}
		}
		if readErr != nil { // io.EOF
			break
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("scan json lines: write: %w", err)
	}
	return nil
}

type lineResult struct {
	ID    json.RawMessage `json:"id"`
	Found *[]lineFinding  `json:"found,omitempty"` // a pointer so that an empty list is still written
	Error string          `json:"error,omitempty"`
}

type lineFinding struct {
	Type  string  `json:"type"`
	Value string  `json:"value"`
	Start int     `json:"start"`
	End   int     `json:"end"`
	Score float64 `json:"score"`
}

var jsonNull = json.RawMessage("null")

func scanLine(ctx context.Context, p *Plugin, line []byte, lineNo int) lineResult {
	var req struct {
		ID   json.RawMessage `json:"id"`
		Text *string         `json:"text"`
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return lineResult{ID: jsonNull, Error: fmt.Sprintf("line %d: not a JSON object with id and text: %v", lineNo, err)}
	}
	if len(req.ID) == 0 {
		req.ID = jsonNull
	}
	if req.Text == nil {
		return lineResult{ID: req.ID, Error: fmt.Sprintf(`line %d: missing "text"`, lineNo)}
	}
	findings, err := p.Scan(ctx, []string{*req.Text})
	if err != nil {
		return lineResult{ID: req.ID, Error: err.Error()}
	}
	found := make([]lineFinding, len(findings))
	for i, f := range findings {
		found[i] = lineFinding{Type: f.Type, Value: (*req.Text)[f.Start:f.End], Start: f.Start, End: f.End, Score: f.Score}
	}
	return lineResult{ID: req.ID, Found: &found}
}
