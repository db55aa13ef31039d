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
		{Type: "EMAIL", Text: 0, Start: 6, End: 10}, // inside the first: nothing more to hide
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
	// Two plugins may report overlapping spans; their union is hidden.
	overlap := redact([]string{"key AKIA1234 and more"}, []Finding{
		{Type: "EMAIL", Text: 0, Start: 4, End: 8}, {Type: "AWS_ACCESS_KEY", Text: 0, Start: 6, End: 12},
	}, []string{"EMAIL", "AWS_ACCESS_KEY"})
	if len(overlap) != 1 || overlap[0] != "key [EMAIL_1] and more" {
		t.Fatalf("overlapping spans: %q", overlap)
	}
	if texts[0] == got[0] {
		t.Fatal("redact must not modify its input")
	}
	if redact(texts, found, []string{"US_SSN"}) != nil {
		t.Fatal("nothing to redact must return nil")
	}
}
