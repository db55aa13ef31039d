package scanview

import (
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/host/redact"
)

var ssn = regexp.MustCompile(`\d{3}-\d{2}-\d{4}`)

// scanSSN is a stand-in detector: it finds SSN-shaped values in each text.
func scanSSN(texts []string) []redact.Finding {
	var out []redact.Finding
	for i, t := range texts {
		for _, m := range ssn.FindAllStringIndex(t, -1) {
			out = append(out, redact.Finding{Text: i, Type: "US_SSN", Start: m[0], End: m[1], Score: 0.9})
		}
	}
	return out
}

func all(int) bool { return true }

// found is what each finding covers of the original texts.
func found(texts []string, fs []redact.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, texts[f.Text][f.Start:f.End])
	}
	return out
}

func TestFindingsMapToTheBytesSent(t *testing.T) {
	cases := []struct {
		name  string
		texts []string
		joins func(int) bool
		want  []string // the original bytes each finding covers, in text order
	}{
		{"zero-width inside", []string{"ssn 123\u200b-45-6789 ok"}, nil, []string{"123\u200b-45-6789"}},
		{"fullwidth digits", []string{"ssn １２３-４５-６７８９"}, nil, []string{"１２３-４５-６７８９"}},
		{"unicode dashes", []string{"ssn 123\u201345\u20146789"}, nil, []string{"123\u201345\u20146789"}},
		{"html entities", []string{"ssn 123&#45;45&#x2d;6789"}, nil, []string{"123&#45;45&#x2d;6789"}},
		{"split across two parts", []string{"my ssn is 123-45-", "6789 thanks"}, all, []string{"123-45-", "6789"}},
		{"split across three parts", []string{"ssn 123", "-45-", "6789"}, all, []string{"123", "-45-", "6789"}},
		{"not joined when not adjacent", []string{"my ssn is 123-45-", "6789"}, nil, nil},
		{"whole in one part is found once", []string{"a 123-45-6789", "b"}, all, []string{"123-45-6789"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := New(c.texts, c.joins)
			got := found(c.texts, v.Findings(scanSSN(v.Texts())))
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Fatalf("found %q, want %q (view %q)", got, c.want, v.Texts())
			}
		})
	}
}

// A seam holds at most SeamBytes of each side of a boundary, however long
// the texts.
func TestSeamsAreBounded(t *testing.T) {
	long := strings.Repeat("word ", 10_000)
	texts := []string{long + "ssn 123-45-", "6789 " + long, long}
	v := New(texts, all)
	view := v.Texts()
	if len(view) != 5 {
		t.Fatalf("%d view texts, want the three and a seam for each boundary", len(view))
	}
	for _, s := range view[3:] {
		if len(s) > 4*SeamBytes {
			t.Fatalf("seam of %d bytes", len(s))
		}
	}
	got := found(texts, v.Findings(scanSSN(view)))
	if strings.Join(got, "|") != "123-45-|6789" {
		t.Fatalf("found %q", got)
	}
	// Redaction through the mapped findings masks the pieces in place.
	var vault redact.Vault
	out := vault.Redact(texts, v.Findings(scanSSN(view)), []string{"US_SSN"})
	if strings.Contains(out[0]+out[1], "123-45-") || strings.Contains(out[1], "6789") {
		t.Fatalf("redacted %q / %q", out[0][len(out[0])-30:], out[1][:30])
	}
}

// Findings outside the view are dropped rather than trusted.
func TestFindingsOutsideTheViewAreDropped(t *testing.T) {
	v := New([]string{"abc"}, nil)
	bad := []redact.Finding{{Text: 1, Start: 0, End: 1}, {Text: 0, Start: 2, End: 9}, {Text: 0, Start: 2, End: 2}, {Text: -1, Start: 0, End: 1}}
	if got := v.Findings(bad); len(got) != 0 {
		t.Fatalf("kept %+v", got)
	}
}

// A value whole in one text is not found again through a seam, while a
// value split across the same boundary is.
func TestSeamsAddOnlySplitValues(t *testing.T) {
	texts := []string{"a 123-45-678", "9 and 123-45-6789"}
	v := New(texts, all)
	got := found(texts, v.Findings(scanSSN(v.Texts())))
	if strings.Join(got, "|") != "123-45-678|9|123-45-6789" {
		t.Fatalf("found %q", got)
	}
}
