package pii

// A number run is what the numeric recognizers share: digit groups joined by
// short separators ("(555) 123-4567", "4111 1111 1111 1111", "10.0.0.1"),
// optionally preceded by '+' and/or '('.
type run struct {
	plus, paren bool // the run starts with '+' / '('
	groups      []group
}

type group struct {
	start, end int // digit span
	sep        sep // separator before this group (0 for the first)
}

const maxGroups = 8

func (r *run) digits(upto int) int {
	n := 0
	for _, g := range r.groups[:upto] {
		n += g.end - g.start
	}
	return n
}

// number tries phone, card, SSN and IPv4 at i (a digit, '+' or '('). On
// failure it returns the end of the run so the caller does not retry in the
// middle of it: "1.2.3.4.5" must not become the address "2.3.4.5".
func (sc *scan) number(i int) int {
	t := sc.text
	before := compoundBefore(t, i)
	if before == gluedToWord {
		return skipRun(t, i)
	}
	var buf [maxGroups]group
	r := run{groups: buf[:0]}
	j := i
	if t[j] == '+' {
		r.plus = true
		j++
	}
	if j < len(t) && t[j] == '(' {
		r.paren = true
		j++
	}
	for len(r.groups) < maxGroups {
		start := j
		j = span(t, j, isDigit)
		if j == start {
			break
		}
		g := group{start: start, end: j}
		if len(r.groups) > 0 {
			g.sep = sepOf(t[r.groups[len(r.groups)-1].end:start])
		}
		r.groups = append(r.groups, g)
		// A separator is one to three of " -.()/" followed by a digit.
		k := j
		for k < len(t) && k-j < 3 && isNumSep(t[k]) {
			k++
		}
		if k == j || k >= len(t) || !isDigit(t[k]) {
			break
		}
		j = k
	}
	if len(r.groups) == 0 {
		return 0
	}
	runEnd := r.groups[len(r.groups)-1].end
	// A run glued to letters is part of an identifier, hash, UUID or timestamp
	// ("2024-01-15T10:00", "9f86d08..."), and one followed by '@' is the local
	// part of an e-mail address.
	if !boundaryAt(t, runEnd) || (runEnd < len(t) && t[runEnd] == '@') {
		return skipRun(t, i)
	}
	// Dates, amounts and counts are the usual runs. Every recognizer below needs
	// four groups (IPv4), nine digits (SSN, cards, North American phones) or a
	// '+', so a shorter run is done with here: calls are dear in WebAssembly.
	if !r.plus && len(r.groups) < 4 && r.digits(len(r.groups)) < 9 {
		return runEnd
	}
	if before == markedIdentifier {
		// "#4111…" and "/orders/4111…" name a record, but a number that passes
		// a card's checksum is a card number wherever it is written.
		if !r.plus && !r.paren {
			if end := sc.card(i, &r); end > 0 {
				return end
			}
		}
		return skipRun(t, i)
	}
	if end := sc.ipv4(i, &r); end > 0 {
		return end
	}
	if !r.plus && !r.paren {
		if end := sc.ssn(i, &r); end > 0 {
			return end
		}
		if end := sc.card(i, &r); end > 0 {
			return end
		}
	}
	if end := sc.phone(i, &r); end > 0 {
		return end
	}
	return runEnd
}

// sep is a separator of one to three bytes packed into an integer, so that
// comparing separators costs no allocation.
type sep uint32

const (
	sepSpace      sep = ' '
	sepDash       sep = '-'
	sepDot        sep = '.'
	sepParen      sep = ')'
	sepParenSpace sep = ')' | ' '<<8
)

func sepOf(b []byte) sep {
	var s sep
	for k, c := range b {
		s |= sep(c) << (8 * k)
	}
	return s
}

// isNumSep reports whether c may join digit groups. '/' only ever makes a
// phone number ("089/1234567"): every other recognizer asks for a specific
// separator.
func isNumSep(c byte) bool {
	return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/'
}

// What stands just before a number run.
const (
	freeStanding     = iota
	markedIdentifier // '#' or a path segment: "#4111…", "/orders/4111…"
	gluedToWord      // "ORD-1234", "build.1.2.3.4", "v_12", a time "03:04:05"
)

// compoundBefore says whether a number at i continues an identifier such as
// "ORD-1234" or "build.1.2.3.4" (gluedToWord), follows a mark that makes it a
// record's number, such as "#4111..." or "/orders/4111..." (markedIdentifier),
// or stands free.
func compoundBefore(t []byte, i int) int {
	if i == 0 {
		return freeStanding
	}
	switch t[i-1] {
	case '#':
		return markedIdentifier
	case '/':
		if i >= 2 && isAlnum(t[i-2]) {
			return markedIdentifier
		}
	case '.', '-', '_':
		if i >= 2 && isAlnum(t[i-2]) {
			return gluedToWord
		}
	case ':':
		if i >= 2 && isDigit(t[i-2]) {
			return gluedToWord // a time or a port: "03:04:05.000000006"
		}
	}
	return freeStanding
}

// skipRun returns the end of the identifier-like run at i: word bytes joined
// by '.', '-', '(' or ')'. A '/' ends it, so that a path does not swallow what
// follows it.
func skipRun(t []byte, i int) int {
	return span(t, i+1, func(c byte) bool { return isWord(c) || c == '.' || c == '-' || c == '(' || c == ')' })
}

// word is a short lower-cased word copied out of the text, kept in an array
// so that looking at context allocates nothing. Longer words keep their last
// bytes and match nothing.
type word struct {
	b [24]byte
	n int
}

func (w *word) is(candidates ...string) bool {
	for _, c := range candidates {
		if string(w.b[:w.n]) == c {
			return true
		}
	}
	return false
}

// prevWords returns up to two lower-cased words before i, nearest first (see
// lastWords).
func prevWords(t []byte, i int) (w1, w2 word) {
	var ws [2]word
	lastWords(t, i, ws[:])
	return ws[0], ws[1]
}

// lastWords fills ws with the lower-cased words before i, nearest first,
// skipping separators such as spaces, ':', '#' and '='. Bytes of multi-byte
// UTF-8 characters are letters here, so that "versión" and "référence" are
// words; only ASCII is lower-cased.
func lastWords(t []byte, i int, ws []word) {
	letter := func(c byte) bool { return isAlnum(c) || c >= 0x80 }
	end := i
	for k := range ws {
		w := &ws[k]
		for end > 0 && end > i-32 && !letter(t[end-1]) {
			end--
		}
		start := end
		for start > 0 && end-start < len(w.b) && letter(t[start-1]) {
			start--
		}
		for _, c := range t[start:end] {
			if isUpper(c) {
				c += 'a' - 'A'
			}
			w.b[w.n] = c
			w.n++
		}
		end = start
	}
}

// referenceWords introduce identifiers: orders, invoices, accounts, parcels.
// A number after one of them is the identifier, whatever checksum it passes.
// "no", "nr" and "number" are not in the list: they take their meaning from
// the word before ("account no.", "card number"), which is looked at too.
var referenceWords = []string{
	"order", "invoice", "tracking", "ticket", "ref", "reference", "txn", "transaction", "isbn",
	"id", "uuid", "sku", "serial", "case", "build", "version", "po", "account",
	// German
	"bestellung", "bestellnummer", "rechnung", "rechnungsnummer", "kundennummer", "auftrag",
	"auftragsnummer", "vertragsnummer", "sendungsnummer", "lieferschein",
	// French
	"commande", "facture", "référence", "réf", "dossier", "colis",
	// Spanish
	"pedido", "factura", "referencia", "seguimiento",
}

// referenceContext reports whether the words before i say the number is an
// identifier rather than personal data ("order 4111...", "ticket no. 555-...").
func referenceContext(t []byte, i int) bool {
	w1, w2 := prevWords(t, i)
	return w1.is(referenceWords...) || w2.is(referenceWords...)
}

// versionWords introduce dotted numbers that are versions or the numbers of
// sections in a document ("RFC 8446, Section 4.2.11.2"), not addresses.
var versionWords = []string{"v", "ver", "version", "versión", "versione", "release", "build",
	"firmware", "os", "kernel", "rfc", "section", "§", "chapter", "clause", "paragraph",
	"appendix", "abschnitt", "kapitel", "sección", "apartado", "chapitre"}

// ipv4 matches dotted quads. A fifth part or a version context
// ("version 1.2.3.4", "v 10.0.0.1") rules the run out, and so do addresses
// that identify no host: unspecified, loopback, netmasks and broadcast
// (255.255.255.0), and network addresses written as a CIDR prefix (10.0.0.0/8).
func (sc *scan) ipv4(i int, r *run) int {
	if r.plus || r.paren || len(r.groups) < 4 || !sc.on(kIPAddress) {
		return 0
	}
	t := sc.text
	var addr uint32
	for k, g := range r.groups[:4] {
		if k > 0 && g.sep != sepDot {
			return 0
		}
		n := g.end - g.start
		if n > 3 || n > 1 && t[g.start] == '0' {
			return 0
		}
		v := 0
		for _, c := range t[g.start:g.end] {
			v = v*10 + int(c-'0')
		}
		if v > 255 {
			return 0
		}
		addr = addr<<8 | uint32(v)
	}
	if len(r.groups) > 4 && r.groups[4].sep == sepDot {
		return 0
	}
	end := r.groups[3].end
	if end+1 < len(t) && t[end] == '.' && isDigit(t[end+1]) {
		return 0
	}
	if addr == 0 || addr>>24 == 127 || addr>>24 == 255 && (^addr)&(^addr+1) == 0 || isNetwork(t, end, addr) {
		return 0
	}
	if w1, w2 := prevWords(t, i); w1.is(versionWords...) || w2.is(versionWords...) {
		return 0
	}
	score := 0.7
	if addr>>24 == 10 || addr>>20 == 172<<4|1 || addr>>16 == 192<<8|168 {
		score = 0.5 // private: still an address, less often a person's
	}
	sc.emit(IPAddress, i, end, score)
	return end
}

// isNetwork reports whether the address addr, ending at i, is followed by a
// CIDR prefix length shorter than 32 that leaves no host bits set: a network
// such as 10.0.0.0/8 rather than a host.
func isNetwork(t []byte, i int, addr uint32) bool {
	bits := prefixLen(t, i)
	return bits >= 0 && bits < 32 && addr<<bits == 0
}

// prefixLen returns the CIDR prefix length written at i ("/24"), or -1.
func prefixLen(t []byte, i int) int {
	if i+1 >= len(t) || t[i] != '/' || !isDigit(t[i+1]) {
		return -1
	}
	end := span(t, i+1, isDigit)
	if end-i-1 > 3 {
		return -1
	}
	bits := 0
	for _, c := range t[i+1 : end] {
		bits = bits*10 + int(c-'0')
	}
	return bits
}

// ssn matches US social security numbers with valid ranges: the area is not
// 000, 666 or 9xx, the group not 00 and the serial not 0000. They are written
// AAA-GG-SSSS, or with spaces, dots or slashes in place of the dashes; with an
// SSN label shortly before (see ssnLabel), also as nine digits in a row, which
// without one are too often something else. A reference word ("order",
// "ticket") before the number makes it an identifier, unless a label says
// otherwise.
func (sc *scan) ssn(i int, r *run) int {
	if !sc.on(kUSSSN) {
		return 0
	}
	t := sc.text
	g := r.groups
	var area, grp, serial []byte
	var end int
	bare := false // nine digits in a row
	switch {
	case len(g) >= 3 && glen(g[0]) == 3 && glen(g[1]) == 2 && glen(g[2]) == 4:
		s := g[1].sep
		if g[2].sep != s || s != sepDash && s != sepSpace && s != sepDot && s != '/' {
			return 0
		}
		if len(g) > 3 && g[3].sep == s {
			return 0 // a longer grouped number
		}
		area, grp, serial, end = t[g[0].start:g[0].start+3], t[g[1].start:g[1].end], t[g[2].start:g[2].end], g[2].end
	case glen(g[0]) == 9 && (len(g) == 1 || g[1].sep == sepSpace):
		d := t[g[0].start:g[0].end]
		area, grp, serial, end, bare = d[:3], d[3:5], d[5:], g[0].end, true
	default:
		return 0
	}
	if string(area) == "000" || string(area) == "666" || area[0] == '9' ||
		string(grp) == "00" || string(serial) == "0000" {
		return 0
	}
	label := sc.ssnLabel(i)
	if bare && !label {
		return 0
	}
	score := 0.85
	if label {
		score = 0.95
	} else if referenceContext(t, i) {
		return 0
	}
	sc.emit(USSSN, i, end, score)
	return end
}

// ssnLabel reports whether an SSN label stands in the 32 bytes before i, on
// the same line and clause and after the last finding: "SSN", "SS#", "social
// security number", "social security no.", in any case.
func (sc *scan) ssnLabel(i int) bool {
	lo := max(0, i-32, sc.lastEnd)
	for k := i - 1; k >= lo; k-- {
		if c := sc.text[k]; c == '\n' || c == ';' {
			lo = k + 1
			break
		}
	}
	w := sc.text[lo:i]
	for k := 0; k+3 <= len(w); k++ {
		if k > 0 && classes[w[k-1]]&(cUpper|cLower) != 0 {
			continue // inside a word: "lessn", "class#"
		}
		switch c := w[k] | 0x20; {
		case c == 's' && w[k+1]|0x20 == 's' && (w[k+2]|0x20 == 'n' || w[k+2] == '#'):
			return true
		case c == 's' && hasPrefixFold(w[k:], "social security"):
			return true
		}
	}
	return false
}

// hasPrefixFold reports whether b starts with the lower-case ASCII prefix p,
// ignoring case.
func hasPrefixFold(b []byte, p string) bool {
	if len(b) < len(p) {
		return false
	}
	for k := range len(p) {
		c := b[k]
		if isUpper(c) {
			c += 'a' - 'A'
		}
		if c != p[k] {
			return false
		}
	}
	return true
}

// card matches payment card numbers: 13 to 19 digits, either contiguous or
// grouped with one consistent separator (space or dash), with a known issuer
// prefix and a valid Luhn check digit. The longest valid prefix of the run wins.
func (sc *scan) card(i int, r *run) int {
	if !sc.on(kCreditCard) {
		return 0
	}
	t := sc.text
	var digits [19]byte
	n, best, bestGroups := 0, 0, 0
	for k, g := range r.groups {
		if k > 0 && (g.sep != r.groups[1].sep || g.sep != sepSpace && g.sep != sepDash) {
			break
		}
		if n+g.end-g.start > len(digits) {
			break
		}
		n += copy(digits[n:], t[g.start:g.end])
		if n >= 13 && validIIN(digits[:n]) && luhn(digits[:n]) {
			best, bestGroups = n, k+1
		}
	}
	if best == 0 {
		return 0
	}
	// The issuer prefix, length and Luhn digit decide; words around only move
	// the score. A reference word ("order 4111 1111 1111 1111", "account no.")
	// does not rule a card out: whoever reads the text can charge it.
	score := 0.95
	if bestGroups == 1 {
		score = 0.8 // contiguous digits are more often account or order numbers
	}
	if w1, w2 := prevWords(t, i); w1.is(cardWords...) || w2.is(cardWords...) {
		score += 0.04
	}
	end := r.groups[bestGroups-1].end
	sc.emit(CreditCard, i, end, score)
	return end
}

// cardWords say that the number after them is a payment card.
var cardWords = []string{"card", "visa", "mastercard", "amex", "cc", "pan", "credit", "debit",
	"karte", "kreditkarte", "carte", "tarjeta", "carta"}

// validIIN reports whether d starts with an issuer prefix of a major card
// network and has a length that network uses.
func validIIN(d []byte) bool {
	n := len(d)
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p4 := p2*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p2 == 35: // JCB
		return n >= 16 && n <= 19
	case p2 == 36 || p2 == 38 || p2 == 39 || p4 >= 3000 && p4 <= 3059: // Diners Club
		return n >= 14 && n <= 19
	case p4 == 6011 || p2 == 65 || p4 >= 6440 && p4 <= 6499, p2 == 62: // Discover, UnionPay
		return n >= 16 && n <= 19
	}
	return false
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// phone matches the ways people write phone numbers, each with a shape that
// amounts, dates and identifiers do not have:
//   - international numbers with a leading '+' (8 to 15 digits, E.164; the
//     country code never starts with 0);
//   - North American numbers with separators, optionally after a "1":
//     (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199;
//   - national numbers with a trunk prefix, as in most of Europe: five pairs
//     (06 12 34 56 78), or a 0 and a 1-to-4-digit area code, then the subscriber
//     number, 9 to 12 digits in all (030 12345678, 089/1234567, 020 7946 0958,
//     06-12345678);
//   - nine-digit numbers without a trunk prefix starting with 6 to 9, as in
//     Spain, when grouped with pairs (612 34 56 78, 91 123 45 67), or in threes
//     after a word such as "phone" or "móvil".
//
// Unseparated digit strings are left alone: they are usually ids, amounts or
// timestamps.
func (sc *scan) phone(i int, r *run) int {
	if !sc.on(kPhone) {
		return 0
	}
	t := sc.text
	g := r.groups
	if r.plus {
		if t[g[0].start] == '0' {
			return 0
		}
		n, last := 0, -1
		for k := range g {
			if n+g[k].end-g[k].start > 15 {
				break
			}
			n += g[k].end - g[k].start
			last = k
		}
		if n < 8 || last < 0 || last < len(g)-1 && g[last+1].sep != sepSpace {
			return 0 // shorter than any E.164 number, or running into more digits
		}
		for _, p := range g[1 : last+1] {
			if p.sep == sepDot && glen(p) > 4 {
				return 0 // a signed decimal: "m=+123.456789000"
			}
		}
		return sc.emitPhone(i, g[last].end, 0.8)
	}
	if end := nanp(t, g, r.paren); end > 0 {
		return sc.emitPhone(i, end, 0.7)
	}
	if end := trunkNumber(t, g, r.paren); end > 0 {
		return sc.emitPhone(i, end, 0.7)
	}
	if r.paren {
		return 0
	}
	if len(g) == 1 && glen(g[0]) == 11 && t[g[0].start] == '0' && t[g[0].start+1] >= '6' {
		// An Indian mobile number with its trunk prefix: 0, then ten digits
		// starting with 6 to 9 ("09876543210"), the one national format
		// written unseparated often enough to look for.
		return sc.emitPhone(i, g[0].end, 0.6)
	}
	label := phoneContext(t, i)
	if end, pairs := nineDigitNumber(t, g); end > 0 && (pairs || label) {
		return sc.emitPhone(i, end, 0.6)
	}
	if label {
		if end := labelledNumber(g); end > 0 {
			return sc.emitPhone(i, end, 0.6)
		}
	}
	return 0
}

// labelledNumber returns the end of a number of 9 to 15 digits at the start
// of g, contiguous or grouped by spaces or dashes (dotted runs are addresses
// and versions; trunkNumber has the dotted pairs of France): a national number, or
// an international one written without its '+', which a phone word before it
// has already said is one ("WhatsApp 447911123456", "mobile 98765 43210").
func labelledNumber(g []group) int {
	n, last := 0, -1
	for k, p := range g {
		if k > 0 && p.sep != sepSpace && p.sep != sepDash {
			if p.sep == sepDot {
				return 0
			}
			break
		}
		if n += glen(p); n > 15 {
			return 0
		}
		last = k
	}
	if n < 9 {
		return 0
	}
	return g[last].end
}

func (sc *scan) emitPhone(start, end int, score float64) int {
	if referenceContext(sc.text, start) {
		return 0
	}
	sc.emit(Phone, start, end, score)
	return end
}

func glen(g group) int { return g.end - g.start }

// nanp returns the end of a North American number at the start of g, or 0.
func nanp(t []byte, g []group, paren bool) int {
	if !paren && len(g) >= 4 && glen(g[0]) == 1 && t[g[0].start] == '1' {
		// "1-800-555-0199", "1 (800) 555-0199": the country code, then the number.
		s := g[1].sep
		paren = s == '(' || s == ' '|'('<<8
		if !paren && s != g[2].sep {
			return 0
		}
		g = g[1:]
	}
	if len(g) < 3 || glen(g[0]) != 3 || glen(g[1]) != 3 || glen(g[2]) != 4 {
		return 0
	}
	if len(g) > 3 && g[3].sep != sepSpace {
		return 0 // more groups glued on: a longer number
	}
	if paren {
		if g[1].sep != sepParen && g[1].sep != sepParenSpace || !isPhoneSep(g[2].sep) {
			return 0
		}
	} else if g[1].sep != g[2].sep || !isPhoneSep(g[1].sep) {
		return 0
	}
	// North American area codes and exchanges never start with 0 or 1.
	if t[g[0].start] < '2' || t[g[1].start] < '2' {
		return 0
	}
	return g[2].end
}

// trunkNumber returns the end of a national number written with its trunk
// prefix 0 at the start of g, or 0. With paren, the prefix and area code are
// in parentheses: "(02) 9628 9313", "(030) 1234567".
func trunkNumber(t []byte, g []group, paren bool) int {
	first := glen(g[0])
	if len(g) < 2 || first < 2 || first > 5 || t[g[0].start] != '0' || t[g[0].start+1] == '0' {
		return 0 // "00" starts an international number or an id
	}
	if first == 2 && glen(g[1]) == 2 && !paren {
		// Five pairs with one separator, as in France.
		if len(g) < 5 || len(g) > 5 && g[5].sep == g[1].sep || !isPhoneSep(g[1].sep) {
			return 0
		}
		for _, p := range g[1:5] {
			if glen(p) != 2 || p.sep != g[1].sep {
				return 0
			}
		}
		if hexPairAround(t, g[0].start, g[4].end) {
			return 0
		}
		return g[4].end
	}
	n, last := 0, -1
	for k, p := range g {
		if k == 1 && paren {
			if p.sep != sepParen && p.sep != sepParenSpace {
				return 0
			}
		} else if k > 0 && p.sep != sepSpace && p.sep != sepDash && p.sep != '/' {
			break // dots only in pairs: "01.03.2024", "010.000.015.001" are not numbers to call
		}
		if n += glen(p); n > 12 {
			return 0 // a longer number
		}
		last = k
	}
	// The subscriber number has at least six digits, which tells a number from
	// a US ZIP+4 code ("02110-1301"); a two-digit prefix (06-12345678) makes
	// ten digits in all.
	if last < 1 || n < 9 || n-first < 6 || first == 2 && n != 10 || last < len(g)-1 && g[last+1].sep != sepSpace {
		return 0
	}
	return g[last].end
}

// hexPairAround reports whether the run from start to end has a two-digit hex
// word just before or after it, across one or two spaces: then it is a line of
// a hex dump ("ff 01 00 01 00 00"), not a phone number written in pairs.
func hexPairAround(t []byte, start, end int) bool {
	isPair := func(k int) bool { // a hex pair at k..k+2 standing alone
		return k >= 0 && k+2 <= len(t) && isHex(t[k]) && isHex(t[k+1]) &&
			(k == 0 || !isWord(t[k-1])) && boundaryAt(t, k+2)
	}
	for gap := 1; gap <= 2; gap++ {
		if start-gap-2 >= 0 && t[start-1] == ' ' && t[start-gap] == ' ' && isPair(start-gap-2) {
			return true
		}
		if end+gap+2 <= len(t) && t[end] == ' ' && t[end+gap-1] == ' ' && isPair(end+gap) {
			return true
		}
	}
	return false
}

// nineDigitNumber returns the end of a number of nine digits starting with 6
// to 9, written in groups of two and three with one separator, and whether a
// group is a pair (which amounts, grouped in threes, never have).
func nineDigitNumber(t []byte, g []group) (end int, pairs bool) {
	if len(g) < 3 || t[g[0].start] < '6' || !isPhoneSep(g[1].sep) {
		return 0, false
	}
	n := 0
	for k, p := range g {
		if k > 0 && p.sep != g[1].sep {
			break
		}
		l := glen(p)
		if l < 2 || l > 3 {
			return 0, false
		}
		pairs = pairs || l == 2
		if n += l; n == 9 {
			if k < len(g)-1 && g[k+1].sep == g[1].sep {
				return 0, false
			}
			return p.end, pairs
		}
	}
	return 0, false
}

// phoneWords say that the number after them is a phone number.
var phoneWords = []string{"phone", "tel", "tél", "telephone", "téléphone", "teléfono", "telefono",
	"telefon", "mobile", "mobil", "móvil", "movil", "cell", "fax", "handy", "portable",
	"call", "ring", "text", "sms", "contact", "llámame", "llamar", "appelez", "anrufen", "numéro", "rufnummer", "telefonnummer", "landline", "whatsapp", "fixe"}

// phoneContext reports whether a phone word stands before i, with at most two
// filler words between ("call me at", "phone number:", "mobile no."). Any
// other word in between breaks the link, so "tel_timeout_ms = 30000000000"
// and "call about order 4155552671" are not phone numbers.
func phoneContext(t []byte, i int) bool {
	var ws [3]word
	lastWords(t, i, ws[:])
	for _, w := range ws {
		switch {
		case w.is(phoneWords...):
			return true
		case !w.is(phoneFillers...):
			return false
		}
	}
	return false
}

// phoneFillers may stand between a phone word and its number.
var phoneFillers = []string{"me", "us", "at", "on", "is", "my", "our", "his", "her", "their", "your",
	"number", "no", "nr", "num", "the", "or", "via", "to", "de", "es", "mi", "su", "mon", "ma", "est", "au",
	"meine", "ist", "unter", "sur", "op"}

func isPhoneSep(s sep) bool { return s == sepDash || s == sepDot || s == sepSpace }
