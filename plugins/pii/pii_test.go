package pii

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// match is a finding as a reader would check it: the type and the text it covers.
type match struct{ typ, value string }

func scanAll(t testing.TB, s *Scanner, text string) []match {
	t.Helper()
	var got []match
	for _, f := range s.Scan(nil, []byte(text)) {
		if f.Start < 0 || f.End > len(text) || f.Start >= f.End || f.Score < 0 || f.Score > 1 {
			t.Fatalf("malformed finding %+v for %q", f, text)
		}
		got = append(got, match{f.Type, text[f.Start:f.End]})
	}
	return got
}

var (
	githubToken = "ghp_" + strings.Repeat("aB3", 12)
	googleKey   = "AIza" + "SyD-" + strings.Repeat("x9Z", 10) + "_"
	testJWT     = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
	pemKey      = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7Y9\n-----END RSA PRIVATE KEY-----"
)

func TestScanFinds(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []match
	}{
		{"email", "mail jane.doe+ai@mail.example.co.uk today", []match{{Email, "jane.doe+ai@mail.example.co.uk"}}},
		{"email at sentence end", "ask bob@example.com.", []match{{Email, "bob@example.com"}}},
		{"intl phone", "call +44 20 7946 0958 now", []match{{Phone, "+44 20 7946 0958"}}},
		{"e164 phone", "sms +14155552671", []match{{Phone, "+14155552671"}}},
		{"us phone dashes", "tel: 415-555-2671.", []match{{Phone, "415-555-2671"}}},
		{"us phone parens", "(415) 555-2671", []match{{Phone, "(415) 555-2671"}}},
		{"us phone dots", "415.555.2671", []match{{Phone, "415.555.2671"}}},
		{"visa grouped", "card 4111 1111 1111 1111 exp 12/29", []match{{CreditCard, "4111 1111 1111 1111"}}},
		{"mastercard dashes", "5500-0000-0000-0004", []match{{CreditCard, "5500-0000-0000-0004"}}},
		{"amex contiguous", "amex 378282246310005", []match{{CreditCard, "378282246310005"}}},
		{"ssn", "SSN 123-45-6789", []match{{USSSN, "123-45-6789"}}},
		{"iban grouped", "IBAN GB82 WEST 1234 5698 7654 32 ok", []match{{IBAN, "GB82 WEST 1234 5698 7654 32"}}},
		{"iban contiguous", "DE89370400440532013000", []match{{IBAN, "DE89370400440532013000"}}},
		{"ipv4", "server 203.0.113.7:8080", []match{{IPAddress, "203.0.113.7"}}},
		{"ipv6", "from 2001:db8:85a3::8a2e:370:7334.", []match{{IPAddress, "2001:db8:85a3::8a2e:370:7334"}}},
		{"aws", "key=AKIAIOSFODNN7EXAMPLE", []match{{AWSAccessKey, "AKIAIOSFODNN7EXAMPLE"}}},
		{"aws temporary", "ASIAY34FZKBOKMUTVV7A", []match{{AWSAccessKey, "ASIAY34FZKBOKMUTVV7A"}}},
		{"github", "token " + githubToken, []match{{GitHubToken, githubToken}}},
		{"github fine-grained", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", []match{{GitHubToken, "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"}}},
		{"slack", "xoxb-123456789012-1234567890123-AbCdEfGh", []match{{SlackToken, "xoxb-123456789012-1234567890123-AbCdEfGh"}}},
		{"stripe", `"sk_live_4eC39HqLyjWDarjtT1zdp7dc"`, []match{{StripeKey, "sk_live_4eC39HqLyjWDarjtT1zdp7dc"}}},
		{"google", "key: " + googleKey, []match{{GoogleAPIKey, googleKey}}},
		{"openai project", "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", []match{{OpenAIKey, "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"}}},
		{"private key", "here:\n" + pemKey + "\nthanks", []match{{PrivateKey, pemKey}}},
		{"jwt", "Bearer " + testJWT, []match{{JWT, testJWT}}},
		{"several in order", "a@b.io 10.1.2.3 AKIAIOSFODNN7EXAMPLE", []match{{Email, "a@b.io"}, {IPAddress, "10.1.2.3"}, {AWSAccessKey, "AKIAIOSFODNN7EXAMPLE"}}},
	}
	s, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scanAll(t, s, tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("Scan(%q)\n got %v\nwant %v", tt.text, got, tt.want)
			}
		})
	}
}

// TestScanIgnoresLookalikes holds the scanner to what makes a PII scanner
// usable: text full of numbers and identifiers must not raise findings.
func TestScanIgnoresLookalikes(t *testing.T) {
	tests := []struct{ name, text string }{
		{"version after v", "upgrade to v1.2.3.4 now"},
		{"version word", "running version 10.0.0.1 of the agent"},
		{"dotted with five parts", "oid 1.3.6.1.4.1"},
		{"order number luhn valid", "Order #4111111111111111 shipped"},
		{"order word", "order 4111 1111 1111 1111 is late"},
		{"order id in path", "GET /orders/4111111111111111"},
		{"uuid", "id 550e8400-e29b-41d4-a716-446655440000"},
		{"uuid digits", "req 12345678-1234-1234-1234-123456789012"},
		{"sha1", "commit 356a192b7913b04c54574d18c28d46e6395428ab"},
		{"sha256 digits first", "9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0"},
		{"iso timestamp", "at 2024-01-15T10:30:00Z"},
		{"date and time", "2024-01-15 10:30:45"},
		{"unix millis", "ts=1700000000123"},
		{"bare ten digits", "amount 4155552671 cents"},
		{"luhn invalid card", "4111 1111 1111 1112"},
		{"ssn bad area", "666-12-3456 and 900-12-3456 and 000-12-3456"},
		{"ssn bad group", "123-00-4567"},
		{"iban bad checksum", "GB82 WEST 1234 5698 7654 33"},
		{"ip octet too big", "10.0.0.256"},
		{"time", "meet at 10:30:00"},
		{"mac address", "mac 00:1a:2b:3c:4d:5e"},
		{"sk prose", "use sk-learn-compatible estimators please"},
		{"aws too short", "AKIA1234"},
		{"jwt lookalike", "eyJhbGciOi.notjson.x"},
		{"email without tld", "user@localhost"},
		{"public key", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"},
		{"phone with leading 1 area", "123-555-2671"},
	}
	s, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scanAll(t, s, tt.text); len(got) != 0 {
				t.Errorf("Scan(%q) = %v, want no findings", tt.text, got)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	text := "mail a@b.io from 203.0.113.7"
	tests := []struct {
		config  string
		want    []match
		wantErr bool
	}{
		{``, []match{{Email, "a@b.io"}, {IPAddress, "203.0.113.7"}}, false},
		{`{"types":["EMAIL"]}`, []match{{Email, "a@b.io"}}, false},
		{`{"min_score":0.8}`, []match{{Email, "a@b.io"}}, false},
		{`{"types":["NAME"]}`, nil, true},
		{`{"min_score":2}`, nil, true},
		{`{`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.config, func(t *testing.T) {
			s, err := New([]byte(tt.config))
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%s) error = %v, wantErr %v", tt.config, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := scanAll(t, s, text); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestScanArbitraryBytes checks the scanner's contract on inputs it was not
// written for: no panics, findings in bounds, ordered and disjoint.
func TestScanArbitraryBytes(t *testing.T) {
	s, _ := New(nil)
	alphabet := []byte("0123456789abcdefAKIAxoxb-sk_live_@.:+() \n#/eyJ-----BEGIN PRIVATE KEY")
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		text := make([]byte, r.IntN(200))
		for i := range text {
			if r.IntN(10) == 0 {
				text[i] = byte(r.IntN(256))
			} else {
				text[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		prev := 0
		for _, f := range s.Scan(nil, text) {
			if f.Start < prev || f.End <= f.Start || f.End > len(text) {
				t.Fatalf("finding %+v out of order or bounds (prev end %d) in %q", f, prev, text)
			}
			prev = f.End
		}
	}
}

// corpus builds realistic prompt text of about n bytes with a little PII.
func corpus(n int) []byte {
	parts := []string{
		"Please summarise the quarterly report for the board meeting on 2024-03-15. ",
		"The service runs version 1.2.3.4 on build 20240315 and handles 1500 requests per second. ",
		"Contact jane.doe@example.com or call +1 415 555 2671 if the deploy fails. ",
		"Order #4111111111111111 was refunded; see ticket 12345 and commit 356a192b7913b04c. ",
		"func main() { fmt.Println(\"hello, world\", 42, 3.14) } // TODO: handle errors ",
		"The customer's card 4111 1111 1111 1111 was declined at 10:30:00 UTC. ",
	}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(parts[i%len(parts)])
	}
	return []byte(b.String()[:n])
}

// prose is n bytes of ordinary prompt text without any personal data, the
// common case the scanner is tuned for.
func prose(n int) []byte {
	const p = "Please rewrite the following paragraph so that it reads well, keeps every fact, " +
		"and stays under two hundred words. The team met on Monday to discuss the roadmap; " +
		"everyone agreed that onboarding needs work, that the docs are out of date, and that " +
		"we should ship the new dashboard before the end of the quarter. "
	return []byte(strings.Repeat(p, n/len(p)+1)[:n])
}

func BenchmarkScan(b *testing.B) {
	s, _ := New(nil)
	for _, in := range []struct {
		name string
		text func(int) []byte
	}{{"corpus", corpus}, {"prose", prose}} {
		for _, size := range []int{1 << 10, 64 << 10} {
			text := in.text(size)
			b.Run(fmt.Sprintf("%s/%dKB", in.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				b.ReportAllocs()
				var dst []Finding
				for b.Loop() {
					dst = s.Scan(dst[:0], text)
				}
			})
		}
	}
}

func ExampleScanner_Scan() {
	s, _ := New([]byte(`{"types":["EMAIL","CREDIT_CARD"]}`))
	text := []byte("Refund 4111 1111 1111 1111 and mail ops@example.com")
	for _, f := range s.Scan(nil, text) {
		fmt.Printf("%s %q\n", f.Type, text[f.Start:f.End])
	}
	// Output:
	// CREDIT_CARD "4111 1111 1111 1111"
	// EMAIL "ops@example.com"
}

// TestSkipQuietChangesNothing holds the quiet-run skip to its promise: the
// findings are the same as when every byte goes through the recognizers.
func TestSkipQuietChangesNothing(t *testing.T) {
	s, _ := New(nil)
	words := []string{"the", "key", "xoxb", "ghp", "skip", "sk", "eyJ", "eye", "rk", "github", "abc", "face",
		"AKIAIOSFODNN7EXAMPLE", "jane@example.com", "4111", "1111", "10.0.0.1", "2001:db8::1", "GB82",
		"-----BEGIN", "PRIVATE", "KEY-----", "+1", "(415)", "555-2671", "_", "é", "ünï", "\x00",
		"Hello", "Also", "Ab", "McDonald", "Aiza", "Sk", "Order", "Xoxb", "De89370400440532013000"}
	seps := []string{" ", "  ", ", ", ". ", "\n", "-", ":", "@", "+", "(", ")", "_", "/", ""}
	r := rand.New(rand.NewPCG(3, 4))
	var texts [][]byte
	for range 3000 {
		var b []byte
		for range r.IntN(30) {
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, seps[r.IntN(len(seps))]...)
		}
		texts = append(texts, b)
	}
	texts = append(texts, corpus(4096), prose(4096))
	defer func() { skipQuietRuns = true }()
	for _, text := range texts {
		skipQuietRuns = true
		got := s.Scan(nil, text)
		skipQuietRuns = false
		want := s.Scan(nil, text)
		if !slices.Equal(got, want) {
			t.Fatalf("Scan(%q)\nwith skip    %v\nwithout skip %v", text, got, want)
		}
	}
}
