package proxy

import (
	"slices"
	"testing"
)

func TestRedact(t *testing.T) {
	texts := []string{
		"mail ann@example.com or bob@example.com, again ann@example.com",
		"call 555-0100",
		"nothing here",
	}
	found := []Finding{
		{Type: "EMAIL", Text: 0, Start: 5, End: 20},
		{Type: "EMAIL", Text: 0, Start: 24, End: 39},
		{Type: "EMAIL", Text: 0, Start: 47, End: 62},
		{Type: "PHONE", Text: 1, Start: 5, End: 13},
		{Type: "EMAIL", Text: 0, Start: 6, End: 10}, // overlaps the first: skipped
		{Type: "EMAIL", Text: 9, Start: 0, End: 1},  // out of range: ignored
	}
	got := redact(texts, found, []string{"EMAIL"})
	want := []string{
		"mail [EMAIL_1] or [EMAIL_2], again [EMAIL_1]",
		"call 555-0100", // PHONE is not redacted by this decision
		"nothing here",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("redact =\n%q\nwant\n%q", got, want)
	}
	if texts[0] == got[0] {
		t.Fatal("redact must not modify its input")
	}
	if redact(texts, found, []string{"US_SSN"}) != nil {
		t.Fatal("nothing to redact must return nil")
	}
}
