package redact

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestVaultRedact(t *testing.T) {
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
		{Type: "EMAIL", Text: 2, Start: 3, End: 99}, // out of range: ignored
	}
	tests := []struct {
		name  string
		types []string
		want  []string
		held  int
	}{
		{"same value, same placeholder", []string{"EMAIL"}, []string{
			"mail [EMAIL_1] or [EMAIL_2], again [EMAIL_1]",
			"call 555-0100", // PHONE is not redacted by this decision
			"nothing here",
		}, 2},
		{"two types", []string{"EMAIL", "PHONE"}, []string{
			"mail [EMAIL_1] or [EMAIL_2], again [EMAIL_1]",
			"call [PHONE_1]",
			"nothing here",
		}, 3},
		{"nothing of these types", []string{"US_SSN"}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Vault
			got := v.Redact(texts, found, tt.types)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Redact =\n%q\nwant\n%q", got, tt.want)
			}
			if v.Len() != tt.held {
				t.Fatalf("vault holds %d values, want %d", v.Len(), tt.held)
			}
			if texts[0] != "mail ann@example.com or bob@example.com, again ann@example.com" {
				t.Fatal("Redact modified its input")
			}
			if got != nil {
				for i := range texts {
					if r := v.Restore(got[i]); r != texts[i] {
						t.Fatalf("Restore(%q) = %q, want the original %q", got[i], r, texts[i])
					}
				}
			}
		})
	}
}

func TestVaultRedactSpans(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		found []Finding
		want  string
	}{
		{"overlapping spans of two plugins are merged",
			"key AKIA1234 and more",
			[]Finding{{Type: "EMAIL", Start: 4, End: 8}, {Type: "AWS_ACCESS_KEY", Start: 6, End: 12}},
			"key [EMAIL_1] and more"},
		{"the longer span at one start names the value",
			"id 123-45-6789.",
			[]Finding{{Type: "PHONE", Start: 3, End: 10}, {Type: "US_SSN", Start: 3, End: 14}},
			"id [US_SSN_1]."},
		{"a span cutting a character is widened to it",
			"né@x.fr é",
			[]Finding{{Type: "EMAIL", Start: 2, End: 8}}, // starts inside é
			"n[EMAIL_1] é"},
		{"adjacent spans stay apart",
			"ab",
			[]Finding{{Type: "EMAIL", Start: 0, End: 1}, {Type: "EMAIL", Start: 1, End: 2}},
			"[EMAIL_1][EMAIL_2]"},
		{"a type outside A-Z0-9_ cannot put a bracket in a placeholder",
			"x secret y",
			[]Finding{{Type: "a[b]", Start: 2, End: 8}},
			"x [_____1] y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var types []string
			for _, f := range tt.found {
				types = append(types, f.Type)
			}
			var v Vault
			got := v.Redact([]string{tt.text}, tt.found, types)
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("Redact = %q, want %q", got, tt.want)
			}
			if r := v.Restore(got[0]); r != tt.text {
				t.Fatalf("Restore = %q, want %q", r, tt.text)
			}
		})
	}
}

// TestVaultPrintsNoValue formats a vault every way a log line might.
func TestVaultPrintsNoValue(t *testing.T) {
	var v Vault
	v.Redact([]string{"mail ann@example.com"}, []Finding{{Type: "EMAIL", Start: 5, End: 20}}, []string{"EMAIL"})
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "vault", &v)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "vault", &v)
	outs := []string{
		fmt.Sprint(&v), fmt.Sprintf("%v %+v %#v %s %q %x", &v, &v, &v, &v, &v, &v),
		fmt.Sprintf("%+v", struct{ V *Vault }{&v}), v.String(), logs.String(),
	}
	for _, out := range outs {
		if strings.Contains(out, "ann@") || strings.Contains(out, "example") {
			t.Fatalf("a formatted vault shows its value: %s", out)
		}
	}
	if !strings.Contains(outs[0], "1 placeholders") {
		t.Fatalf("String = %q, want the count", outs[0])
	}
	v.Reset()
	if v.Len() != 0 || v.Restore("[EMAIL_1]") != "[EMAIL_1]" {
		t.Fatal("Reset kept a value")
	}
}
