package pii

import "net/netip"

// email matches addresses around the '@' at i. The local part is found by
// looking back (never before the previous finding), the domain by looking
// forward; the domain needs at least two labels and an alphabetic TLD.
//
// Three look-alikes are not addresses: the credentials of a URL
// ("postgres://app:secret@db.internal", "https://key@sentry.io"), an scp-style
// remote ("git@github.com:org/repo.git") and an image at a pixel density
// ("logo@2x.png").
func (sc *scan) email(at int) int {
	t := sc.text
	if !sc.on(kEmail) {
		return 0
	}
	isLocal := func(c byte) bool {
		return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
	}
	start := at
	for start > sc.lastEnd && at-start < 64 && isLocal(t[start-1]) {
		start--
	}
	for start < at && t[start] == '.' {
		start++
	}
	if start == at || t[at-1] == '.' {
		return 0
	}
	// Domain: labels of [A-Za-z0-9-] joined by single dots.
	end, labels, lastLabel := at+1, 0, at+1
	for {
		l := span(t, end, func(c byte) bool { return isAlnum(c) || c == '-' })
		if l == end || t[end] == '-' || t[l-1] == '-' || l-end > 63 {
			break
		}
		labels++
		lastLabel = end
		end = l
		if end+1 < len(t) && t[end] == '.' && isAlnum(t[end+1]) {
			end++
			continue
		}
		break
	}
	if labels < 2 || t[end-1] == '.' {
		return 0
	}
	tld := t[lastLabel:end]
	if len(tld) < 2 || urlUserinfo(t, start) ||
		end+1 < len(t) && t[end] == ':' && (isAlnum(t[end+1]) || t[end+1] == '/' || t[end+1] == '~') ||
		t[at+1] >= '1' && t[at+1] <= '9' && t[at+2] == 'x' && t[at+3] == '.' {
		return 0
	}
	for _, c := range tld {
		if !isUpper(c) && classes[c]&cLower == 0 {
			return 0
		}
	}
	sc.emit(Email, start, end, 0.9)
	return end
}

// urlUserinfo reports whether the local part starting at start is the user
// information of a URL: it follows "//", or a ':' that follows "//user".
func urlUserinfo(t []byte, start int) bool {
	if start >= 1 && t[start-1] == ':' {
		start--
		for start > 0 && (isAlnum(t[start-1]) || t[start-1] == '.' || t[start-1] == '_' || t[start-1] == '-' || t[start-1] == '%') {
			start--
		}
	}
	return start >= 2 && t[start-1] == '/' && t[start-2] == '/'
}

// ibanLengths gives the IBAN length of each country that issues them (the
// SWIFT IBAN registry). The length check catches most mistyped or unrelated
// strings before the mod-97 check does.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
	"BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
	"DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
	"GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
	"IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
	"ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
	"PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
	"SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
	"TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// iban matches International Bank Account Numbers, contiguous or printed in
// groups of four separated by single spaces, validated by country length and
// the ISO 7064 mod-97 check.
func (sc *scan) iban(i int) int {
	t := sc.text
	if !sc.on(kIBAN) || len(t)-i < 15 || !isUpper(t[i+1]) || !isDigit(t[i+2]) || !isDigit(t[i+3]) {
		return 0
	}
	want, ok := ibanLengths[string(t[i:i+2])]
	if !ok {
		return 0
	}
	var chars [34]byte
	n, j := 0, i
	for j < len(t) && n < want {
		c := t[j]
		switch {
		case isUpper(c) || isDigit(c):
			chars[n] = c
			n++
			j++
		case c == ' ' && n%4 == 0 && j+1 < len(t) && (isUpper(t[j+1]) || isDigit(t[j+1])):
			j++
		default:
			return 0
		}
	}
	if n != want || !boundaryAt(t, j) {
		return 0
	}
	if !mod97(chars[:n]) {
		return 0
	}
	sc.emit(IBAN, i, j, 0.9)
	return j
}

// mod97 computes the IBAN check: move the first four characters to the end,
// read letters as 10..35, and the number must be 1 modulo 97.
func mod97(s []byte) bool {
	rem := 0
	add := func(c byte) {
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	for _, c := range s[4:] {
		add(c)
	}
	for _, c := range s[:4] {
		add(c)
	}
	return rem == 1
}

// ipv6 matches IPv6 addresses in their textual forms. It only does work when a
// run of hex digits is followed by ':', so ordinary words cost one span.
func (sc *scan) ipv6(i int) int {
	t := sc.text
	if !sc.on(kIPAddress) {
		return 0
	}
	// A group after "hex:" continues a colon run that its first group already
	// tried; trying again at every group would make a long run quadratic.
	if i >= 2 && t[i-1] == ':' && isHex(t[i-2]) {
		return 0
	}
	h := span(t, i, isHex)
	if h >= len(t) || t[h] != ':' || h-i > 4 {
		return 0
	}
	const maxLen = 45 // the longest textual IPv6 address
	end := i
	for end < len(t) && end-i <= maxLen && (isHex(t[end]) || t[end] == ':' || t[end] == '.') {
		end++
	}
	for end > i && (t[end-1] == '.' || t[end-1] == ':' && (end < 2 || t[end-2] != ':')) {
		end-- // trailing punctuation of the sentence, but keep a final "::"
	}
	if !boundaryAt(t, end) || end-i > maxLen {
		return 0
	}
	colons, double, digit, pairs := 0, false, false, true
	last := i // start of the current group
	for k := i; k <= end; k++ {
		if k == end || t[k] == ':' {
			pairs = pairs && k-last == 2
			last = k + 1
			if k == end {
				break
			}
			colons++
			double = double || k > i && t[k-1] == ':'
		}
		digit = digit || isDigit(t[k])
	}
	// Fewer than seven colons is only an address with "::". Checking here keeps
	// times (10:30:00) and MAC addresses away from the parser and its
	// allocation. Groups of exactly two hex digits are bytes (a fingerprint, a
	// MAC address), and an address without a digit is a word ("b::c").
	if colons < 2 || colons < 7 && !double || pairs || !digit {
		return 0
	}
	addr, err := netip.ParseAddr(string(t[i:end]))
	if err != nil || !addr.Is6() || addr.IsUnspecified() || addr.IsLoopback() {
		return 0
	}
	if bits := prefixLen(t, end); bits >= 0 && bits < 128 {
		if p, err := addr.Prefix(bits); err == nil && p.Addr() == addr {
			return 0 // a network ("fc00::/7"), not a host
		}
	}
	score := 0.7
	if addr.IsPrivate() || addr.IsLinkLocalUnicast() {
		score = 0.5
	}
	sc.emit(IPAddress, i, end, score)
	return end
}
