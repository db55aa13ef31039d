package pii

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
)

// awsKey matches AWS access key ids: AKIA (long-term) or ASIA (temporary)
// followed by 16 upper-case letters or digits.
func (sc *scan) awsKey(i int) int {
	t := sc.text
	if !sc.on(kAWSAccessKey) || !(hasPrefixAt(t, i, "AKIA") || hasPrefixAt(t, i, "ASIA")) {
		return 0
	}
	end := span(t, i+4, func(c byte) bool { return isUpper(c) || isDigit(c) })
	if end-i != 20 || !boundaryAt(t, end) {
		return 0
	}
	sc.emit(AWSAccessKey, i, end, 0.95)
	return end
}

// googleKey matches Google API keys: AIza followed by 35 base64url bytes.
func (sc *scan) googleKey(i int) int {
	t := sc.text
	if !sc.on(kGoogleAPIKey) || !hasPrefixAt(t, i, "AIza") {
		return 0
	}
	end := span(t, i+4, isB64)
	if end-i != 39 {
		return 0
	}
	sc.emit(GoogleAPIKey, i, end, 0.95)
	return end
}

// githubToken matches GitHub tokens: ghp_, gho_, ghu_, ghs_ and ghr_ with a
// 36-byte body (accepting 30 to 255 to allow for format changes) and
// fine-grained github_pat_ tokens.
func (sc *scan) githubToken(i int) int {
	t := sc.text
	if !sc.on(kGitHubToken) {
		return 0
	}
	if hasPrefixAt(t, i, "github_pat_") {
		end := span(t, i+11, isWord)
		if n := end - i - 11; n < 22 || n > 255 {
			return 0
		}
		sc.emit(GitHubToken, i, end, 0.95)
		return end
	}
	if len(t)-i < 4 || t[i+1] != 'h' || t[i+3] != '_' {
		return 0
	}
	switch t[i+2] {
	case 'p', 'o', 'u', 's', 'r':
	default:
		return 0
	}
	end := span(t, i+4, isAlnum)
	if n := end - i - 4; n < 30 || n > 255 || !boundaryAt(t, end) {
		return 0
	}
	sc.emit(GitHubToken, i, end, 0.95)
	return end
}

// slackToken matches Slack tokens: xoxb-, xoxa-, xoxp-, xoxr- and xoxs-
// followed by dash-separated alphanumerics.
func (sc *scan) slackToken(i int) int {
	t := sc.text
	if !sc.on(kSlackToken) || !hasPrefixAt(t, i, "xox") || len(t)-i < 5 || t[i+4] != '-' {
		return 0
	}
	switch t[i+3] {
	case 'b', 'a', 'p', 'r', 's':
	default:
		return 0
	}
	end := span(t, i+5, func(c byte) bool { return isAlnum(c) || c == '-' })
	if end-i-5 < 10 || !boundaryAt(t, end) {
		return 0
	}
	sc.emit(SlackToken, i, end, 0.9)
	return end
}

// stripeKey matches Stripe secret and restricted keys, live and test.
func (sc *scan) stripeKey(i int) int {
	t := sc.text
	if !sc.on(kStripeKey) {
		return 0
	}
	var score float64
	switch {
	case hasPrefixAt(t, i, "sk_live_"), hasPrefixAt(t, i, "rk_live_"):
		score = 0.95
	case hasPrefixAt(t, i, "sk_test_"), hasPrefixAt(t, i, "rk_test_"):
		score = 0.7 // test keys move no money but still grant API access
	default:
		return 0
	}
	end := span(t, i+8, isAlnum)
	if end-i-8 < 16 || !boundaryAt(t, end) {
		return 0
	}
	sc.emit(StripeKey, i, end, score)
	return end
}

// openAIKey matches OpenAI keys: sk- (legacy) and sk-proj-, sk-svcacct-,
// sk-admin- with a long base64url body that mixes letters and digits, which is
// what separates a key from prose such as "sk-learn-compatible".
func (sc *scan) openAIKey(i int) int {
	t := sc.text
	if !sc.on(kOpenAIKey) || !hasPrefixAt(t, i, "sk-") {
		return 0
	}
	end := span(t, i+3, isB64)
	if end-i-3 < 20 {
		return 0
	}
	var letters, digits bool
	for _, c := range t[i+3 : end] {
		letters = letters || classes[c]&(cUpper|cLower) != 0
		digits = digits || isDigit(c)
	}
	if !letters || !digits {
		return 0
	}
	sc.emit(OpenAIKey, i, end, 0.9)
	return end
}

// jwt matches JSON Web Tokens: three base64url parts separated by dots whose
// first part decodes to a JSON object. "eyJ" is how every base64url-encoded
// JSON object ({"...) begins.
func (sc *scan) jwt(i int) int {
	t := sc.text
	if !sc.on(kJWT) || !hasPrefixAt(t, i, "eyJ") {
		return 0
	}
	isPart := func(c byte) bool { return isB64(c) }
	h := span(t, i, isPart)
	if h-i < 10 || h >= len(t) || t[h] != '.' {
		return 0
	}
	p := span(t, h+1, isPart)
	if p-h-1 < 2 || p >= len(t) || t[p] != '.' {
		return 0
	}
	end := span(t, p+1, isPart) // an empty signature is legal (alg "none")
	if !boundaryAt(t, end) {
		return 0
	}
	header := make([]byte, base64.RawURLEncoding.DecodedLen(h-i))
	n, err := base64.RawURLEncoding.Decode(header, t[i:h])
	if err != nil || !json.Valid(header[:n]) || header[0] != '{' {
		return 0
	}
	sc.emit(JWT, i, end, 0.9)
	return end
}

// privateKey matches PEM private key blocks ("-----BEGIN RSA PRIVATE KEY-----"
// and friends) up to and including the END line. A block cut off before its END
// line still leaks the key, so it runs to the end of the text.
func (sc *scan) privateKey(i int) int {
	t := sc.text
	const begin = "-----BEGIN "
	if !sc.on(kPrivateKey) || !hasPrefixAt(t, i, begin) {
		return 0
	}
	// The label is a few upper-case words, e.g. "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY".
	j := span(t, i+len(begin), func(c byte) bool { return isUpper(c) || isDigit(c) || c == ' ' })
	label := t[i+len(begin) : j]
	if len(label) > 40 || !bytes.HasSuffix(label, []byte("PRIVATE KEY")) || !hasPrefixAt(t, j, "-----") {
		return 0
	}
	end := len(t)
	if k := bytes.Index(t[j:], []byte("-----END ")); k >= 0 {
		if m := bytes.Index(t[j+k+9:], []byte("-----")); m >= 0 {
			end = j + k + 9 + m + 5
		}
	}
	sc.emit(PrivateKey, i, end, 0.99)
	return end
}
