// Package tags reads the attribution tags a request carries (the
// x-sluice-tags header) and those a key carries, and writes them as the one
// canonical string the ledger stores and reports group by.
//
// Tags are for naming projects, environments and cost centres, and they
// are stored as sent, so they are held to a narrow shape: a name of lower
// case letters, digits and underscores; a value of letters, digits and
// ".-_:/"; and no value with a run of five digits or more, which is how a
// phone number, an identity or card number, or a date of birth would get
// into the ledger by way of a tag.
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
	MaxTags     = 8
	MaxName     = 32
	MaxValue    = 64
	maxDigitRun = 4
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
	run := 0
	for _, r := range value {
		switch {
		case r >= '0' && r <= '9':
			if run++; run > maxDigitRun {
				return fmt.Errorf("%w: the value of %q has a run of more than %d digits, which tags may not hold", ErrInvalid, name, maxDigitRun)
			}
			continue
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', strings.ContainsRune(".-_:/", r):
		default:
			return fmt.Errorf("%w: the value of %q is letters, digits and .-_:/", ErrInvalid, name)
		}
		run = 0
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
