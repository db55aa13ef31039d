package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// This file holds what keeps a policy bounded and failing closed: the
// builtins it may call, the time an evaluation may take, and the errors
// that deny a request.

// DefaultEvalTimeout is how long one evaluation may run unless
// WithEvalTimeout says otherwise. The default policy decides in tens of
// microseconds; the limit is there for the policy that loops over a
// million values or waits on something it should not.
const DefaultEvalTimeout = 5 * time.Millisecond

// testBudget is how many evaluation time limits one test_ rule may take,
// counted on the wall clock (OPA's test runner offers no other): 5 s for
// the default limit. A test may evaluate the decision many times (a table
// of cases, every), and on this project's 2-core machine at a load average
// of 13 the default policy's slowest test, 60 ms when idle, took over
// 500 ms. A policy that loops for a second per evaluation is refused when
// its tests evaluate it five times or more; whatever passes, the gateway
// still stops every evaluation at the limit.
const testBudget = 1000

// WithEvalTimeout sets how long one evaluation may run before it is
// stopped and its request denied with policy_error, e.g. 2*time.Millisecond.
// The default, and what 0 gives, is DefaultEvalTimeout. A reload also
// refuses a set any of whose test_ rules takes longer than testBudget
// times the limit (5 s for the default).
//
// Notes: OPA checks the limit between expressions and inside the builtins
// that loop (numbers.range and the like). The time between two readings of
// the clock counts for a fifth of the limit at most, so that a goroutine
// the scheduler paused is not refused for it; the other side of that coin
// is that five slow builtin calls, not one, stop an evaluation, each
// running to its end.
func WithEvalTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// WithAllowedBuiltins lets a policy call builtins that ForbiddenBuiltins
// refuses by default, by name ("time.now_ns") or by the pattern that
// forbids them ("net.*"), e.g. the configuration's policy.allow_builtins.
// Unknown names are an error of NewSet and Load; CheckAllowedBuiltins
// reports them ahead.
func WithAllowedBuiltins(names []string) Option {
	return func(o *options) { o.allow = slices.Clone(names) }
}

// Builtin groups of ForbiddenBuiltins, which say why each is refused.
const (
	reasonNetwork    = "it reaches the network"
	reasonRandom     = "its result is random"
	reasonWallClock  = "it reads the wall clock; use input.time"
	reasonRuntime    = "it reads the gateway's process, environment and configuration"
	allowBuiltinsKey = "policy.allow_builtins"
)

// forbidden lists the builtins refused by default, each a name or a
// prefix ending in ".*", with the reason. A decision must depend on its
// input and data only, and be bounded: a call over the network would put a
// third party's latency and failures on every request, and randomness or
// the clock would make decisions impossible to replay or test.
var forbidden = []struct{ pattern, reason string }{
	{"http.send", reasonNetwork},
	{"net.*", reasonNetwork},
	{"rand.*", reasonRandom},
	{"uuid.rfc4122", reasonRandom},
	{"time.now_ns", reasonWallClock},
	{"opa.runtime", reasonRuntime},
}

// ForbiddenBuiltins returns the patterns of the builtins a policy may not
// call unless allowed (WithAllowedBuiltins): a name, or a prefix ending in
// ".*".
func ForbiddenBuiltins() []string {
	out := make([]string, len(forbidden))
	for i, f := range forbidden {
		out[i] = f.pattern
	}
	return out
}

// forbiddenReason returns why name is refused by default, "" when it is not.
func forbiddenReason(name string) string {
	for _, f := range forbidden {
		if matchBuiltin(f.pattern, name) {
			return f.reason
		}
	}
	return ""
}

func matchBuiltin(pattern, name string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return pattern == name
}

// CheckAllowedBuiltins reports the first name of names that is neither a
// builtin refused by default nor the pattern that refuses some: allowing
// it would change nothing, and is most likely a typo.
func CheckAllowedBuiltins(names []string) error {
	for _, n := range names {
		if slices.ContainsFunc(forbidden, func(f struct{ pattern, reason string }) bool { return f.pattern == n }) {
			continue
		}
		if _, ok := ast.BuiltinMap[n]; ok && forbiddenReason(n) != "" {
			continue
		}
		return fmt.Errorf("%s: %q is not a builtin that policies are refused (they are %s)",
			allowBuiltinsKey, n, strings.Join(ForbiddenBuiltins(), ", "))
	}
	return nil
}

// Capabilities returns the capabilities a policy is compiled with, in OPA's
// own format (opa capabilities, opa check --capabilities): those of the
// embedded OPA version without the builtins refused by default, except
// those allow names (see WithAllowedBuiltins).
func Capabilities(allow []string) *ast.Capabilities { return capabilities(allow) }

func capabilities(allow []string) *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	kept := caps.Builtins[:0]
	for _, b := range caps.Builtins {
		if forbiddenReason(b.Name) != "" && !slices.ContainsFunc(allow, func(p string) bool { return matchBuiltin(p, b.Name) }) {
			continue
		}
		kept = append(kept, b)
	}
	caps.Builtins = kept
	return caps
}

// explainForbidden rewrites the compiler's "undefined function" errors for
// builtins that exist but are refused, so that the author learns why and
// what to do, at the same file and line.
func explainForbidden(errs ast.Errors, caps *ast.Capabilities) ast.Errors {
	out := make(ast.Errors, len(errs))
	for i, e := range errs {
		out[i] = e
		name, ok := strings.CutPrefix(e.Message, "undefined function ")
		if !ok {
			continue
		}
		reason := forbiddenReason(name)
		if reason == "" || slices.ContainsFunc(caps.Builtins, func(b *ast.Builtin) bool { return b.Name == name }) {
			continue
		}
		c := *e
		c.Message = fmt.Sprintf("%s is not allowed in policies: %s (%s may allow it)", name, reason, allowBuiltinsKey)
		out[i] = &c
	}
	return out
}

// deadlineStride is how many of OPA's cancellation checks pass between two
// readings of the clock. OPA checks before every expression; reading the
// clock each time would add a good share to a 20 µs evaluation, and 16
// expressions take microseconds.
const deadlineStride = 16

// deadlineGaps is how many long gaps between two readings of the clock an
// evaluation may have before it is stopped: see deadline.
const deadlineGaps = 5

// deadline is a topdown.Cancel that turns true once its evaluation has
// spent more than limit. It replaces the goroutine OPA would otherwise
// start per evaluation to watch a context's deadline, which costs more
// than a whole evaluation of a small policy. One evaluation, on one
// goroutine, uses it.
//
// Time is counted between readings of the clock, and a gap between two
// readings counts for at most limit/deadlineGaps: on a loaded machine the
// scheduler may pause a goroutine (or the kernel its thread) for tens of
// milliseconds mid-evaluation, and a wall-clock limit would then refuse
// requests whose policy took microseconds. A policy that is slow on its
// own is still stopped: by its steps, or after deadlineGaps long builtin
// calls.
type deadline struct {
	last  time.Time
	spent time.Duration
	limit time.Duration
	asks  uint32
	hit   bool
}

var _ topdown.Cancel = (*deadline)(nil)

func newDeadline(limit time.Duration) *deadline {
	return &deadline{last: time.Now(), limit: limit}
}

// Cancel stops the evaluation at its next check.
func (d *deadline) Cancel() { d.hit = true }

// Cancelled reports whether the evaluation must stop.
func (d *deadline) Cancelled() bool {
	if d.hit {
		return true
	}
	if d.asks++; d.asks%deadlineStride != 0 {
		return false
	}
	now := time.Now()
	d.spent += min(now.Sub(d.last), d.limit/deadlineGaps)
	d.last = now
	d.hit = d.spent > d.limit
	return d.hit
}

// ErrorKind says what kind of failure kept a policy from deciding.
type ErrorKind string

// The kinds of EvalError.
const (
	// KindBuiltin is a builtin that failed: a division by zero, a string
	// that is no number, a bad regular expression.
	KindBuiltin ErrorKind = "builtin_error"
	// KindConflict is a complete rule or function with two values.
	KindConflict ErrorKind = "conflict"
	// KindTimeout is an evaluation stopped at the engine's time limit.
	KindTimeout ErrorKind = "timeout"
	// KindCancelled is a request whose context ended first.
	KindCancelled ErrorKind = "cancelled"
	// KindUndefined is a decision rule with no value, or several.
	KindUndefined ErrorKind = "undefined"
	// KindMalformed is a decision that breaks the contract: a missing or
	// mistyped field, a denial whose status is not 4xx or 5xx.
	KindMalformed ErrorKind = "malformed"
	// KindPolicyError is a decision with code policy_error: the policy
	// saying it cannot decide, e.g. for a cap of 0.
	KindPolicyError ErrorKind = "policy_error"
	// KindEval is any other evaluation error.
	KindEval ErrorKind = "eval_error"
)

// codePolicyError is the code of a decision that could not be made.
const codePolicyError = "policy_error"

// EvalError is why an engine gave no decision to act on. Every one denies
// the request with policy_error.
type EvalError struct {
	Kind ErrorKind
	// At locates the rules to blame, as "file:line", when OPA or a second
	// look at the evaluation tells: the expression that failed, the deny
	// or cap rule that produced a bad value, else the decision branch that
	// answered. It may be empty.
	At  []string
	Err error
}

func (e *EvalError) Error() string {
	msg := fmt.Sprintf("policy: evaluate %s: %s: %v", Query, e.Kind, e.Err)
	if len(e.At) > 0 && !strings.Contains(msg, e.At[0]) {
		msg += " (at " + strings.Join(e.At, ", ") + ")"
	}
	return msg
}

func (e *EvalError) Unwrap() error { return e.Err }

// ErrorKindOf returns the kind of err if it is an EvalError, else KindEval.
func ErrorKindOf(err error) ErrorKind {
	if ee, ok := errors.AsType[*EvalError](err); ok {
		return ee.Kind
	}
	return KindEval
}

// ErrorAt returns the locations of err if it is an EvalError, joined with
// ", ", else "".
func ErrorAt(err error) string {
	if ee, ok := errors.AsType[*EvalError](err); ok {
		return strings.Join(ee.At, ", ")
	}
	return ""
}

// evalError classifies an error of rego's Eval.
func evalError(err error, limit time.Duration) *EvalError {
	if ee, ok := errors.AsType[*EvalError](err); ok {
		return ee
	}
	out := &EvalError{Kind: KindEval, Err: err}
	te, ok := errors.AsType[*topdown.Error](err)
	if !ok {
		return out
	}
	if te.Location != nil {
		out.At = []string{fmt.Sprintf("%s:%d", te.Location.File, te.Location.Row)}
	}
	switch te.Code {
	case topdown.BuiltinErr:
		out.Kind = KindBuiltin
	case topdown.ConflictErr:
		out.Kind = KindConflict
	case topdown.CancelErr:
		out.Kind = KindTimeout
		out.Err = fmt.Errorf("evaluation stopped after the time limit of %s", limit)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			out.Kind, out.Err = KindCancelled, err
		}
	}
	return out
}

// blame evaluates the decision again with OPA's tracer and locates what
// made it unusable: the deny and cap rules of package sluice.authz whose
// element breaks their contract, else the decision branch that answered.
// It runs only for a decision that is refused, where its cost does not
// matter.
func (e *Engine) blame(ctx context.Context, input ast.Value) []string {
	tracer := topdown.NewBufferTracer()
	_, _ = e.eval(ctx, input, rego.EvalQueryTracer(tracer))
	var culprits, branches []string
	for _, ev := range *tracer {
		r, ok := ev.Node.(*ast.Rule)
		if ev.Op != topdown.ExitOp || !ok || r.Location == nil || r.Module == nil ||
			r.Module.Package.Path.String() != queryPackage {
			continue
		}
		at := fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		switch r.Head.Ref().String() {
		case "deny":
			if r.Head.Key != nil && !validDenial(ev.Plug(r.Head.Key).Value) {
				culprits = appendNew(culprits, at)
			}
		case "cap":
			if r.Head.Key != nil && !validCap(ev.Plug(r.Head.Key).Value) {
				culprits = appendNew(culprits, at)
			}
		case queryRule:
			branches = appendNew(branches, at)
		}
	}
	if len(culprits) > 0 {
		return culprits
	}
	return branches
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// validDenial holds for a deny element the contract accepts: a string, or
// an object whose http_status, when given, is an integer from 400 to 599.
func validDenial(v ast.Value) bool {
	switch v := v.(type) {
	case ast.String:
		return true
	case ast.Object:
		s := v.Get(keyHTTPStatus)
		if s == nil {
			return true
		}
		n, ok := s.Value.(ast.Number)
		if !ok {
			return false
		}
		i, ok := n.Int()
		return ok && i >= 400 && i <= 599
	}
	return false
}

// limitNames are the limits a cap may lower.
var limitNames = []string{"rpm", "tpm", "daily_tokens", "monthly_tokens", "monthly_spend_usd", "max_tokens"}

// validCap holds for a cap on a known limit to a positive number.
func validCap(v ast.Value) bool {
	obj, ok := v.(ast.Object)
	if !ok {
		return false
	}
	limit := obj.Get(ast.InternedTerm("limit"))
	if limit == nil {
		return false
	}
	name, ok := limit.Value.(ast.String)
	if !ok || !slices.Contains(limitNames, string(name)) {
		return false
	}
	value := obj.Get(ast.InternedTerm("value"))
	if value == nil {
		return false
	}
	n, ok := value.Value.(ast.Number)
	if !ok {
		return false
	}
	f, ok := n.Float64()
	return ok && f > 0
}
