package redact

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// The test plugin finds e-mail addresses, which the policy masks, and API
// keys, which it blocks.
var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	keyRE   = regexp.MustCompile(`sk-[A-Za-z0-9]{20}`)
)

// testScan is a ScanFunc over emailRE and keyRE that counts its calls and
// checks that it is only ever given valid UTF-8.
func testScan(t *testing.T, calls *int) ScanFunc {
	return func(texts []string) ([]Finding, error) {
		*calls++
		var out []Finding
		for i, text := range texts {
			if !utf8.ValidString(text) {
				t.Errorf("scan given invalid UTF-8 %q", text)
			}
			for _, m := range emailRE.FindAllStringIndex(text, -1) {
				out = append(out, Finding{Type: "EMAIL", Text: i, Start: m[0], End: m[1]})
			}
			for _, m := range keyRE.FindAllStringIndex(text, -1) {
				out = append(out, Finding{Type: "OPENAI_KEY", Text: i, Start: m[0], End: m[1]})
			}
		}
		return out, nil
	}
}

var maskEmails = ByType([]string{"EMAIL"}, Block)

// scanStream feeds chunks to a StreamScanner and returns what it released
// before it ended or failed.
func scanStream(s *StreamScanner, chunks []string) (string, error) {
	var b strings.Builder
	for _, c := range chunks {
		out, err := s.Next(c)
		b.WriteString(out)
		if err != nil {
			return b.String(), err
		}
	}
	out, err := s.Flush()
	b.WriteString(out)
	return b.String(), err
}

var scanTexts = []string{
	"Contact ann@example.com or bob.smith+tag@mail.example.co.uk, then ann@example.com again.",
	"Déjà vu: écrivez à ann@example.com — ou à zoe@exemple.fr 😀 merci.",
	strings.Repeat("long text without findings, ", 12) + "tail@example.org",
	"ann@example.com",
	"nothing to see",
	"",
}

// TestStreamScannerMatchesWhole checks that a stream, however chunked, is
// masked exactly as the whole reply is: no finding across a chunk boundary
// is missed.
func TestStreamScannerMatchesWhole(t *testing.T) {
	options := []ScanOptions{
		{Decide: maskEmails},                         // defaults: every test text fits in one window
		{Decide: maskEmails, Window: 48, Batch: 8},   // many scans, findings near every edge
		{Decide: maskEmails, Window: 64, Batch: 200}, // batches larger than the window
	}
	for _, text := range scanTexts {
		var calls int
		o := ScanOptions{Scan: testScan(t, &calls), Decide: maskEmails}
		wholeOut, _, err := ScanTexts([]string{text}, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := text
		if wholeOut != nil {
			want = wholeOut[0]
		}
		if strings.Contains(want, "@") {
			t.Fatalf("whole scan left an address in %q", want)
		}
		for _, o := range options {
			o.Scan = testScan(t, &calls)
			check := func(chunks []string) {
				t.Helper()
				got, err := scanStream(NewStreamScanner(o, nil), chunks)
				if err != nil || got != want {
					t.Fatalf("window %d batch %d, chunks %q:\n got %q, %v\nwant %q", o.Window, o.Batch, chunks, got, err, want)
				}
			}
			for i := 0; i <= len(text); i++ {
				check([]string{text[:i], text[i:]})
			}
			for seed := range uint64(20) {
				rng := rand.New(rand.NewPCG(seed, 1))
				var chunks []string
				for rest := text; rest != ""; {
					n := min(len(rest), 1+rng.IntN(9))
					chunks = append(chunks, rest[:n])
					rest = rest[n:]
				}
				check(chunks)
			}
		}
	}
}

// TestStreamScannerBlocks checks that a blocked finding's bytes never reach
// the caller, wherever the chunks split it.
func TestStreamScannerBlocks(t *testing.T) {
	const key = "sk-abcdefghijKLMNOPQRST"
	text := strings.Repeat("Here is some harmless preamble. ", 10) + "Use " + key + " to call it."
	at := strings.Index(text, key)
	for _, window := range []int{0, 32} {
		for i := 0; i <= len(text); i++ {
			var calls int
			s := NewStreamScanner(ScanOptions{Scan: testScan(t, &calls), Decide: maskEmails, Window: window, Batch: 16}, nil)
			got, err := scanStream(s, []string{text[:i], text[i:]})
			var b *Blocked
			if !errors.As(err, &b) || b.Type != "OPENAI_KEY" {
				t.Fatalf("split at %d: err = %v, want Blocked by OPENAI_KEY", i, err)
			}
			if !strings.HasPrefix(text[:at], got) {
				t.Fatalf("split at %d: released %q, which reaches into the key", i, got)
			}
			if _, err2 := s.Next("more"); err2 != err {
				t.Fatalf("after a block, Next = %v, want the same error", err2)
			}
			if _, err2 := s.Flush(); err2 != err {
				t.Fatalf("after a block, Flush = %v, want the same error", err2)
			}
			if f := s.Findings(); len(f) != 1 || text[f[0].Start:f[0].End] != key {
				t.Fatalf("Findings = %+v, want the key at its offsets", f)
			}
		}
	}
}

// TestStreamScannerBatches checks the cost and the latency bounds that
// Window and Batch document.
func TestStreamScannerBatches(t *testing.T) {
	text := strings.Repeat("token ", 1024/6+1)[:1024]
	var calls, longest int
	scan := testScan(t, &calls)
	o := ScanOptions{Scan: func(texts []string) ([]Finding, error) {
		longest = max(longest, len(texts[0]))
		return scan(texts)
	}}
	s := NewStreamScanner(o, nil)
	var released int
	for i := 0; i < len(text); i += 4 {
		out, err := s.Next(text[i : i+4])
		if err != nil {
			t.Fatal(err)
		}
		released += len(out)
		if fed := i + 4; fed < DefaultWindow+DefaultBatch && released > 0 {
			t.Fatalf("released %d bytes after %d: nothing may go before a scan %d bytes ahead", released, fed, DefaultWindow)
		}
		if i+4-released > DefaultWindow+DefaultBatch {
			t.Fatalf("after %d bytes only %d released: holding back more than Window+Batch", i+4, released)
		}
	}
	out, err := s.Flush()
	if err != nil || released+len(out) != len(text) {
		t.Fatalf("Flush: %d bytes, %v", len(out), err)
	}
	if max := len(text)/DefaultBatch + 1; calls > max {
		t.Fatalf("%d scans for 1 KB in 4-byte deltas, want at most %d", calls, max)
	}
	if longest > DefaultWindow+DefaultBatch+4 {
		t.Fatalf("a scan covered %d bytes, want at most Window+Batch+delta", longest)
	}
}

// TestStreamScannerUTF8 feeds multi-byte text a byte at a time: what is
// released is always whole characters.
func TestStreamScannerUTF8(t *testing.T) {
	text := strings.Repeat("été 😀 ж ", 40) + "à zoe@exemple.fr 😀"
	var calls int
	s := NewStreamScanner(ScanOptions{Scan: testScan(t, &calls), Decide: maskEmails, Window: 33, Batch: 7}, nil)
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		out, err := s.Next(text[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("released %q, cutting a character", out)
		}
		b.WriteString(out)
	}
	out, err := s.Flush()
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString(out)
	want := strings.Replace(text, "zoe@exemple.fr", "[EMAIL_1]", 1)
	if b.String() != want {
		t.Fatalf("released %q\nwant %q", b.String(), want)
	}
}

func TestStreamScannerFindings(t *testing.T) {
	text := "a ann@example.com b " + strings.Repeat("x", 50) + " ann@example.com c bob@example.com"
	var calls int
	// A small batch makes each address appear in several scans.
	s := NewStreamScanner(ScanOptions{Scan: testScan(t, &calls), Decide: ByType(nil, Allow), Window: 40, Batch: 4}, nil)
	got, err := scanStream(s, strings.SplitAfter(text, ""))
	if err != nil || got != text {
		t.Fatalf("allowed findings changed the text: %q, %v", got, err)
	}
	var values []string
	for _, f := range s.Findings() {
		values = append(values, text[f.Start:f.End])
	}
	if want := []string{"ann@example.com", "ann@example.com", "bob@example.com"}; strings.Join(values, ",") != strings.Join(want, ",") {
		t.Fatalf("findings %q, want each once %q", values, want)
	}
}

func TestStreamScannerErrors(t *testing.T) {
	boom := errors.New("plugin trapped")
	tests := []struct {
		name string
		scan ScanFunc
		want error
	}{
		{"scan fails", func([]string) ([]Finding, error) { return nil, boom }, boom},
		{"finding outside the text", func(texts []string) ([]Finding, error) {
			return []Finding{{Type: "EMAIL", Start: 0, End: len(texts[0]) + 1}}, nil
		}, nil},
		{"finding in another text", func([]string) ([]Finding, error) {
			return []Finding{{Type: "EMAIL", Text: 1, Start: 0, End: 1}}, nil
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStreamScanner(ScanOptions{Scan: tt.scan, Decide: maskEmails}, nil)
			out, err := scanStream(s, []string{"some text"})
			if err == nil || out != "" || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %q, %v; want no text and an error", out, err)
			}
			if _, err2 := s.Next("x"); err2 == nil {
				t.Fatal("the error must stick")
			}
			if _, _, err := ScanTexts([]string{"some text"}, ScanOptions{Scan: tt.scan, Decide: maskEmails}, nil); err == nil {
				t.Fatal("ScanTexts: want an error")
			}
		})
	}
}

func TestScanTexts(t *testing.T) {
	texts := []string{"mail bob@example.com", "key sk-abcdefghijKLMNOPQRST", "clean"}
	var calls int
	scan := testScan(t, &calls)
	tests := []struct {
		name    string
		texts   []string
		decide  DecideFunc
		want    []string
		blocked string
	}{
		{"mask emails, allow keys", texts, ByType([]string{"EMAIL"}, Allow), []string{"mail [EMAIL_1]", texts[1], "clean"}, ""},
		{"block keys", texts, maskEmails, nil, "OPENAI_KEY"},
		{"no decision blocks", texts[:1], nil, nil, "EMAIL"},
		{"nothing found", texts[2:], maskEmails, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, found, err := ScanTexts(tt.texts, ScanOptions{Scan: scan, Decide: tt.decide}, nil)
			var b *Blocked
			switch {
			case tt.blocked != "":
				if !errors.As(err, &b) || b.Type != tt.blocked || out != nil {
					t.Fatalf("got %q, %v; want blocked by %s", out, err, tt.blocked)
				}
				if strings.Contains(err.Error(), "@") || strings.Contains(err.Error(), "sk-") {
					t.Fatalf("the error shows the match: %v", err)
				}
			case err != nil:
				t.Fatal(err)
			case strings.Join(out, "|") != strings.Join(tt.want, "|"):
				t.Fatalf("out = %q, want %q", out, tt.want)
			}
			if tt.name == "nothing found" && len(found) != 0 {
				t.Fatalf("found %v", found)
			}
		})
	}
}

// TestMaskedIsNotRestored checks the two phases together: a value masked in
// the reply gets a number after the request's and stays masked, even when
// it is a value the request held.
func TestMaskedIsNotRestored(t *testing.T) {
	var v Vault
	v.Redact([]string{"I am ann@example.com"}, []Finding{{Type: "EMAIL", Start: 5, End: 20}}, []string{"EMAIL"})
	reply := "Hello [EMAIL_1]; write to bob@example.com, or to ann@example.com."
	var calls int
	o := ScanOptions{Scan: testScan(t, &calls), Decide: maskEmails, Window: 24, Batch: 8}
	scanned, err := scanStream(NewStreamScanner(o, &v), strings.SplitAfter(reply, " "))
	if err != nil {
		t.Fatal(err)
	}
	got := restoreStream(&v, []string{scanned})
	want := "Hello ann@example.com; write to [EMAIL_2], or to [EMAIL_3]."
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if v.Len() != 1 {
		t.Fatalf("vault can restore %d values, want only the request's", v.Len())
	}
}

// FuzzStreamScanner checks, for any chunking of a reply, that the stream
// masks every byte the whole reply's scan masks, and that its output is the
// text with exactly its own findings masked. It may mask more than the whole
// scan: a detector shown a window that starts mid-word can match differently
// (a local part cut to its tail), and overlapping findings of one type merge.
func FuzzStreamScanner(f *testing.F) {
	for _, text := range scanTexts {
		f.Add(text, uint64(len(text)), uint8(40), uint8(8))
	}
	f.Add("00000000000@0000000.AA0000000@0000000000.AA000000000 0000000000000000", uint64(3), uint8(0), uint8(3))
	f.Fuzz(func(t *testing.T, text string, seed uint64, window, batch uint8) {
		if !utf8.ValidString(text) || len(text) > 4096 {
			return // replies are decoded JSON strings: valid UTF-8
		}
		for _, m := range emailRE.FindAllString(text, -1) {
			if len(m) > 32 {
				return // only findings that fit a window are promised
			}
		}
		var calls int
		o := ScanOptions{Scan: testScan(t, &calls), Decide: ByType([]string{"EMAIL", "OPENAI_KEY"}, Block),
			Window: 32 + int(window), Batch: 1 + int(batch)}
		_, whole, err := ScanTexts([]string{text}, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, seed>>3))
		var chunks []string
		for rest := text; rest != ""; {
			n := min(len(rest), 1+rng.IntN(16))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		s := NewStreamScanner(o, nil)
		got, err := scanStream(s, chunks)
		if err != nil {
			t.Fatal(err)
		}
		masked := make([]bool, len(text))
		for _, f := range s.Findings() {
			for i := f.Start; i < f.End; i++ {
				masked[i] = true
			}
		}
		for _, f := range whole {
			for i := f.Start; i < f.End; i++ {
				if !masked[i] {
					t.Fatalf("chunks %q: byte %d of %s finding %q not masked in the stream: %q", chunks, i, f.Type, text[f.Start:f.End], got)
				}
			}
		}
		own := o
		own.Scan = func([]string) ([]Finding, error) { return s.Findings(), nil }
		want := text
		if out, _, _ := ScanTexts([]string{text}, own, nil); out != nil {
			want = out[0]
		}
		if got != want {
			t.Fatalf("chunks %q:\n got %q\nwant %q (its findings %+v)", chunks, got, want, s.Findings())
		}
	})
}
