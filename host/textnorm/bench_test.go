package textnorm

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// Run with: go test -run '^$' -bench . -benchmem ./host/textnorm/

const promptASCII = `You write replies for the support team of an online shop. ` +
	`Answer the customer's question below in a friendly tone, in at most three short paragraphs. ` +
	`If the question is about an order, ask for the order number; never ask for card details. ` +
	`If the customer is angry, apologise once and move on to what can be done. ` +
	`Do not promise refunds: say that the team will look into it within two working days. `

func benchText(unit string, size int) string {
	return strings.Repeat(unit, size/len(unit)+1)[:size]
}

var (
	benchASCII   = benchText(promptASCII, 1200)
	benchAccents = strings.Replace(strings.Replace(strings.Replace(benchASCII,
		"friendly", "friendly — “warm” —", 1), "customer's", "customer’s", 1), "apologise", "apologise (désolé)", 1)[:1200]
	benchMixed = benchText("Order #4411 for Zoë: “deliver to 12 Rue de l’Église, Paris” — ok. "+
		"Клиент пишет: заказ не пришёл, номер 55-12. 顧客は注文について質問しています。 "+
		"See https://example.com/track?id=ab%20cd&amp;x=1 or ping me 🙂. "+
		"Attached: "+base64.StdEncoding.EncodeToString([]byte("invoice 2024-118, total 99.50 EUR"))+"\n", 64<<10)
	benchDataURL = "data:image/png;base64," + base64.StdEncoding.EncodeToString(randomBytes(3<<18)) // 1 MiB of base64
)

func BenchmarkNormalize(b *testing.B) {
	for _, bc := range []struct {
		name string
		src  string
	}{
		{"ascii-1.2KB", benchASCII},
		{"accents-1.2KB", benchAccents},
		{"mixed-64KB", benchMixed},
		{"data-url-1MB", benchDataURL},
	} {
		b.Run(bc.name, func(b *testing.B) { benchNormalize(b, bc.src) })
	}
}

// BenchmarkHostile measures the inputs of TestHostile at 1 and 4 MiB: the
// time per byte should not grow with the size. Run it with -benchtime=3x,
// some take seconds.
func BenchmarkHostile(b *testing.B) {
	for _, size := range []int{1 << 20, 4 << 20} {
		for _, bc := range []struct {
			name string
			unit string
		}{
			{"percent", "%"},
			{"reference-starts", "&#"},
			{"zero-width", "\u200b"},
			{"base64-text-run", base64.StdEncoding.EncodeToString([]byte("the quick brown fox jumps over the lazy dog "))},
			{"invalid-bytes", "\xffa"},
			{"look-alikes", "аx"},
			{"expansions", "ﷺ"},
		} {
			src := strings.Repeat(bc.unit, size/len(bc.unit))
			b.Run(fmt.Sprintf("%s-%dMiB", bc.name, size>>20), func(b *testing.B) { benchNormalize(b, src) })
		}
	}
}

// benchNormalize reports, besides the usual figures, cpu-MB/s: throughput
// over the process's CPU time rather than wall-clock time.
func benchNormalize(b *testing.B, src string) {
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	c0 := cpuTime()
	for b.Loop() {
		_ = Normalize(src)
	}
	if c := cpuTime() - c0; c > 0 {
		b.ReportMetric(float64(len(src))*float64(b.N)/(float64(c)/1e9)/1e6, "cpu-MB/s")
	}
}

func BenchmarkOriginal(b *testing.B) {
	n := Normalize(benchMixed)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x := i % (len(n.String()) - 16)
		_, _, _ = n.Original(x, x+16)
	}
}
