// Package abi holds the Sluice plugin ABI v1 wire formats shared by the host and
// guest sides: export names, status codes, log levels, the binary encoding of the
// input texts and the JSON encoding of the result. sdk/ABI.md is the normative
// description; this package is its executable form.
package abi

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Version is the ABI version a v1 plugin returns from ExportVersion.
const Version = 1

// Names of the functions a plugin exports, and of the host module it may import.
const (
	ExportVersion   = "sluice_abi_version"
	ExportAlloc     = "sluice_alloc"
	ExportFree      = "sluice_free"
	ExportConfigure = "sluice_configure"
	ExportScan      = "sluice_scan"
	ExportOutput    = "sluice_output"
	ExportMemory    = "memory"
	ExportInit      = "_initialize"

	HostModule = "sluice"
	HostLog    = "log"
)

// Status codes returned by sluice_configure and sluice_scan.
const (
	StatusOK    = 0 // the output buffer holds the result (scan) or the manifest (configure)
	StatusError = 1 // the output buffer holds a UTF-8 error message
)

// Log levels accepted by the host's sluice.log import.
const (
	LevelDebug = 0
	LevelInfo  = 1
	LevelWarn  = 2
	LevelError = 3
)

// MaxTypeLen bounds a finding type; types are short upper-case identifiers.
const MaxTypeLen = 64

// Limits on what a plugin declares and returns (sdk/ABI.md, section 7.3).
const (
	// MaxTypes bounds the finding types a plugin may declare in its manifest.
	MaxTypes = 64
	// MaxFindings bounds the findings of one result.
	MaxFindings = 16384
	// MaxManifestBytes bounds the manifest document.
	MaxManifestBytes = 8192
)

// AppendManifest appends the manifest document that sluice_configure leaves
// in its output on success: {"types":["EMAIL","PHONE"]}. The types are
// written as given; ParseManifest is what checks them.
func AppendManifest(dst []byte, types []string) []byte {
	dst = append(dst, `{"types":[`...)
	for i, t := range types {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, t)
	}
	return append(dst, "]}"...)
}

// ParseManifest decodes a manifest document and checks it: a "types" array of
// 0 to MaxTypes valid, distinct finding types, in at most MaxManifestBytes.
// Its errors never quote the document, which the plugin chose.
func ParseManifest(doc []byte) ([]string, error) {
	if len(doc) == 0 {
		return nil, errors.New(`no manifest: sluice_configure must leave {"types":[...]} in its output`)
	}
	if len(doc) > MaxManifestBytes {
		return nil, fmt.Errorf("manifest of %d bytes exceeds the %d-byte limit", len(doc), MaxManifestBytes)
	}
	var m struct {
		Types *[]string `json:"types"`
	}
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, errors.New("manifest is not a JSON object with a \"types\" array of strings")
	}
	if m.Types == nil {
		return nil, errors.New(`manifest has no "types" array`)
	}
	types := *m.Types
	if len(types) > MaxTypes {
		return nil, fmt.Errorf("manifest declares %d finding types, more than the %d allowed", len(types), MaxTypes)
	}
	seen := make(map[string]bool, len(types))
	for i, t := range types {
		if ValidType(t) != nil {
			return nil, fmt.Errorf("manifest type %d is not 1 to %d characters of A-Z, 0-9 and _", i, MaxTypeLen)
		}
		if seen[t] {
			return nil, fmt.Errorf("manifest declares type %s twice", t)
		}
		seen[t] = true
	}
	return types, nil
}

// TextsSize returns the number of bytes AppendTexts needs for texts.
func TextsSize(texts []string) int {
	n := 4
	for _, t := range texts {
		n += 4 + len(t)
	}
	return n
}

// AppendTexts appends the v1 input encoding of texts to dst: a little-endian
// uint32 count, then for each text a little-endian uint32 byte length and the
// bytes. No padding, no terminators.
func AppendTexts(dst []byte, texts []string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(texts)))
	for _, t := range texts {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(t)))
		dst = append(dst, t...)
	}
	return dst
}

// ErrMalformedTexts reports an input buffer that does not follow the v1 encoding.
var ErrMalformedTexts = errors.New("abi: malformed texts encoding")

// DecodeTexts splits an input buffer into its texts and appends them to dst. The
// returned slices alias buf: they are valid only as long as buf is.
func DecodeTexts(dst [][]byte, buf []byte) ([][]byte, error) {
	if len(buf) < 4 {
		return dst, ErrMalformedTexts
	}
	count := binary.LittleEndian.Uint32(buf)
	buf = buf[4:]
	// Each text needs at least its 4-byte length, which bounds count before we
	// trust it for anything.
	if uint64(count)*4 > uint64(len(buf)) {
		return dst, ErrMalformedTexts
	}
	for range count {
		if len(buf) < 4 {
			return dst, ErrMalformedTexts
		}
		n := binary.LittleEndian.Uint32(buf)
		buf = buf[4:]
		if uint64(n) > uint64(len(buf)) {
			return dst, ErrMalformedTexts
		}
		dst = append(dst, buf[:n:n])
		buf = buf[n:]
	}
	if len(buf) != 0 {
		return dst, ErrMalformedTexts
	}
	return dst, nil
}

// Finding is one match as it crosses the ABI: Message indexes the input texts,
// Start and End are byte offsets into that text (End exclusive), Score is in [0,1].
type Finding struct {
	Type    string  `json:"type"`
	Message int     `json:"message"`
	Start   int     `json:"start"`
	End     int     `json:"end"`
	Score   float64 `json:"score"`
}

// Validate reports whether f is well formed against texts lengths given by
// textLen (the number of texts is n). It is the check the host applies to every
// finding a plugin returns.
func (f *Finding) Validate(n int, textLen func(i int) int) error {
	if err := ValidType(f.Type); err != nil {
		return err
	}
	if f.Message < 0 || f.Message >= n {
		return fmt.Errorf("finding %s: message index %d out of range [0,%d)", f.Type, f.Message, n)
	}
	if l := textLen(f.Message); f.Start < 0 || f.End > l || f.Start >= f.End {
		return fmt.Errorf("finding %s: offsets [%d,%d) invalid for message %d of %d bytes", f.Type, f.Start, f.End, f.Message, l)
	}
	if math.IsNaN(f.Score) || f.Score < 0 || f.Score > 1 {
		return fmt.Errorf("finding %s: score %v outside [0,1]", f.Type, f.Score)
	}
	return nil
}

// ValidType reports whether t is a valid finding type: 1 to MaxTypeLen bytes of
// A-Z, 0-9 and underscore. The restriction keeps types safe to use as metric
// labels, Rego keys and log fields without escaping.
func ValidType(t string) error {
	if t == "" || len(t) > MaxTypeLen {
		return fmt.Errorf("finding type %q: want 1 to %d characters", t, MaxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return fmt.Errorf("finding type %q: want only A-Z, 0-9 and _", t)
		}
	}
	return nil
}

// AppendResult appends the v1 result document for findings to dst:
// {"findings":[{"type":"EMAIL","message":0,"start":4,"end":19,"score":0.9},...]}.
// It writes JSON by hand so that a guest needs no reflection-based encoder.
func AppendResult(dst []byte, findings []Finding) []byte {
	dst = append(dst, `{"findings":[`...)
	for i := range findings {
		f := &findings[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":`...)
		dst = appendJSONString(dst, f.Type)
		dst = append(dst, `,"message":`...)
		dst = strconv.AppendInt(dst, int64(f.Message), 10)
		dst = append(dst, `,"start":`...)
		dst = strconv.AppendInt(dst, int64(f.Start), 10)
		dst = append(dst, `,"end":`...)
		dst = strconv.AppendInt(dst, int64(f.End), 10)
		dst = append(dst, `,"score":`...)
		dst = appendScore(dst, f.Score)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// appendScore writes a score as strconv.AppendFloat(dst, score, 'g', 4, 64)
// does. Scores are nearly always a few decimals in [0,1], which it writes by
// hand: float formatting is slow once compiled to WebAssembly.
func appendScore(dst []byte, score float64) []byte {
	if math.IsNaN(score) || math.IsInf(score, 0) {
		score = 0 // JSON has no NaN; the host rejects out-of-range scores anyway.
	}
	if k := int(score*10000 + 0.5); score > 0 && score < 1 && float64(k)/10000 == score {
		// 0.dddd with trailing zeros dropped, as 'g' does.
		digits := [4]byte{byte('0' + k/1000), byte('0' + k/100%10), byte('0' + k/10%10), byte('0' + k%10)}
		n := 4
		for digits[n-1] == '0' {
			n--
		}
		return append(append(dst, '0', '.'), digits[:n]...)
	}
	return strconv.AppendFloat(dst, score, 'g', 4, 64)
}

// appendJSONString writes s as a JSON string. Valid types need no escaping; the
// rest is escaped so that a bad type still yields parseable JSON and the host can
// name the problem instead of reporting a syntax error.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c >= 0x80:
			// Bytes >= 0x80 are escaped one by one so invalid UTF-8 cannot break the document.
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
