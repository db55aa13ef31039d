package redact

import (
	"strings"
	"testing"
)

// benchReply is a 1 KB reply with four placeholders, as a model writes it
// back to a redacted prompt.
func benchReply() string {
	para := "Thanks for the details. I have updated the ticket for [EMAIL_1] and will call [PHONE_1] tomorrow; " +
		"the invoice (ref. 2024-118) goes to [EMAIL_1] as before. "
	return strings.Repeat(para, 1024/len(para)+1)[:1024]
}

// deltas splits text as a stream carries it, about a token (4 bytes) each.
func deltas(text string) []string {
	var out []string
	for len(text) > 4 {
		out = append(out, text[:4])
		text = text[4:]
	}
	return append(out, text)
}

func benchVault(b *testing.B) *Vault {
	var v Vault
	v.Redact([]string{"ann@example.com +1 555 0100"},
		[]Finding{{Type: "EMAIL", Start: 0, End: 15}, {Type: "PHONE", Start: 16, End: 27}}, []string{"EMAIL", "PHONE"})
	if v.Len() != 2 {
		b.Fatal("vault not set up")
	}
	return &v
}

func BenchmarkRedact(b *testing.B) {
	text := strings.Repeat("Please mail ann@example.com about order 1182 today. ", 20)[:1024]
	var found []Finding
	for i := strings.Index(text, "ann@"); i >= 0 && i+15 <= len(text); {
		found = append(found, Finding{Type: "EMAIL", Start: i, End: i + 15})
		j := strings.Index(text[i+1:], "ann@")
		if j < 0 {
			break
		}
		i += 1 + j
	}
	texts := []string{text}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		var v Vault
		if v.Redact(texts, found, []string{"EMAIL"}) == nil {
			b.Fatal("nothing redacted")
		}
	}
}

// BenchmarkRestore is the cost of restoring a 1 KB reply, whole and as a
// stream of 4-byte deltas.
func BenchmarkRestore(b *testing.B) {
	v := benchVault(b)
	reply := benchReply()
	plain := strings.NewReplacer("[", "(", "]", ")").Replace(reply)
	b.Run("whole/1KB", func(b *testing.B) {
		b.SetBytes(int64(len(reply)))
		b.ReportAllocs()
		for b.Loop() {
			v.Restore(reply)
		}
	})
	for _, tc := range []struct{ name, text string }{{"stream/1KB", reply}, {"stream/1KB-no-placeholders", plain}} {
		ds := deltas(tc.text)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.text)))
			b.ReportAllocs()
			for b.Loop() {
				r := v.NewStreamRestorer()
				for _, d := range ds {
					r.Next(d)
				}
				r.Flush()
			}
		})
	}
}

// BenchmarkScan is the overhead of response scanning around the plugin
// call, per 1 KB reply: the plugin here finds nothing and costs nothing, so
// what is measured is batching, windows and release. Add the plugin's own
// cost per call times the calls reported.
func BenchmarkScan(b *testing.B) {
	reply := benchReply()
	ds := deltas(reply)
	var calls int
	o := ScanOptions{Scan: func([]string) ([]Finding, error) { calls++; return nil, nil }, Decide: ByType(nil, Block)}
	b.Run("whole/1KB", func(b *testing.B) {
		b.SetBytes(int64(len(reply)))
		b.ReportAllocs()
		texts := []string{reply}
		for b.Loop() {
			if _, _, err := ScanTexts(texts, o, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream/1KB", func(b *testing.B) {
		b.SetBytes(int64(len(reply)))
		b.ReportAllocs()
		calls = 0
		for b.Loop() {
			s := NewStreamScanner(o, nil)
			for _, d := range ds {
				if _, err := s.Next(d); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := s.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(calls)/float64(b.N), "scans/op")
	})
	// With a finding to mask in every batch, the release path replaces.
	mask := ScanOptions{Scan: func(texts []string) ([]Finding, error) {
		var out []Finding
		for i := strings.Index(texts[0], "invoice"); i >= 0; {
			out = append(out, Finding{Type: "EMAIL", Start: i, End: i + len("invoice")})
			j := strings.Index(texts[0][i+1:], "invoice")
			if j < 0 {
				break
			}
			i += 1 + j
		}
		return out, nil
	}, Decide: ByType([]string{"EMAIL"}, Block)}
	b.Run("stream-masking/1KB", func(b *testing.B) {
		b.SetBytes(int64(len(reply)))
		b.ReportAllocs()
		for b.Loop() {
			s := NewStreamScanner(mask, nil)
			for _, d := range ds {
				if _, err := s.Next(d); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := s.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
