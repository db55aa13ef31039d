package metrics

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
)

func family(t *testing.T, m *Metrics, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return &dto.MetricFamily{}
}

func matches(metric *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range metric.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

// histogram is the count and sum of the one series of name with labels.
func histogram(t *testing.T, m *Metrics, name string, labels map[string]string) (uint64, float64) {
	t.Helper()
	for _, metric := range family(t, m, name).GetMetric() {
		if matches(metric, labels) {
			return metric.GetHistogram().GetSampleCount(), metric.GetHistogram().GetSampleSum()
		}
	}
	return 0, 0
}

// sumWhere adds up the counters of name whose label is value.
func sumWhere(t *testing.T, m *Metrics, name, label, value string) float64 {
	t.Helper()
	var sum float64
	for _, metric := range family(t, m, name).GetMetric() {
		if matches(metric, map[string]string{label: value}) {
			sum += metric.GetCounter().GetValue()
		}
	}
	return sum
}

func labelValues(t *testing.T, m *Metrics, name, label string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, metric := range family(t, m, name).GetMetric() {
		for _, lp := range metric.GetLabel() {
			if lp.GetName() == label {
				out[lp.GetValue()] = true
			}
		}
	}
	return out
}

func seriesCount(t *testing.T, m *Metrics, name string) int {
	t.Helper()
	return len(family(t, m, name).GetMetric())
}
