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
	githubToken = "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" // made up, with a valid checksum
	githubPAT   = "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"
	googleKey   = "AIza" + "SyD-" + strings.Repeat("x9Z", 10) + "_"
	testJWT     = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
	pemBody     = "MC4CAQAwBQYDK2VwBCIEIM1SnSnsyEAaQP6aioXlvBBZA6ZDiNvWKHfx/91w4R0g" // an Ed25519 key's length, random bytes
	pemKey      = "-----BEGIN PRIVATE KEY-----\n" + pemBody + "\n-----END PRIVATE KEY-----"
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
		{"us phone with country code", "call 1-800-555-0199 or 1 (800) 555-0199", []match{{Phone, "1-800-555-0199"}, {Phone, "1 (800) 555-0199"}}},
		{"french pairs", "portable : 06 12 34 56 78.", []match{{Phone, "06 12 34 56 78"}}},
		{"french dots", "07.81.23.45.67", []match{{Phone, "07.81.23.45.67"}}},
		{"german area code", "Tel. 030 12345678, mobil 0171 2345678", []match{{Phone, "030 12345678"}, {Phone, "0171 2345678"}}},
		{"german slash and extension", "089/1234567 oder 0711 123456-0", []match{{Phone, "089/1234567"}, {Phone, "0711 123456-0"}}},
		{"uk national", "ring 020 7946 0958", []match{{Phone, "020 7946 0958"}}},
		{"dutch mobile", "bel 06-12345678", []match{{Phone, "06-12345678"}}},
		{"spanish pairs", "612 34 56 78 o 91 123 45 67", []match{{Phone, "612 34 56 78"}, {Phone, "91 123 45 67"}}},
		{"spanish threes after a phone word", "móvil 655 123 456", []match{{Phone, "655 123 456"}}},
		{"german trunk in intl form", "+49 (0)30 12345678", []match{{Phone, "+49 (0)30 12345678"}}},
		{"visa grouped", "card 4111 1111 1111 1111 exp 12/29", []match{{CreditCard, "4111 1111 1111 1111"}}},
		{"mastercard dashes", "5500-0000-0000-0004", []match{{CreditCard, "5500-0000-0000-0004"}}},
		{"amex contiguous", "amex 378282246310005", []match{{CreditCard, "378282246310005"}}},
		{"ssn", "SSN 123-45-6789", []match{{USSSN, "123-45-6789"}}},
		{"iban grouped", "IBAN GB82 WEST 1234 5698 7654 32 ok", []match{{IBAN, "GB82 WEST 1234 5698 7654 32"}}},
		{"iban contiguous", "DE89370400440532013000", []match{{IBAN, "DE89370400440532013000"}}},
		{"ipv4", "server 203.0.113.7:8080", []match{{IPAddress, "203.0.113.7"}}},
		{"ipv4 host with prefix", "route 10.1.2.3/32 and 10.1.2.3/24", []match{{IPAddress, "10.1.2.3"}, {IPAddress, "10.1.2.3"}}},
		{"ipv6", "from 2001:db8:85a3::8a2e:370:7334.", []match{{IPAddress, "2001:db8:85a3::8a2e:370:7334"}}},
		{"ipv6 host with prefix", "ip:2001:db8::1/64", []match{{IPAddress, "2001:db8::1"}}},
		{"aws", "key=AKIA6AFQKVXPJEGZC7D3", []match{{AWSAccessKey, "AKIA6AFQKVXPJEGZC7D3"}}},
		{"aws temporary", "ASIAY34FZKBOKMUTVV7A", []match{{AWSAccessKey, "ASIAY34FZKBOKMUTVV7A"}}},
		{"github", "token " + githubToken, []match{{GitHubToken, githubToken}}},
		{"github fine-grained", "GH_TOKEN=" + githubPAT, []match{{GitHubToken, githubPAT}}},
		{"slack", "xoxb-054617962272-9870569619365-pf7R0Tyh0Prt", []match{{SlackToken, "xoxb-054617962272-9870569619365-pf7R0Tyh0Prt"}}},
		{"slack app-level", "xapp-1-A06B2CDEF9G-8880498430292-feba3998", []match{{SlackToken, "xapp-1-A06B2CDEF9G-8880498430292-feba3998"}}},
		{"stripe", `"sk_live_4eC39HqLyjWDarjtT1zdp7dc"`, []match{{StripeKey, "sk_live_4eC39HqLyjWDarjtT1zdp7dc"}}},
		{"google", "key: " + googleKey, []match{{GoogleAPIKey, googleKey}}},
		{"openai project", "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", []match{{OpenAIKey, "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"}}},
		{"private key", "here:\n" + pemKey + "\nthanks", []match{{PrivateKey, pemKey}}},
		{"private key in json", `"private_key": "-----BEGIN PRIVATE KEY-----\n` + pemBody + `\n-----END PRIVATE KEY-----\n"`,
			[]match{{PrivateKey, `-----BEGIN PRIVATE KEY-----\n` + pemBody + `\n-----END PRIVATE KEY-----`}}},
		{"private key cut off", "oops -----BEGIN EC PRIVATE KEY-----\n  " + pemBody + "\n", []match{{PrivateKey, "-----BEGIN EC PRIVATE KEY-----\n  " + pemBody}}},
		{"encrypted pem headers", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0F1E2D3C\n\n" + pemBody + "\n-----END RSA PRIVATE KEY-----",
			[]match{{PrivateKey, "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0F1E2D3C\n\n" + pemBody + "\n-----END RSA PRIVATE KEY-----"}}},
		{"jwt", "Bearer " + testJWT, []match{{JWT, testJWT}}},
		// Context words raise or lower confidence, but never rule out a
		// value that passes its checksum.
		{"card after order", "order 4111 1111 1111 1111 is late", []match{{CreditCard, "4111 1111 1111 1111"}}},
		{"card after hash", "Order #4111111111111111 shipped", []match{{CreditCard, "4111111111111111"}}},
		{"card in a path", "GET /orders/4111111111111111", []match{{CreditCard, "4111111111111111"}}},
		{"card after invoice", "invoice 5500-0000-0000-0004", []match{{CreditCard, "5500-0000-0000-0004"}}},
		{"card after account no", "Account no. 4913 9045 8019 1527", []match{{CreditCard, "4913 9045 8019 1527"}}},
		{"card after ref id", "ref id 378282246310005", []match{{CreditCard, "378282246310005"}}},
		{"card after German order", "Bestellnummer 4111 1111 1111 1111", []match{{CreditCard, "4111 1111 1111 1111"}}},
		{"card after French order", "Commande n° 4111 1111 1111 1111", []match{{CreditCard, "4111 1111 1111 1111"}}},
		{"iban after account", "account GB29NWBK60161331926819, ref DE89370400440532013000",
			[]match{{IBAN, "GB29NWBK60161331926819"}, {IBAN, "DE89370400440532013000"}}},
		{"ssn dots", "SSN 123.45.6789", []match{{USSSN, "123.45.6789"}}},
		{"ssn slashes", "ssn: 123/45/6789", []match{{USSSN, "123/45/6789"}}},
		{"ssn spaces", "social security number 123 45 6789", []match{{USSSN, "123 45 6789"}}},
		{"ssn unseparated after SSN", "SSN: 123456789", []match{{USSSN, "123456789"}}},
		{"ssn unseparated after SS#", "SS# 123456789.", []match{{USSSN, "123456789"}}},
		{"ssn unseparated after social security no", "Social Security No. 431728815", []match{{USSSN, "431728815"}}},
		{"ssn label then reference word", "SSN (employee id) 123-45-6789", []match{{USSSN, "123-45-6789"}}},
		{"phone e164 without plus after label", "WhatsApp 447911123456", []match{{Phone, "447911123456"}}},
		{"phone australian parens", "ring (02) 9628 9313 today", []match{{Phone, "(02) 9628 9313"}}},
		{"phone german parens", "Tel. (030) 1234567", []match{{Phone, "(030) 1234567"}}},
		{"phone indian 11 digits", "my number 09876543210", []match{{Phone, "09876543210"}}},
		{"phone indian unlabelled", "reach 09876543210 after six", []match{{Phone, "09876543210"}}},
		{"phone indian 10 with label", "mobile: 9876543210", []match{{Phone, "9876543210"}}},
		{"phone label three words back", "call me at 0412345678", []match{{Phone, "0412345678"}}},
		{"phone grouped with label", "phone 98765 43210", []match{{Phone, "98765 43210"}}},
		{"aws glued after lower case", "keyAKIA6AFQKVXPJEGZC7D3", []match{{AWSAccessKey, "AKIA6AFQKVXPJEGZC7D3"}}},
		{"aws glued after underscore", "AWS_KEY_AKIA6AFQKVXPJEGZC7D3_prod", []match{{AWSAccessKey, "AKIA6AFQKVXPJEGZC7D3"}}},
		{"aws glued before lower case", "ASIA4YCOSVDP3UZIILNOsecret", []match{{AWSAccessKey, "ASIA4YCOSVDP3UZIILNO"}}},
		{"slack webhook", "post to https://hooks.slack.com/services/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 now",
			[]match{{SlackToken, "https://hooks.slack.com/services/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"}}},
		{"slack webhook without scheme", "url=hooks.slack.com/services/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",
			[]match{{SlackToken, "hooks.slack.com/services/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"}}},
		{"ip after phone word", "call 10.20.30.40", []match{{IPAddress, "10.20.30.40"}}},
		{"several in order", "a@b.io 10.1.2.3 AKIA6AFQKVXPJEGZC7D3", []match{{Email, "a@b.io"}, {IPAddress, "10.1.2.3"}, {AWSAccessKey, "AKIA6AFQKVXPJEGZC7D3"}}},
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
		{"github placeholder", "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		{"github bad checksum", "ghp_VEQEHPZPXJB3eQ64uxVJQCLHws6o770zb6fA"},
		{"github pat wrong shape", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"},
		{"pem header in code", `if strings.HasPrefix(s, "-----BEGIN RSA PRIVATE KEY-----") { return nil }`},
		{"pem placeholder", "-----BEGIN EC PRIVATE KEY-----\n<paste your key here>\n-----END EC PRIVATE KEY-----"},
		{"pem short body", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7Y9\n-----END RSA PRIVATE KEY-----"},
		{"jwt header without alg", "eyJ0eXAiOiJKV1QifQ.eyJ2IjoxfQ.c2ln"},
		{"unspecified loopback netmask", "listen 0.0.0.0:80, 127.0.0.1, 255.255.255.0, 255.255.255.255"},
		{"cidr networks", "pool 10.0.0.0/8 and 192.168.0.0/16"},
		{"url credentials", "postgres://app:s3cret@db.prod.internal:5432/app https://d8b09893@o450000.ingest.sentry.io/55"},
		{"scp remote", "git clone git@github.com:acme/payments.git"},
		{"retina asset", `srcset="logo@2x.png 2x"`},
		{"plus zero", "m=+0.004512301"},
		{"six pairs", "numbers 04 11 23 35 42 47"},
		{"date and count", "am 01.03.2024 12 Teilnehmer, 01.03.2024.12"},
		{"spanish threes alone", "total 612 345 678"},
		{"spanish version", "la versión 3.2.1.4 del firmware"},
		{"section numbers", "see RFC 8446, Section 4.2.11.2, and RFC 5280, 4.2.1.2"},
		{"ipv6 network", "route fc00::/7 and 2001:db8::/32"},
		{"fingerprint", "4e:a5:1d:5f:5d:6d:a6:b5 and 58:1c:2c:3b:2a:9e:ac:9d:4e:a5:1d"},
		{"ipv6 loopback", "bind 0:0:0:0:0:0:0:1"},
		{"zip plus four", "Boston, MA 02110-1301, USA"},
		{"hex dump pairs", "99 00 0b 00 02  01 00 ff 01 00 01 00 00  |......|"},
		{"time fraction", "Jan  2 03:04:05.000000006"},
		{"ssn unseparated without label", "employee 123456789 joined"},
		{"ssn unseparated after ssn label but invalid", "SSN 000123456, SSN 666123456, SSN 900123456, SSN 123001234, SSN 123450000"},
		{"ssn label too far back", "SSN field is optional; the batch number of the run that created this record was 123456789"},
		{"ssn after reference word", "ticket 123-45-6789"},
		{"ssn word inside a word", "classn 123456789"},
		{"ten digits without label", "ts 4155552671 and 09876543210123"},
		{"labelled phone after order", "call about order 4155552671"},
		{"labelled but too short", "phone ext 12345"},
		{"version after phone word", "phone app v10.12.1234"},
		{"date after phone word", "call on 2024-03-15 or 15.03.2024"},
		{"amount after phone word", "call cost $1,234,567.89"},
		{"ip-like run after phone word", "call 10.20.30.40.50 or 1.2.3.4.5.6"},
		{"aws glued to upper case", "XAKIA6AFQKVXPJEGZC7D3 and AKIA6AFQKVXPJEGZC7D3X and 9AKIA6AFQKVXPJEGZC7D3"},
		{"aws documentation key", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"},
		{"slack placeholders", "xoxb-your-bot-token xoxp-REPLACE_ME-0000000000 xoxb-123456789012-1234567890123-abcdefghij"},
		{"slack documentation webhook", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"},
		{"slack webhook other host", "https://evilhooks.slack.com/services/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"},
		{"openai placeholders", "sk-xxxxxxxxxxxxxxxxxxxxxxxx1 sk-your-api-key-0000000000000 sk-proj-EXAMPLE0a1b2c3d4e5f6g7h8 sk-1234567890abcdefghijklmn"},
		{"stripe placeholders", "sk_live_your0secret0key0here0000 sk_test_XXXXXXXXXXXXXXXXXXXXXXXX rk_live_1234567890abcdefXYZQ"},
		{"google placeholder", "AIzaSyYOUR_API_KEY_goes_here_0000000000"},
		{"github pat placeholder", "github_pat_11EXAMPLE0000000000000000_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"},
		{"angle bracket token", "Authorization: Bearer <token> and xoxb-<token>"},
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

// TestScanWithoutNormaliser holds the scanner to its contract on text the
// host's normaliser has not seen: characters it would fold or drop may break a
// value up, and then the value is not found, but they never shift offsets,
// join two values or hide one that stands apart from them.
func TestScanWithoutNormaliser(t *testing.T) {
	tests := []struct {
		name, text string
		want       []match
	}{
		{"no-break space before a labelled SSN", "SSN\u00a0123456789", []match{{USSSN, "123456789"}}},
		{"zero-width space after the label", "SSN:\u200b 123-45-6789", []match{{USSSN, "123-45-6789"}}},
		{"fullwidth digits are not digits", "card ４１１１ １１１１ １１１１ １１１１", nil},
		{"zero-width space inside a card", "card 4111\u200b1111 1111 1111", nil},
		{"soft hyphen inside a key", "AKIA6AFQ\u00adKVXPJEGZC7D3", nil},
		{"en dash between SSN groups", "SSN 123\u201345\u20136789", nil},
		{"value after other-script text", "номер 4111 1111 1111 1111", []match{{CreditCard, "4111 1111 1111 1111"}}},
		{"normalised forms are found", "card 4111 1111 1111 1111, SSN 123-45-6789, a@b.io",
			[]match{{CreditCard, "4111 1111 1111 1111"}, {USSSN, "123-45-6789"}, {Email, "a@b.io"}}},
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
