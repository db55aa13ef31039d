package pii

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// corpusPath is the labelled corpus: one JSON object per line with the text
// and every span the scanner should report in it (see testdata/pii/README.md).
const corpusPath = "../../testdata/pii/corpus.jsonl"

type corpusRecord struct {
	ID    string  `json:"id"`
	Lang  string  `json:"lang"`
	Kind  string  `json:"kind"`
	Text  string  `json:"text"`
	Spans []match `json:"spans"`
	Note  string  `json:"note"`
}

func (m *match) UnmarshalJSON(b []byte) error {
	var v struct{ Type, Value string }
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = match{v.Type, v.Value}
	return nil
}

func readCorpus(t *testing.T) []corpusRecord {
	t.Helper()
	f, err := os.Open(corpusPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []corpusRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var r corpusRecord
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s:%d: %v", corpusPath, line, err)
		}
		// A label the text does not hold (as often as it is listed) would
		// count as a miss the scanner can never fix.
		for _, s := range r.Spans {
			want := 0
			for _, o := range r.Spans {
				if o.value == s.value {
					want++
				}
			}
			if !slices.Contains(Types, s.typ) || strings.Count(r.Text, s.value) < want {
				t.Fatalf("%s:%d (%s): label %s %q not in the text or of an unknown type", corpusPath, line, r.ID, s.typ, s.value)
			}
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// tally counts true positives, false positives and false negatives of one type.
type tally struct{ tp, fp, fn int }

func (c tally) precision() float64 { return ratio(c.tp, c.tp+c.fp) }
func (c tally) recall() float64    { return ratio(c.tp, c.tp+c.fn) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// strictTypes must be found exactly: their formats carry a checksum, a range
// rule or a fixed prefix, so anything short of every one is a bug.
var strictTypes = []string{CreditCard, IBAN, USSSN, AWSAccessKey, GitHubToken, SlackToken,
	StripeKey, GoogleAPIKey, OpenAIKey, PrivateKey, JWT}

// TestCorpus measures the scanner on the labelled corpus. A finding is a true
// positive when its type and the exact text it covers match a label; each
// label is matched at most once. It prints precision and recall per type (run
// with -v) and fails below the aims: 0.97 overall, 1.0 for strictTypes.
func TestCorpus(t *testing.T) {
	recs := readCorpus(t)
	s, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]*tally{}
	for _, typ := range Types {
		counts[typ] = &tally{}
	}
	var misses []string
	for _, r := range recs {
		got := scanAll(t, s, r.Text)
		want := slices.Clone(r.Spans)
		for _, g := range got {
			if k := slices.Index(want, g); k >= 0 {
				counts[g.typ].tp++
				want = slices.Delete(want, k, k+1)
				continue
			}
			counts[g.typ].fp++
			misses = append(misses, fmt.Sprintf("%s: false positive %s %q", r.ID, g.typ, g.value))
		}
		for _, w := range want {
			counts[w.typ].fn++
			misses = append(misses, fmt.Sprintf("%s: missed %s %q", r.ID, w.typ, w.value))
		}
	}

	var all tally
	var table strings.Builder
	fmt.Fprintf(&table, "%d texts\n| type | labels | found | TP | FP | FN | precision | recall |\n|---|---:|---:|---:|---:|---:|---:|---:|\n", len(recs))
	for _, typ := range Types {
		c := counts[typ]
		all.tp, all.fp, all.fn = all.tp+c.tp, all.fp+c.fp, all.fn+c.fn
		fmt.Fprintf(&table, "| `%s` | %d | %d | %d | %d | %d | %.3f | %.3f |\n",
			typ, c.tp+c.fn, c.tp+c.fp, c.tp, c.fp, c.fn, c.precision(), c.recall())
	}
	fmt.Fprintf(&table, "| **all** | %d | %d | %d | %d | %d | **%.3f** | **%.3f** |",
		all.tp+all.fn, all.tp+all.fp, all.tp, all.fp, all.fn, all.precision(), all.recall())
	t.Log("\n" + table.String())
	for _, m := range misses {
		t.Log(m)
	}

	for _, typ := range Types {
		if counts[typ].tp+counts[typ].fn < 3 {
			t.Errorf("%s: only %d labelled spans in the corpus, want at least 3", typ, counts[typ].tp+counts[typ].fn)
		}
	}
	const aim = 0.97
	if p, r := all.precision(), all.recall(); p < aim || r < aim {
		t.Errorf("overall precision %.3f, recall %.3f: want both >= %.2f", p, r, aim)
	}
	for _, typ := range strictTypes {
		if c := counts[typ]; c.fp > 0 || c.fn > 0 {
			t.Errorf("%s: precision %.3f, recall %.3f: want 1.0 for a checksummed or prefixed type", typ, c.precision(), c.recall())
		}
	}
}
