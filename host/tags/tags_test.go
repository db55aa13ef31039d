package tags

import (
	"errors"
	"strings"
	"testing"
)

// The attacker's tags: personal data, injection, floods. Each is refused
// with an error that does not repeat the value.
func TestParseRefusesWhatMustNotBeStored(t *testing.T) {
	bad := map[string]string{
		"an e-mail":          "owner=jane.doe@example.com",
		"a phone number":     "caller=555-0100-12345",
		"a card number":      "ref=4111111111111111",
		"an SSN":             "ssn=123456789",
		"an SSN with dashes": "ssn=123-45-6789",
		"a Sluice key":       "key=sk-sluice-CkcKmK3483g6gRJTLlU4UYn7RufDqWtQ",
		"an AWS key":         "key=AKIA6AFQKVXPJEGZC7D3",
		"a date of birth":    "dob=1990-01-31",
		"SQL":                "project=x';DROP TABLE usage_events;--",
		"a space":            "project=my project",
		"an upper-case name": "Project=x",
		"no value":           "project=",
		"no name":            "=x",
		"a repeated name":    "project=a,project=b",
		"too many":           strings.Repeat("a=b,", MaxTags) + "a=b",
		"a long value":       "project=" + strings.Repeat("x", MaxValue+1),
		"a control byte":     "project=a\x00b",
		"not a pair":         "project",
	}
	for name, header := range bad {
		got, err := Parse(header)
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Parse(%q) = %v, %v; want ErrInvalid", name, header, got, err)
			continue
		}
		if _, v, _ := strings.Cut(header, "="); len(v) > 3 && strings.Contains(err.Error(), v) {
			t.Errorf("%s: the error repeats the value: %v", name, err)
		}
	}
}

func TestParseMergeCanonical(t *testing.T) {
	got, err := Parse(" project=search , env=prod,cost_center=cc-42 ")
	allowed := Allowed{"project": {"search", "billing"}, "env": {Any}, "cost_center": {Any}}
	if err := allowed.Permit(got); err != nil {
		t.Fatal(err)
	}
	for _, refused := range []map[string]string{{"owner": "jane"}, {"project": "secret-plan"}} {
		if err := allowed.Permit(refused); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "secret-plan") {
			t.Errorf("Permit(%v) = %v", refused, err)
		}
	}
	if err := (Allowed{}).Permit(got); !errors.Is(err, ErrInvalid) {
		t.Errorf("a gateway that allows no tags took %v", got)
	}
	if err != nil {
		t.Fatal(err)
	}
	merged := Merge(got, map[string]string{"project": "billing"})
	if c := Canonical(merged); c != "cost_center=cc-42,env=prod,project=billing" {
		t.Errorf("Canonical = %q; the key's project must win", c)
	}
	if v, ok := Value("cost_center=cc-42,env=prod", "env"); !ok || v != "prod" {
		t.Errorf("Value = %q, %v", v, ok)
	}
	if _, ok := Value("env=prod", "project"); ok {
		t.Error("a missing tag was found")
	}
	if none, err := Parse(""); none != nil || err != nil {
		t.Errorf("an empty header: %v, %v", none, err)
	}
}
