// Package pii finds personal data and credentials in text: e-mail addresses,
// phone numbers, payment cards, US social security numbers, IBANs, IP addresses,
// cloud and SaaS API keys, private keys and JWTs.
//
// The scanner walks the bytes once and only runs a recognizer where a match can
// start (a word start, an '@', a '+', a '(' or a "-----BEGIN"); candidates are
// then confirmed with validators (Luhn, mod-97, SSN ranges, token checksums,
// JWT headers, PEM body lengths, IIN prefixes) and the words around them,
// rather than regular expressions, which are slow once compiled to WebAssembly
// and poor at rejecting look-alikes such as order numbers, version strings,
// UUIDs, hashes and timestamps. README.md lists the context rules and the
// precision and recall measured on testdata/pii.
package pii

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Finding types. The strings are shared with policies and reports.
const (
	Email        = "EMAIL"
	Phone        = "PHONE"
	CreditCard   = "CREDIT_CARD"
	USSSN        = "US_SSN"
	IBAN         = "IBAN"
	IPAddress    = "IP_ADDRESS"
	AWSAccessKey = "AWS_ACCESS_KEY"
	GitHubToken  = "GITHUB_TOKEN"
	SlackToken   = "SLACK_TOKEN"
	StripeKey    = "STRIPE_KEY"
	GoogleAPIKey = "GOOGLE_API_KEY"
	OpenAIKey    = "OPENAI_KEY"
	PrivateKey   = "PRIVATE_KEY"
	JWT          = "JWT"
)

// Types lists every finding type the scanner can report.
var Types = []string{Email, Phone, CreditCard, USSSN, IBAN, IPAddress, AWSAccessKey,
	GitHubToken, SlackToken, StripeKey, GoogleAPIKey, OpenAIKey, PrivateKey, JWT}

// Finding is one match: Start and End are byte offsets into the scanned text
// (End exclusive) and Score is a confidence in [0,1].
type Finding struct {
	Type       string
	Start, End int
	Score      float64
}

// Config is the plugin configuration, given as JSON.
type Config struct {
	// Types restricts the scan to these finding types. Empty means all.
	Types []string `json:"types"`
	// MinScore drops findings scored below it. Zero keeps everything.
	MinScore float64 `json:"min_score"`
}

// Scanner finds PII in text. It is immutable after New and safe for concurrent use.
type Scanner struct {
	enabled  uint32 // bit k set: Types[k] is reported
	minScore float64
}

// New returns a Scanner configured from JSON (see Config); empty config enables
// every type.
func New(config []byte) (*Scanner, error) {
	var cfg Config
	if len(config) > 0 {
		if err := json.Unmarshal(config, &cfg); err != nil {
			return nil, fmt.Errorf("pii config: %w", err)
		}
	}
	if cfg.MinScore < 0 || cfg.MinScore > 1 {
		return nil, fmt.Errorf("pii config: min_score %v outside [0,1]", cfg.MinScore)
	}
	s := &Scanner{minScore: cfg.MinScore}
	if len(cfg.Types) == 0 {
		cfg.Types = Types
	}
	for _, t := range cfg.Types {
		k := slices.Index(Types, t)
		if k < 0 {
			return nil, fmt.Errorf("pii config: unknown type %q (known: %v)", t, Types)
		}
		s.enabled |= 1 << k
	}
	return s, nil
}

// Scan appends the findings in text to dst, in order of their start offset,
// and returns the extended slice. Findings do not overlap.
func (s *Scanner) Scan(dst []Finding, text []byte) []Finding {
	sc := scan{s: s, text: text, dst: dst}
	sc.run()
	return sc.dst
}

// scan is the state of one pass over a text.
type scan struct {
	s       *Scanner
	text    []byte
	dst     []Finding
	lastEnd int // end of the last finding; recognizers never reach back before it
}

// emit records a finding. Recognizers only run for enabled types, so typ is
// known to be wanted; a low score still consumes the span, so that a weak match
// is not re-read as something else.
func (sc *scan) emit(typ string, start, end int, score float64) {
	sc.lastEnd = end
	if score < sc.s.minScore {
		return
	}
	sc.dst = append(sc.dst, Finding{Type: typ, Start: start, End: end, Score: score})
}

// on reports whether the type with index k in Types is enabled.
func (sc *scan) on(k int) bool { return sc.s.enabled&(1<<k) != 0 }

// Indexes into Types, for the enabled bit set.
const (
	kEmail = iota
	kPhone
	kCreditCard
	kUSSSN
	kIBAN
	kIPAddress
	kAWSAccessKey
	kGitHubToken
	kSlackToken
	kStripeKey
	kGoogleAPIKey
	kOpenAIKey
	kPrivateKey
	kJWT
)

func (sc *scan) run() {
	text := sc.text
	n := len(text)
	i := 0
	skip := skipQuietRuns
	for i < n {
		c := text[i]
		if skip && (classes[c]&cLoud == 0 || capitalized(text, i)) {
			if end := skipQuiet(text, i); end > i {
				i = end
				continue
			}
		}
		if !isWord(c) {
			end := 0
			switch c {
			case '@':
				end = sc.email(i)
			case '-':
				end = sc.privateKey(i)
			case '+', '(':
				if i+1 < n && (isDigit(text[i+1]) || text[i+1] == '(') && (i == 0 || !isWord(text[i-1])) {
					end = sc.number(i)
				}
			}
			if end > i {
				i = end
			} else {
				i++
			}
			continue
		}
		// i is a word start: the loop only lands here after a non-word byte or a
		// match. Function calls are expensive once compiled to WebAssembly, so
		// the cheap test of whether any recognizer could start here is inline.
		start := i
		for i < n && isWord(text[i]) {
			i++
		}
		var next byte
		if i < n {
			next = text[i]
		}
		last := sc.lastEnd
		if isDigit(c) || next == ':' || next == '-' && i-start == 2 || i-start >= 4 && mayStartToken(c, text[start+1]) ||
			c == 'T' && start > 0 && text[start-1] == '/' {
			i = max(i, sc.wordStart(start))
		}
		if i-start > 20 && sc.lastEnd == last {
			// A key glued to a word ("keyAKIA…"): only long words can hold one.
			if end := sc.gluedAWSKey(start, i); end > 0 {
				i = max(i, end)
			}
		}
	}
}

// skipQuietRuns turns skipQuiet on; the test that holds it to scanning every
// byte turns it off.
var skipQuietRuns = true

// skipQuiet returns where the scan can resume after a run of bytes that can
// neither start nor end a match, starting at i, or i if there is no such run.
//
// Such a run holds lower-case letters and quiet bytes: those that are neither
// word bytes nor one of the triggers '@', '-', '+', '(' and ':'. No recognizer
// matches at an all-lower-case word that a quiet byte ends (keys and tokens
// need an upper-case letter, a digit, '_' or '-' within their first four
// bytes, and IPv6 a ':'), so every word of the run but the last is skipped; the
// last may go on past the run and is left to the caller.
//
// A capitalized word (an upper-case letter after a non-word byte, then a
// lower-case one) is skipped too: the scan only looks into a word starting with
// a letter if its second byte is upper case, 'K', 'S' or 'I' after 'A', or it
// is followed by ':' or '-'.
//
// Most prompt text is such runs. Go's WebAssembly code pays for every jump,
// so the loop tests eight bytes per iteration, OR-ing their classes.
func skipQuiet(text []byte, i int) int {
	j := i
	for {
		for ; j+8 <= len(text); j += 8 {
			b := text[j : j+8 : j+8]
			if (classes[b[0]]|classes[b[1]]|classes[b[2]]|classes[b[3]]|
				classes[b[4]]|classes[b[5]]|classes[b[6]]|classes[b[7]])&cLoud != 0 {
				break
			}
		}
		for j < len(text) && classes[text[j]]&cLoud == 0 {
			j++
		}
		if !capitalized(text, j) {
			break
		}
		j += 2
	}
	// Back up over the last word of the run, which may continue past it.
	for j > i && classes[text[j-1]]&cWord != 0 {
		j--
	}
	return j
}

// capitalized reports whether a capitalized word starts at i: an upper-case
// letter at a word start followed by a lower-case letter.
func capitalized(text []byte, i int) bool {
	return i+1 < len(text) && classes[text[i]]&cUpper != 0 && classes[text[i+1]]&cLower != 0 &&
		(i == 0 || classes[text[i-1]]&cWord == 0)
}

// mayStartToken reports whether a word beginning with c1 c2 could be a key,
// token or IBAN: "AK", "AS", "AI", "gh", "gi", "xo", "xa", "sk", "rk", "ey", or two
// upper-case letters.
func mayStartToken(c1, c2 byte) bool {
	switch c1 {
	case 'A':
		return c2 == 'K' || c2 == 'S' || c2 == 'I' || isUpper(c2)
	case 'g':
		return c2 == 'h' || c2 == 'i'
	case 'x':
		return c2 == 'o' || c2 == 'a'
	case 's', 'r':
		return c2 == 'k'
	case 'e':
		return c2 == 'y'
	}
	return isUpper(c1) && isUpper(c2)
}

// wordStart tries the recognizers that begin with a word byte. It returns the
// end of a match or of a span known to hold none, or 0.
func (sc *scan) wordStart(i int) int {
	text := sc.text
	c := text[i]
	if isDigit(c) {
		if end := sc.ipv6(i); end > 0 {
			return end
		}
		return sc.number(i)
	}
	var end int
	switch c {
	case 'A':
		end = sc.awsKey(i)
		if end == 0 {
			end = sc.googleKey(i)
		}
	case 'g':
		end = sc.githubToken(i)
	case 'x':
		end = sc.slackToken(i)
	case 's', 'r':
		end = sc.stripeKey(i)
		if end == 0 && c == 's' {
			end = sc.openAIKey(i)
		}
	case 'e':
		end = sc.jwt(i)
	case 'T':
		end = sc.slackWebhook(i)
	}
	if end > 0 {
		return end
	}
	if isUpper(c) {
		if end := sc.iban(i); end > 0 {
			return end
		}
	}
	if isHex(c) {
		return sc.ipv6(i)
	}
	return 0
}

// Byte classes.

var classes = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case b >= '0' && b <= '9':
			t[c] = cWord | cDigit | cHex | cB64
		case b >= 'A' && b <= 'Z':
			t[c] = cWord | cUpper | cB64
			if b <= 'F' {
				t[c] |= cHex
			}
		case b >= 'a' && b <= 'z':
			t[c] = cWord | cLower | cB64
			if b <= 'f' {
				t[c] |= cHex
			}
		case b == '_':
			t[c] = cWord | cB64
		case b == '-':
			t[c] = cB64
		}
		if t[c]&(cDigit|cUpper) != 0 || b == '_' || b == '-' || b == '@' || b == '+' || b == '(' || b == ':' {
			t[c] |= cLoud
		}
	}
	return t
}()

const (
	cWord  = 1 << iota // [A-Za-z0-9_]
	cDigit             // [0-9]
	cUpper             // [A-Z]
	cLower             // [a-z]
	cHex               // [0-9A-Fa-f]
	cB64               // base64url alphabet [A-Za-z0-9_-]
	cLoud              // may start or end a match: [A-Z0-9_@+(:-] (see skipQuiet)
)

func isWord(c byte) bool  { return classes[c]&cWord != 0 }
func isDigit(c byte) bool { return classes[c]&cDigit != 0 }
func isUpper(c byte) bool { return classes[c]&cUpper != 0 }
func isHex(c byte) bool   { return classes[c]&cHex != 0 }
func isAlnum(c byte) bool { return classes[c]&(cDigit|cUpper|cLower) != 0 }
func isB64(c byte) bool   { return classes[c]&cB64 != 0 }

// span returns the end of the run of bytes starting at i that satisfy ok.
func span(text []byte, i int, ok func(byte) bool) int {
	for i < len(text) && ok(text[i]) {
		i++
	}
	return i
}

// hasPrefixAt reports whether text[i:] starts with p.
func hasPrefixAt(text []byte, i int, p string) bool {
	return len(text)-i >= len(p) && string(text[i:i+len(p)]) == p
}

// boundaryAt reports whether a token may end at i: end of text or a byte that
// cannot continue a word.
func boundaryAt(text []byte, i int) bool { return i >= len(text) || !isWord(text[i]) }
