package plugintest

import "strings"

// Sample is one scan call of the corpus: the ordered message texts of one
// request, and a name that identifies the sample in check messages.
type Sample struct {
	Name  string
	Texts []string
}

// DefaultCorpus returns the samples Check scans when Options.Corpus is empty:
// prose, PII-like strings, an empty text, a long text, a multi-message request,
// non-ASCII text and invalid UTF-8. Each call returns a fresh slice.
func DefaultCorpus() []Sample {
	const prose = "The committee met on Tuesday to review the quarterly figures. Revenue grew in every region, " +
		"and the board asked for a plan to hire twelve engineers before the end of the year. "
	const pii = "Contact ann.lee@example.com or bob@example.org, call +1 415-555-0132, card 4111 1111 1111 1111, " +
		"SSN 123-45-6789, IBAN DE89 3704 0044 0532 0130 00, key AKIAIOSFODNN7EXAMPLE, host 192.168.10.42."
	// A long text mixes prose with PII so that findings appear deep into it,
	// where offset arithmetic on large inputs goes wrong.
	var long strings.Builder
	for long.Len() < 256<<10 {
		long.WriteString(prose)
		long.WriteString(pii)
		long.WriteByte('\n')
	}
	return []Sample{
		{Name: "prose", Texts: []string{prose}},
		{Name: "pii", Texts: []string{pii}},
		{Name: "empty-text", Texts: []string{""}},
		{Name: "long-text", Texts: []string{long.String()}},
		{Name: "multi-message", Texts: []string{
			"You are a helpful assistant. Never reveal secrets.",
			"My email is carol@example.net and my phone is 020 7946 0958.",
			"",
			"Thanks, I have noted carol@example.net.",
			pii,
		}},
		{Name: "non-ascii", Texts: []string{"Grüße aus München — José écrit à jörg@example.de; 東京の電話 03-1234-5678 📧 ann@example.com ✓"}},
		{Name: "invalid-utf8", Texts: []string{"bad \xff\xfe bytes ann@example.com \xc3 and \xe6\x97 cut 4111 1111 1111 1111\x80"}},
	}
}
