package bench

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// Summary condenses several rounds of the same Load: each figure is the
// median over the rounds, so that one round disturbed by a neighbour on the
// machine moves it little. Errors and Requests are totals.
type Summary struct {
	Rounds   int           `json:"rounds"`
	Requests int           `json:"requests"`
	P50      time.Duration `json:"p50_ns"`
	P90      time.Duration `json:"p90_ns"`
	P99      time.Duration `json:"p99_ns"`
	// Throughput is successful requests per second.
	Throughput float64 `json:"requests_per_second"`
	// ThroughputMin and ThroughputMax show how far the rounds spread.
	ThroughputMin float64        `json:"requests_per_second_min"`
	ThroughputMax float64        `json:"requests_per_second_max"`
	Errors        int            `json:"errors"`
	Failures      map[string]int `json:"failures,omitempty"`
	FailureSample string         `json:"failure_sample,omitempty"`
}

// Summarize returns the median figures of rounds.
func Summarize(rounds []Result) Summary {
	s := Summary{Rounds: len(rounds)}
	if len(rounds) == 0 {
		return s
	}
	p50 := make([]time.Duration, len(rounds))
	p90 := make([]time.Duration, len(rounds))
	p99 := make([]time.Duration, len(rounds))
	rps := make([]float64, len(rounds))
	for i, r := range rounds {
		p50[i], p90[i], p99[i] = r.Percentile(0.50), r.Percentile(0.90), r.Percentile(0.99)
		rps[i] = r.Throughput()
		s.Requests += r.Requests()
		s.Errors += r.Errors
		for k, v := range r.Failures {
			if s.Failures == nil {
				s.Failures = map[string]int{}
			}
			s.Failures[k] += v
		}
		if s.FailureSample == "" {
			s.FailureSample = r.FailureSample
		}
	}
	s.P50, s.P90, s.P99 = Median(p50), Median(p90), Median(p99)
	s.Throughput = Median(rps)
	s.ThroughputMin, s.ThroughputMax = slices.Min(rps), slices.Max(rps)
	return s
}

// FailureReasons lists the keys of Failures, most frequent first.
func (s Summary) FailureReasons() []string {
	keys := slices.Collect(maps.Keys(s.Failures))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(s.Failures[b], s.Failures[a]), cmp.Compare(a, b))
	})
	return keys
}

// Median is the middle value of xs, or the mean of the two middle values
// when there is an even number; the zero value for no values. xs is not
// modified.
func Median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}
