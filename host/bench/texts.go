package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/scanview"
)

// TextSettings say what MeasureTexts measures.
type TextSettings struct {
	// Rounds is how many times each figure is measured; figures are medians.
	Rounds int
	// Cases are the request bodies, by name.
	Cases []TextCase
	// Progress, if set, is called with a line per figure.
	Progress func(format string, args ...any)
}

// TextCase is one chat request body to measure.
type TextCase struct {
	Name string
	Body []byte
}

// TextReport is what the gateway does to a request's texts before any
// plugin runs, per stage, against decoding the same body with encoding/json.
type TextReport struct {
	Cases []TextFigure `json:"cases"`
}

// TextFigure is one body's stages, each the median of the rounds.
type TextFigure struct {
	Case  string `json:"case"`
	Bytes int    `json:"bytes"`
	Texts int    `json:"texts"`
	// Parse reads and validates the body and collects every text with its
	// location; View normalises the texts and adds the seams between them.
	Parse StageFigure `json:"parse"`
	View  StageFigure `json:"view"`
	// Baseline is json.Unmarshal of the body into an any: what any JSON
	// reading of the request costs, measured in the same rounds.
	Baseline StageFigure `json:"baseline"`
}

// StageFigure is one stage's time and allocations per request.
type StageFigure struct {
	PerOp       time.Duration `json:"per_op_ns"`
	AllocsPerOp int64         `json:"allocs_per_op"`
	BytesPerOp  int64         `json:"bytes_per_op"`
	// Ratio is PerOp over the baseline's.
	Ratio float64 `json:"ratio"`
}

// MeasureTexts measures the stages for each case.
func MeasureTexts(ctx context.Context, s TextSettings) (*TextReport, error) {
	if s.Rounds < 1 {
		s.Rounds = 1
	}
	r := &TextReport{}
	for _, c := range s.Cases {
		req, aerr := api.ParseChatRequest(c.Body)
		if aerr != nil {
			return nil, fmt.Errorf("%s: %s", c.Name, aerr.Message)
		}
		joins := func(i int) bool {
			return req.TextInfo[i].Loc == api.LocContent && req.TextInfo[i+1].Loc == api.LocContent
		}
		stages := []func(b *testing.B){
			func(b *testing.B) {
				for b.Loop() {
					api.ParseChatRequest(c.Body)
				}
			},
			func(b *testing.B) {
				for b.Loop() {
					scanview.New(req.Texts, joins)
				}
			},
			func(b *testing.B) {
				for b.Loop() {
					var v any
					json.Unmarshal(c.Body, &v)
				}
			},
		}
		runs := make([][]testing.BenchmarkResult, len(stages))
		for round := 0; round < s.Rounds; round++ {
			// The stages take turns within a round, so that a neighbour's
			// burst on a shared machine falls on all of them alike.
			for i, st := range stages {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				runs[i] = append(runs[i], testing.Benchmark(func(b *testing.B) { b.ReportAllocs(); st(b) }))
			}
		}
		figs := make([]StageFigure, len(stages))
		for i := range stages {
			figs[i] = medianStage(runs[i])
		}
		for i := range figs {
			figs[i].Ratio = float64(figs[i].PerOp) / float64(max(figs[2].PerOp, 1))
		}
		f := TextFigure{Case: c.Name, Bytes: len(c.Body), Texts: len(req.Texts), Parse: figs[0], View: figs[1], Baseline: figs[2]}
		if s.Progress != nil {
			s.Progress("texts %s: parse %s, view %s, json %s", c.Name, f.Parse.PerOp, f.View.PerOp, f.Baseline.PerOp)
		}
		r.Cases = append(r.Cases, f)
	}
	return r, nil
}

func medianStage(rs []testing.BenchmarkResult) StageFigure {
	per := make([]time.Duration, len(rs))
	for i, r := range rs {
		per[i] = time.Duration(r.NsPerOp())
	}
	slices.Sort(per)
	last := rs[len(rs)-1]
	return StageFigure{PerOp: per[len(per)/2], AllocsPerOp: last.AllocsPerOp(), BytesPerOp: last.AllocedBytesPerOp()}
}
