package guest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/abi"
)

// TestResultEncoderMatchesABI holds the guest's encoder to the reference
// encoding in package abi, byte for byte: the host's fast parser reads that
// exact form, and anything else costs it a pass through encoding/json.
func TestResultEncoderMatchesABI(t *testing.T) {
	types := []string{"EMAIL", "PHONE", "CREDIT_CARD", "A", "", "EIGHTEEN_BYTES_XYZ", "NINETEEN_BYTES_XYZW",
		strings.Repeat("X", abi.MaxTypeLen), "BAD\"TYPE\xff\\", "new\nline"}
	ints := []int{12345, 1<<26 | 1<<25, 999999999, 1000000000, math.MaxUint32, math.MaxUint32 + 1, -1, math.MinInt64, math.MaxInt64}
	for p := 1; p <= 1e8; p *= 10 {
		ints = append(ints, p-1, p, p+1, 2*p-1)
	}
	scores := []float64{0, 1, 0.9, 0.95, 0.5, 0.05, 0.0001, 0.1234, 0.99995, 0.99999, 0.12345, 0.00005, 1e-7,
		1 / 3.0, math.Nextafter(1, 0), math.Copysign(0, -1), -0.5, 2, 1e300, math.NaN(), math.Inf(1), math.Inf(-1)}
	type test struct {
		name     string
		findings []Finding
	}
	tests := []test{{"nil", nil}, {"empty", []Finding{}}}
	for i, s := range scores {
		tests = append(tests, test{fmt.Sprintf("score %v", s), []Finding{{Type: types[i%len(types)], Start: 1, End: 2, Score: s}}})
	}
	for _, v := range ints {
		tests = append(tests, test{fmt.Sprintf("numbers %d", v), []Finding{
			{Type: "EMAIL", Message: v, Start: v, End: v, Score: 0.9},
			{Type: "EMAIL", Message: 0, Start: 1, End: v, Score: 0.9},
		}})
	}
	r := rand.New(rand.NewPCG(1, 2))
	var many []Finding
	for range 500 {
		many = append(many, Finding{
			Type:    types[r.IntN(len(types))],
			Message: r.IntN(4),
			Start:   ints[r.IntN(len(ints))] / (1 + r.IntN(1000)),
			End:     r.IntN(1 << 27),
			Score:   scores[r.IntN(len(scores))],
		})
	}
	tests = append(tests, test{"many", many})
	var e resultEncoder
	for _, tt := range tests {
		want := string(abi.AppendResult(nil, tt.findings))
		for pass := range 2 { // the second pass finds the type prefixes cached
			if got := string(e.encode(tt.findings)); got != want {
				t.Errorf("%s, pass %d:\n got %s\nwant %s", tt.name, pass, got, want)
			}
		}
	}
}

// TestResultEncoderTypeCache checks that type strings built anew for every
// scan, which may reuse the address of a string the cache saw before, and
// more types than a cache set holds, are never written with another type's
// prefix.
func TestResultEncoderTypeCache(t *testing.T) {
	var e resultEncoder
	for i := range 5000 {
		typ := string([]byte{'T', byte('A' + i%26), byte('A' + i/26%26)})
		findings := []Finding{
			{Type: typ, Start: 0, End: 1, Score: 1},
			{Type: "EMAIL", Message: 1, Start: 2, End: 3, Score: 0.5},
			{Type: typ[:2], Start: 0, End: 1, Score: 1},
		}
		if got, want := string(e.encode(findings)), string(abi.AppendResult(nil, findings)); got != want {
			t.Fatalf("encode = %s, want %s", got, want)
		}
	}
}

func FuzzResultEncoder(f *testing.F) {
	f.Add("EMAIL", 0, 4, 19, 0.9)
	f.Add("BAD\"", -1, 1<<40, 99999999, 0.12345)
	var e resultEncoder
	f.Fuzz(func(t *testing.T, typ string, message, start, end int, score float64) {
		findings := []Finding{{Type: typ, Message: message, Start: start, End: end, Score: score}, {Type: "EMAIL", Score: 1}}
		if got, want := string(e.encode(findings)), string(abi.AppendResult(nil, findings)); got != want {
			t.Errorf("encode = %s, want %s", got, want)
		}
	})
}

// BenchmarkEncode measures the encoder natively against abi.AppendResult; in
// WebAssembly the gap is wider, since that is where calls are dear.
func BenchmarkEncode(b *testing.B) {
	types := []string{"EMAIL", "PHONE", "CREDIT_CARD", "IP_ADDRESS"}
	var findings []Finding
	for i := range 10 {
		findings = append(findings, Finding{Type: types[i%4], Message: i % 3, Start: 1234 * i, End: 1234*i + 17, Score: []float64{0.9, 0.95, 1, 0.7}[i%4]})
	}
	b.Run("guest", func(b *testing.B) {
		var e resultEncoder
		b.ReportAllocs()
		for b.Loop() {
			e.encode(findings)
		}
	})
	b.Run("abi", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = abi.AppendResult(buf[:0], findings)
		}
	})
}
