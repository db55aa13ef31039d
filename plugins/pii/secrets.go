package pii

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"hash/crc32"
)

// awsKey matches AWS access key ids: AKIA (long-term) or ASIA (temporary)
// followed by 16 upper-case letters or digits.
//
// A key glued to the words around it ("keyAKIAIOSFODNN7EXAMPLE",
// "AWS_KEY_AKIA…_prod") is found when the boundary is one a reader sees: a
// change from lower to upper case, or an underscore, on either side. Upper-case
// letters or digits on either side make a longer token, which is not a key.
// The start case is gluedAWSKey's; here the key starts at i.
func (sc *scan) awsKey(i int) int {
	t := sc.text
	if !sc.on(kAWSAccessKey) || !(hasPrefixAt(t, i, "AKIA") || hasPrefixAt(t, i, "ASIA")) {
		return 0
	}
	end := span(t, i+4, func(c byte) bool { return isUpper(c) || isDigit(c) })
	if end-i != 20 || end < len(t) && (isUpper(t[end]) || isDigit(t[end])) {
		return 0
	}
	if placeholder(t[i+4 : end]) {
		return end // AWS's own documentation key, AKIAIOSFODNN7EXAMPLE, and the like
	}
	sc.emit(AWSAccessKey, i, end, 0.95)
	return end
}

// gluedAWSKey looks for an AWS access key id inside the word from start to
// end, after a lower-case letter or an underscore (see awsKey), and returns the
// end of the first one found, or 0. Only words of more than 20 bytes can hold
// one.
func (sc *scan) gluedAWSKey(start, end int) int {
	t := sc.text
	if !sc.on(kAWSAccessKey) {
		return 0
	}
	for k := start + 1; k+20 <= end; k++ {
		if t[k] == 'A' && (t[k+1] == 'K' || t[k+1] == 'S') && t[k+2] == 'I' && t[k+3] == 'A' &&
			(classes[t[k-1]]&cLower != 0 || t[k-1] == '_') {
			if e := sc.awsKey(k); e > 0 {
				return e
			}
		}
	}
	return 0
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
	if placeholder(t[i+4 : end]) {
		return end
	}
	sc.emit(GoogleAPIKey, i, end, 0.95)
	return end
}

// githubToken matches GitHub tokens: ghp_, gho_, ghu_, ghs_ and ghr_ with a
// 36-character body whose last six characters are the base62 CRC32 of the
// first thirty (GitHub's published format, which placeholders such as
// "ghp_xxxx…" fail), and fine-grained github_pat_ tokens: 22 and 59
// alphanumerics joined by '_'.
func (sc *scan) githubToken(i int) int {
	t := sc.text
	if !sc.on(kGitHubToken) {
		return 0
	}
	if hasPrefixAt(t, i, "github_pat_") {
		a := span(t, i+11, isAlnum)
		if a-i-11 != 22 || a >= len(t) || t[a] != '_' {
			return 0
		}
		end := span(t, a+1, isAlnum)
		if end-a-1 != 59 || !boundaryAt(t, end) {
			return 0
		}
		if placeholder(t[i+11 : end]) {
			return end
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
	if end-i-4 != 36 || !boundaryAt(t, end) || !githubChecksum(t[i+4:end]) {
		return 0
	}
	if placeholder(t[i+4 : end]) {
		return end
	}
	sc.emit(GitHubToken, i, end, 0.99)
	return end
}

// githubChecksum reports whether the last six base62 digits of body encode
// the CRC32 of the rest.
func githubChecksum(body []byte) bool {
	n := len(body) - 6
	var sum uint64
	for _, c := range body[n:] {
		var d byte
		switch {
		case isDigit(c):
			d = c - '0'
		case isUpper(c):
			d = c - 'A' + 10
		default:
			d = c - 'a' + 36
		}
		sum = sum*62 + uint64(d)
	}
	return sum == uint64(crc32.ChecksumIEEE(body[:n]))
}

// slackToken matches Slack tokens: xoxb-, xoxa-, xoxp-, xoxr- and xoxs-
// (bot, app, user, refresh, session) and xapp- (app-level) followed by
// dash-separated alphanumerics.
func (sc *scan) slackToken(i int) int {
	t := sc.text
	if !sc.on(kSlackToken) || len(t)-i < 5 || t[i+4] != '-' {
		return 0
	}
	switch {
	case hasPrefixAt(t, i, "xapp"):
	case hasPrefixAt(t, i, "xox"):
		switch t[i+3] {
		case 'b', 'a', 'p', 'r', 's':
		default:
			return 0
		}
	default:
		return 0
	}
	end := span(t, i+5, func(c byte) bool { return isAlnum(c) || c == '-' })
	if end-i-5 < 10 || !boundaryAt(t, end) {
		return 0
	}
	if placeholder(t[i+5 : end]) {
		return end // "xoxb-your-bot-token"
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
	if placeholder(t[i+8 : end]) {
		return end
	}
	sc.emit(StripeKey, i, end, score)
	return end
}

// openAIKey matches OpenAI keys: sk- (legacy) and sk-proj-, sk-svcacct-,
// sk-admin- with a long base64url body that mixes letters and digits, which is
// what separates a key from prose such as "sk-learn-compatible". Keys that
// carry "T3BlbkFJ" (base64 of "OpenAI", which OpenAI embeds in the keys it
// issues) score higher. Other vendors' "sk-" keys (Anthropic's "sk-ant-")
// are reported as OPENAI_KEY too, for want of a type of their own.
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
	if placeholder(t[i+3 : end]) {
		return end
	}
	score := 0.9
	if bytes.Contains(t[i+3:end], []byte("T3BlbkFJ")) {
		score = 0.97
	}
	sc.emit(OpenAIKey, i, end, score)
	return end
}

// jwt matches JSON Web Tokens: three base64url parts separated by dots whose
// first part decodes to a JSON object with an "alg" member, as RFC 7515
// requires of every JWS header. "eyJ" is how every base64url-encoded JSON
// object ({"...) begins; the "alg" check turns away other encoded JSON such as
// cursors and cookies that happen to have dots in them.
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
	var fields struct {
		Alg *string `json:"alg"`
	}
	if err != nil || header[0] != '{' || json.Unmarshal(header[:n], &fields) != nil || fields.Alg == nil || *fields.Alg == "" {
		return 0
	}
	if placeholder(t[p+1 : end]) {
		return end // a signature such as "your-signature-here"
	}
	sc.emit(JWT, i, end, 0.9)
	return end
}

// minKeyBody is the fewest base64 characters a private key body can have: an
// Ed25519 key in PKCS #8, the smallest in use, is 48 bytes.
const minKeyBody = 64

// privateKey matches PEM private key blocks ("-----BEGIN RSA PRIVATE KEY-----"
// and friends) up to and including the END line. The body must be base64 of
// at least minKeyBody characters, which turns away code and docs that only
// name the header or hold a placeholder ("<paste your key here>", "..."). It
// may be indented, carry RFC 1421 headers (Proc-Type, DEK-Info) and have its
// line breaks written as "\n" escapes, as in a JSON credentials file. A block
// cut off before its END line still leaks the key, so it then ends with its
// body.
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
	j += 5
	body, end := 0, j
	for j < len(t) {
		c := t[j]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			j++
		case c == '\\' && j+1 < len(t) && (t[j+1] == 'n' || t[j+1] == 'r'):
			j += 2
		case isAlnum(c) || c == '+' || c == '/' || c == '=':
			if line := j + bytes.IndexAny(t[j:min(len(t), j+80)], ":\n\\"); line >= j && t[line] == ':' && body == 0 {
				j = span(t, line, func(c byte) bool { return c != '\n' && c != '\\' }) // a header line
				continue
			}
			j++
			body++
			end = j
		case c == '-' && hasPrefixAt(t, j, "-----END "):
			if body < minKeyBody {
				return 0
			}
			if k := bytes.Index(t[j+9:min(len(t), j+9+64)], []byte("-----")); k >= 0 {
				end = j + 9 + k + 5
			}
			sc.emit(PrivateKey, i, end, 0.99)
			return end
		default:
			j = len(t) + 1 // anything else ends the body
		}
	}
	if body < minKeyBody {
		return 0
	}
	sc.emit(PrivateKey, i, end, 0.99)
	return end
}

// slackWebhook matches a Slack incoming-webhook URL, whose path is the
// credential: hooks.slack.com/services/T…/B…/… with a team id, a bot id and a
// secret. It is called at the team id (i, a 'T' after '/') and looks back for
// the host and an http or https scheme, which the finding covers too.
func (sc *scan) slackWebhook(i int) int {
	t := sc.text
	const host = "hooks.slack.com/services/"
	if !sc.on(kSlackToken) || i < len(host) || string(t[i-len(host):i]) != host {
		return 0
	}
	start := i - len(host)
	for _, scheme := range []string{"https://", "http://"} {
		if start >= len(scheme) && string(t[start-len(scheme):start]) == scheme {
			start -= len(scheme)
			break
		}
	}
	if start < sc.lastEnd || start > 0 && (isWord(t[start-1]) || t[start-1] == '.') {
		return 0 // "evilhooks.slack.com" or "x.hooks.slack.com" is another host
	}
	upperID := func(c byte) bool { return isUpper(c) || isDigit(c) }
	team := span(t, i+1, upperID)
	if team-i < 9 || team-i > 13 || team+1 >= len(t) || t[team] != '/' || t[team+1] != 'B' {
		return 0
	}
	bot := span(t, team+2, upperID)
	if bot-team-1 < 9 || bot-team-1 > 13 || bot+1 >= len(t) || t[bot] != '/' {
		return 0
	}
	end := span(t, bot+1, isAlnum)
	if end-bot-1 < 20 || end-bot-1 > 40 || !boundaryAt(t, end) {
		return 0
	}
	if placeholder(t[i+1:team]) || placeholder(t[team+2:bot]) || placeholder(t[bot+1:end]) {
		return end // Slack's documented T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX
	}
	sc.emit(SlackToken, start, end, 0.95)
	return end
}

// placeholderWords mark a value written to show the shape of a secret, not
// to hold one. Matched in any case; issued keys are random letters and
// digits, in which these words occur too rarely to matter.
var placeholderWords = []string{"example", "your", "xxxx", "placeholder", "replace", "changeme",
	"dummy", "sample", "redacted", "insert", "here", "fake", "test", "token", "secret"}

// placeholder reports whether body, the random part of a key or token (its
// fixed prefix removed), is a stand-in rather than a credential: it holds a
// placeholder word ("xoxb-your-bot-token", "AKIAIOSFODNN7EXAMPLE",
// "REPLACE_ME"), a run of five or more of one character ("sk-xxxx…",
// "T00000000"), or a run of six or more consecutive digits or letters
// ("123456", "abcdef").
func placeholder(body []byte) bool {
	same, up := 1, 1
	for k := 1; k < len(body); k++ {
		prev, c := body[k-1], body[k]
		if c|0x20 == prev|0x20 && isAlnum(c) {
			same++
		} else {
			same = 1
		}
		if isAlnum(c) && isAlnum(prev) && c|0x20 == prev|0x20+1 && isDigit(c) == isDigit(prev) {
			up++
		} else {
			up = 1
		}
		if same >= 5 || up >= 6 {
			return true
		}
	}
	for k := range body {
		c := body[k] | 0x20
		for _, w := range placeholderWords {
			if c == w[0] && hasPrefixFold(body[k:], w) {
				return true
			}
		}
	}
	return false
}
