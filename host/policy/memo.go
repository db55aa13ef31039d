package policy

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/open-policy-agent/opa/v1/ast"
)

// A decision depends on the engine's rules, its data and the parts of the
// input its rules read, nothing else: capabilities refuse the builtins
// that read the clock, the network or randomness. Most requests repeat
// those parts (one client, one model, no findings), so a Set keeps the
// decisions it made, keyed by exactly those parts, and answers a repeat
// without evaluating. The rules here are what keep that exact:
//
//   - The parts read are taken from the compiled rules' references to
//     input: each reference counts up to its first part that is not a
//     constant string (input.client.labels[k] reads all the labels). A rule
//     that reads input whole, or under a computed key at the top, a with
//     keyword, or a builtin marked non-deterministic, turns memoising off
//     for the engine. So does a rule that reads the usage counters or the
//     time to the second, which differ on every request: there a cache
//     would only cost.
//   - The key holds the engine's identity, its data generation, and the
//     value at each part read, with its type and length; the entry holds
//     the whole key, compared on every hit, so that a hash collision is a
//     miss, never another input's decision.
//   - Only decisions are kept: an error of any kind (a timeout, a builtin
//     error, an undefined or malformed decision, policy_error) is never.
//   - A decision is kept only if no data write began or ended while it was
//     evaluated (the generation is odd while a write is under way).

// DefaultDecisionCache is how many decisions a Set keeps unless
// SetConfig.DecisionCache says otherwise.
const DefaultDecisionCache = 10_000

// inputReads returns the paths under input that the rules of modules may
// read, each a list of keys, sorted, with none the prefix of another; ok is
// false when they cannot be known, or when a rule's result may depend on
// more than its input and data.
func inputReads(modules map[string]*ast.Module) (paths [][]string, ok bool) {
	ok = true
	seen := map[string][]string{}
	var visit func(x any) bool
	vis := func(x any) { ast.NewGenericVisitor(visit).Walk(x) }
	visit = func(x any) bool {
		if !ok {
			return true
		}
		switch x := x.(type) {
		case *ast.With:
			ok = false
			return true
		case *ast.Expr:
			if x.IsCall() && nondeterministic(x.Operator()) {
				ok = false
				return true
			}
		case ast.Call:
			if len(x) > 0 {
				if r, isRef := x[0].Value.(ast.Ref); isRef && nondeterministic(r) {
					ok = false
					return true
				}
			}
		case ast.Ref:
			if !x.HasPrefix(ast.InputRootRef) {
				return false
			}
			var path []string
			i := 1
			for ; i < len(x); i++ {
				s, isString := x[i].Value.(ast.String)
				if !isString {
					break
				}
				path = append(path, string(s))
			}
			if len(path) == 0 {
				// input whole, or input[k]: everything may be read.
				ok = false
				return true
			}
			seen[strings.Join(path, "\x00")] = path
			// A computed key may read input too.
			for _, t := range x[i:] {
				vis(t)
			}
			return true
		case ast.Var:
			if x.Equal(ast.InputRootDocument.Value) {
				ok = false
				return true
			}
		}
		return false
	}
	for _, m := range modules {
		for _, r := range m.Rules {
			vis(r)
		}
	}
	if !ok {
		return nil, false
	}
	for _, p := range seen {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b []string) int { return slices.Compare(a, b) })
	// A path under another is read with it.
	out := paths[:0]
	for _, p := range paths {
		if len(out) > 0 && hasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out, true
}

// changesEveryRequest holds for a path whose value differs from one
// request to the next (the usage counters grow with every request, the
// time's second and its text every second): a key holding it would miss
// every time, and keeping the decisions would only cost.
func changesEveryRequest(path []string) bool {
	switch {
	case path[0] == "usage":
		return true
	case path[0] == "time":
		return len(path) == 1 || path[1] == "unix" || path[1] == "rfc3339"
	}
	return false
}

func hasPrefix(p, prefix []string) bool {
	return len(p) >= len(prefix) && slices.Equal(p[:len(prefix)], prefix)
}

// nondeterministic reports whether op names a builtin whose result may
// differ between two calls with the same arguments: those OPA marks so, and
// those that read the evaluation's clock without saying so (a token or a
// certificate that expires). A name that is no builtin is a function of the
// policy, deterministic by construction.
func nondeterministic(op ast.Ref) bool {
	name := op.String()
	b, ok := ast.BuiltinMap[name]
	return ok && (b.Nondeterministic || slices.Contains(clockBuiltins, name))
}

// clockBuiltins read the time of the evaluation when their arguments do
// not give one.
var clockBuiltins = []string{
	"io.jwt.decode_verify",
	"crypto.x509.parse_and_verify_certificates",
	"crypto.x509.parse_and_verify_certificates_with_options",
}

// memoPaths are the parts of the input an engine's rules read, as terms
// for the lookup.
type memoPaths [][]*ast.Term

func newMemoPaths(paths [][]string) memoPaths {
	out := make(memoPaths, len(paths))
	for i, p := range paths {
		out[i] = make([]*ast.Term, len(p))
		for j, k := range p {
			out[i][j] = ast.StringTerm(k)
		}
	}
	return out
}

// engineIDs numbers engines, so that one cache serves every engine of a
// Set without an entry of one answering for another.
var engineIDs atomic.Uint64

// decisionMemo is a Set's cache of decisions. A nil *decisionMemo keeps
// nothing.
type decisionMemo struct {
	cache        *ristretto.Cache[string, *memoEntry]
	hits, misses atomic.Uint64
}

type memoEntry struct {
	key      string
	decision Decision
}

func newDecisionMemo(entries int) (*decisionMemo, error) {
	if entries <= 0 {
		return nil, nil
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, *memoEntry]{
		NumCounters:        int64(entries) * 10,
		MaxCost:            int64(entries), // entries, not bytes
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("policy: decision cache: %w", err)
	}
	return &decisionMemo{cache: c}, nil
}

func (m *decisionMemo) close() {
	if m != nil {
		m.cache.Close()
	}
}

// keyBufs recycles the buffers keys are built in.
var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// key builds the key of input for e into buf, and reports whether the
// decision may be memoised at all: e's rules allow it and no data write is
// under way. gen is the data generation the key holds.
func (e *Engine) memoKey(buf []byte, input ast.Value) (key []byte, gen uint64, ok bool) {
	if e.memo == nil {
		return nil, 0, false
	}
	gen = e.gen.Load()
	if gen&1 == 1 {
		return nil, 0, false
	}
	buf = binary.LittleEndian.AppendUint64(buf, e.id)
	buf = binary.LittleEndian.AppendUint64(buf, gen)
	obj, _ := input.(ast.Object)
	for _, path := range e.memo {
		buf = appendPart(buf, valueAt(obj, path))
	}
	return buf, gen, true
}

// valueAt returns the value at path under obj, nil when there is none.
func valueAt(obj ast.Object, path []*ast.Term) ast.Value {
	var v ast.Value = obj
	for _, k := range path {
		o, isObject := v.(ast.Object)
		if !isObject || o == nil {
			return nil
		}
		t := o.Get(k)
		if t == nil {
			return nil
		}
		v = t.Value
	}
	return v
}

// appendPart writes v with its kind and length, so that no two different
// sequences of values write the same bytes.
func appendPart(buf []byte, v ast.Value) []byte {
	var kind byte
	var text string
	switch v := v.(type) {
	case nil:
		return append(buf, 'u')
	case ast.String:
		kind, text = 's', string(v)
	case ast.Number:
		kind, text = 'n', string(v)
	case ast.Boolean:
		if v {
			return append(buf, 't')
		}
		return append(buf, 'f')
	case ast.Null:
		return append(buf, '0')
	default:
		// Composite values in OPA's own notation, in which strings are
		// quoted: the same text is the same value.
		kind, text = 'v', v.String()
	}
	buf = append(buf, kind)
	buf = binary.AppendUvarint(buf, uint64(len(text)))
	return append(buf, text...)
}

// get returns the decision kept for key, if any.
func (m *decisionMemo) get(key []byte) (Decision, bool) {
	if m == nil {
		return Decision{}, false
	}
	// The cache only hashes the key it is asked for: no copy is needed.
	e, ok := m.cache.Get(unsafe.String(unsafe.SliceData(key), len(key)))
	if !ok || e.key != string(key) {
		m.misses.Add(1)
		return Decision{}, false
	}
	m.hits.Add(1)
	return e.decision.clone(), true
}

// put keeps d for key, unless e's data changed since gen was read.
func (m *decisionMemo) put(e *Engine, key []byte, gen uint64, d Decision) {
	if m == nil || e.gen.Load() != gen {
		return
	}
	m.cache.Set(string(key), &memoEntry{key: string(key), decision: d.clone()}, 1)
}

// clone copies d's slices and map, so that no two requests share them.
func (d Decision) clone() Decision {
	d.Headers = cloneMap(d.Headers)
	d.Redact = slices.Clone(d.Redact)
	d.Plugins = slices.Clone(d.Plugins)
	d.ResponsePlugins = slices.Clone(d.ResponsePlugins)
	return d
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
