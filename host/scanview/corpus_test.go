package scanview

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/redact"
	"github.com/sluicehq/sluice/plugins/pii"
)

// obfuscations rewrite a labelled value the way an attacker writes it so
// that a model still reads it: each must be found through the view.
var obfuscations = []struct {
	name string
	fn   func(typ, v string) string
}{
	{"zero-width space", func(_, v string) string { return insertAt(v, len(v)/2, "\u200b") }},
	{"soft hyphen", func(_, v string) string { return insertAt(v, len(v)/3, "\u00ad") }},
	{"bidi control", func(_, v string) string { return insertAt(v, len(v)/2, "\u202e") }},
	{"fullwidth digits", func(_, v string) string { return mapRunes(v, fullwidthDigit) }},
	{"devanagari digits", func(_, v string) string { return mapRunes(v, devanagariDigit) }},
	{"unicode dashes", func(_, v string) string { return strings.ReplaceAll(v, "-", "\u2013") }},
	{"fullwidth at sign", func(_, v string) string { return strings.ReplaceAll(v, "@", "＠") }},
	{"percent-escaped at sign", func(_, v string) string { return strings.ReplaceAll(v, "@", "%40") }},
	{"html entities", func(_, v string) string {
		return strings.NewReplacer("@", "&#64;", "-", "&#45;", ".", "&period;").Replace(v)
	}},
	{"cyrillic look-alikes", func(_, v string) string {
		return strings.NewReplacer("A", "\u0410", "o", "\u043e", "e", "\u0435", "p", "\u0440").Replace(v)
	}},
	{"invalid utf-8", func(_, v string) string { return insertAt(v, len(v)/2, "\xff") }},
}

func insertAt(v string, i int, s string) string {
	for i > 0 && i < len(v) && (v[i]&0xC0) == 0x80 {
		i--
	}
	return v[:i] + s + v[i:]
}

func mapRunes(v string, f func(rune) rune) string { return strings.Map(f, v) }

func fullwidthDigit(r rune) rune {
	if r >= '0' && r <= '9' {
		return '０' + r - '0'
	}
	return r
}

func devanagariDigit(r rune) rune {
	if r >= '0' && r <= '9' {
		return '०' + r - '0'
	}
	return r
}

// strictTypes are the types with a checksum, a range rule or a fixed prefix:
// recall 1.0 on them, obfuscated or not.
var strictTypes = []string{pii.CreditCard, pii.IBAN, pii.USSSN, pii.AWSAccessKey, pii.GitHubToken, pii.SlackToken,
	pii.StripeKey, pii.GoogleAPIKey, pii.OpenAIKey, pii.PrivateKey, pii.JWT}

type label struct{ typ, value string }

// TestObfuscatedCorpus runs the labelled PII corpus through each
// obfuscation, the view and the PII scanner (its Go package, the code the
// plugin runs), and measures what the findings, mapped back, cover of the
// text as sent: precision and recall at least 0.97 overall, and recall 1.0 on
// the checksummed and secret types.
func TestObfuscatedCorpus(t *testing.T) {
	recs := readCorpus(t)
	scanner, err := pii.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tally := map[string]*[3]int{} // type → tp, fp, fn
	count := func(typ string, k int) {
		if tally[typ] == nil {
			tally[typ] = &[3]int{}
		}
		tally[typ][k]++
	}
	var misses []string
	for _, o := range obfuscations {
		for _, r := range recs {
			text := r.Text
			var want []label
			for _, s := range r.Spans {
				ob := o.fn(s.Type, s.Value)
				text = strings.Replace(text, s.Value, ob, 1)
				want = append(want, label{s.Type, ob})
			}
			v := New([]string{text}, nil)
			var found []redact.Finding
			for i, vt := range v.Texts() {
				for _, f := range scanner.Scan(nil, []byte(vt)) {
					found = append(found, redact.Finding{Type: f.Type, Text: i, Start: f.Start, End: f.End, Score: f.Score})
				}
			}
			var got []label
			for _, f := range v.Findings(found) {
				got = append(got, label{f.Type, text[f.Start:f.End]})
			}
			for _, g := range got {
				if i := slices.IndexFunc(want, func(w label) bool { return w.typ == g.typ && covers(g.value, w.value) }); i >= 0 {
					count(g.typ, 0)
					want = slices.Delete(want, i, i+1)
				} else {
					count(g.typ, 1)
					misses = append(misses, fmt.Sprintf("%s %s: extra %s %q", o.name, r.ID, g.typ, g.value))
				}
			}
			for _, w := range want {
				count(w.typ, 2)
				misses = append(misses, fmt.Sprintf("%s %s: missed %s %q", o.name, r.ID, w.typ, w.value))
			}
		}
	}
	var all [3]int
	types := make([]string, 0, len(tally))
	for typ := range tally {
		types = append(types, typ)
	}
	slices.Sort(types)
	for _, typ := range types {
		c := tally[typ]
		for k := range all {
			all[k] += c[k]
		}
		p, rc := ratio(c[0], c[0]+c[1]), ratio(c[0], c[0]+c[2])
		t.Logf("%-15s tp %4d fp %3d fn %3d  precision %.3f recall %.3f", typ, c[0], c[1], c[2], p, rc)
		if slices.Contains(strictTypes, typ) && rc < 1 {
			t.Errorf("%s: recall %.3f, want 1.0", typ, rc)
		}
	}
	p, rc := ratio(all[0], all[0]+all[1]), ratio(all[0], all[0]+all[2])
	t.Logf("all             tp %4d fp %3d fn %3d  precision %.3f recall %.3f", all[0], all[1], all[2], p, rc)
	if p < 0.97 || rc < 0.97 {
		t.Errorf("precision %.3f, recall %.3f: want 0.97 at least", p, rc)
	}
	if t.Failed() {
		for _, m := range misses {
			t.Log(m)
		}
	}
}

// covers reports whether what was found is the labelled value, allowing for
// the invisible characters a finding's edges may include or leave out.
func covers(found, want string) bool {
	trim := func(s string) string {
		return strings.TrimFunc(s, func(r rune) bool { return r == '\u200b' || r == '\u00ad' || r == '\u202e' || r == '\ufffd' })
	}
	return found == want || trim(found) == trim(want) || strings.Trim(found, "\xff") == strings.Trim(want, "\xff")
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

type corpusRecord struct {
	ID    string `json:"id"`
	Text  string `json:"text"`
	Spans []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"spans"`
}

func readCorpus(t *testing.T) []corpusRecord {
	t.Helper()
	f, err := os.Open("../../testdata/pii/corpus.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []corpusRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r corpusRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}
