package policy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// ErrDecisionNotFound is FindDecision's error for an id the log does not
// hold (sampled out, not yet written, or from another replica's log).
var ErrDecisionNotFound = errors.New("policy: decision not in the decision log")

// LoggedDecision is one line of the decision log, as FindDecision reads it.
type LoggedDecision struct {
	Time       time.Time      `json:"time"`
	DecisionID string         `json:"decision_id"`
	RequestID  string         `json:"request_id,omitempty"`
	Revision   string         `json:"revision"`
	DurationUS int64          `json:"duration_us"`
	Input      map[string]any `json:"input"`
	Result     *Decision      `json:"result,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// FindDecision reads the decision log file at path for the line of the
// decision id; the last one wins should the id appear twice. Lines are
// matched on their text before they are decoded, so that a large log costs
// a scan, not a decoding of every line.
func FindDecision(path, id string) (LoggedDecision, error) {
	f, err := os.Open(path)
	if err != nil {
		return LoggedDecision{}, fmt.Errorf("policy: decision log: %w", err)
	}
	defer f.Close()
	needle, _ := json.Marshal(id)
	needle = append([]byte(`"decision_id":`), needle...)
	var found []byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), needle) {
			found = bytes.Clone(sc.Bytes())
		}
	}
	if err := sc.Err(); err != nil {
		return LoggedDecision{}, fmt.Errorf("policy: decision log: %w", err)
	}
	if found == nil {
		return LoggedDecision{}, fmt.Errorf("%w: %s", ErrDecisionNotFound, id)
	}
	dec := json.NewDecoder(bytes.NewReader(found))
	dec.UseNumber()
	var d LoggedDecision
	if err := dec.Decode(&d); err != nil {
		return LoggedDecision{}, fmt.Errorf("policy: decision log line of %s: %w", id, err)
	}
	return d, nil
}

// Replay evaluates the enforced set in force for an input document as the
// decision log wrote it, and explains the decision as Explain does: "would
// the policy in force decide that logged request the same way?".
func (s *Set) Replay(ctx context.Context, input map[string]any) (Explanation, error) {
	e := s.enforced.engine.Load()
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return Explanation{}, fmt.Errorf("policy: replay: input: %w", err)
	}
	x := Explanation{Revision: e.revision, Input: input, Rules: []RuleHit{}}
	start := time.Now()
	_, _ = e.decide(ctx, value) // timed only
	x.DurationUS = time.Since(start).Microseconds()
	tracer := topdown.NewBufferTracer()
	x.Decision, err = e.decide(ctx, value, rego.EvalQueryTracer(tracer))
	x.Rules = ruleHits(*tracer)
	return x, err
}
