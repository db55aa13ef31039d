// Package tags reads the attribution tags a request carries (the
// x-sluice-tags header) and those a key carries, and writes them as the one
// canonical string the ledger stores and reports group by.
//
// Tags are for naming projects, environments and cost centres, and a
// request's tags are chosen by its caller, who must not be able to put
// anything else into the ledger with them. So a request may carry only the
// tag names the operator allowed (Allowed), each with one of the values
// the operator listed or, where the operator allowed any value, a value of
// a narrow shape: lower-case letters, digits and ".-_:/", at most 40
// characters and at most four digits in all. The shape keeps out what a
// secret or a personal number looks like: an API key (mixed case, long), a
// phone, card or identity number, a date of birth, an e-mail address.
package tags

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Header is the request header that carries a request's tags:
// "project=search,env=prod".
const Header = "x-sluice-tags"

// Bounds of the tags of one request.
const (
	MaxTags   = 8
	MaxName   = 32
	MaxValue  = 40
	maxDigits = 4
)

// ErrInvalid is wrapped by every error about a tag; the message names the
// rule and the tag's position, never its value.
var ErrInvalid = errors.New("invalid tags")

// Parse reads a header value of name=value pairs separated by commas. An
// empty header is no tags.
func Parse(header string) (map[string]string, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return nil, nil
	}
	pairs := strings.Split(header, ",")
	if len(pairs) > MaxTags {
		return nil, fmt.Errorf("%w: %d tags, at most %d", ErrInvalid, len(pairs), MaxTags)
	}
	out := make(map[string]string, len(pairs))
	for i, p := range pairs {
		name, value, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return nil, fmt.Errorf("%w: tag %d is not name=value", ErrInvalid, i+1)
		}
		if err := Check(name, value); err != nil {
			return nil, fmt.Errorf("tag %d: %w", i+1, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: tag %d repeats the name %q", ErrInvalid, i+1, name)
		}
		out[name] = value
	}
	return out, nil
}

// Check holds one tag to the shape of the package comment.
func Check(name, value string) error {
	if name == "" || len(name) > MaxName || name[0] < 'a' || name[0] > 'z' {
		return fmt.Errorf("%w: a name is 1 to %d characters and starts with a lower-case letter", ErrInvalid, MaxName)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("%w: a name is lower-case letters, digits and _", ErrInvalid)
		}
	}
	if value == "" || len(value) > MaxValue {
		return fmt.Errorf("%w: the value of %q is 1 to %d characters", ErrInvalid, name, MaxValue)
	}
	digits := 0
	for _, r := range value {
		switch {
		case r >= '0' && r <= '9':
			if digits++; digits > maxDigits {
				return fmt.Errorf("%w: the value of %q has more than %d digits, which tags may not hold", ErrInvalid, name, maxDigits)
			}
		case r >= 'a' && r <= 'z', strings.ContainsRune(".-_:/", r):
		default:
			return fmt.Errorf("%w: the value of %q is lower-case letters, digits and .-_:/", ErrInvalid, name)
		}
	}
	return nil
}

// Any is the value in Allowed that allows any value of the narrow shape.
const Any = "*"

// Allowed are the tags requests may carry: each name with its values, or
// with Any. Empty allows none.
type Allowed map[string][]string

// Permit checks a request's tags against a: a name not listed, or a value
// not among the name's, is refused. The error names the tag, never the
// value.
func (a Allowed) Permit(t map[string]string) error {
	for name, value := range t {
		values, ok := a[name]
		switch {
		case !ok && len(a) == 0:
			return fmt.Errorf("%w: this gateway accepts no tags (its operator lists them under attribution.tags)", ErrInvalid)
		case !ok:
			return fmt.Errorf("%w: the tag %q is not one this gateway accepts", ErrInvalid, name)
		case !slices.Contains(values, Any) && !slices.Contains(values, value):
			return fmt.Errorf("%w: the value of %q is not one this gateway accepts for it", ErrInvalid, name)
		}
	}
	return nil
}

// Merge is the request's tags with the key's over them: a key's tags are set
// by an operator, and a caller cannot move a key's spend to another
// project by sending its own.
func Merge(request, key map[string]string) map[string]string {
	if len(key) == 0 {
		return request
	}
	out := maps.Clone(request)
	if out == nil {
		out = make(map[string]string, len(key))
	}
	maps.Copy(out, key)
	return out
}

// Canonical is the stored form: "name=value" pairs sorted by name, joined
// by commas; "" for none.
func Canonical(t map[string]string) string {
	if len(t) == 0 {
		return ""
	}
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(t)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(t[name])
	}
	return b.String()
}

// Value is the value of name in a canonical string, and whether it is there.
func Value(canonical, name string) (string, bool) {
	for _, p := range strings.Split(canonical, ",") {
		if n, v, ok := strings.Cut(p, "="); ok && n == name {
			return v, true
		}
	}
	return "", false
}
