package usage

import (
	"strings"
	"testing"
	"time"
)

func TestRangeResolve(t *testing.T) {
	now := time.Date(2026, 11, 28, 15, 4, 5, 0, time.FixedZone("CET", 3600))
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name     string
		r        Range
		from, to time.Time
		err      string
	}{
		{name: "default is this month to the end of today", r: Range{}, from: d(2026, 11, 1), to: d(2026, 11, 29)},
		{name: "day", r: Range{Day: "2026-11-28"}, from: d(2026, 11, 28), to: d(2026, 11, 29)},
		{name: "month", r: Range{Month: "2026-12"}, from: d(2026, 12, 1), to: d(2027, 1, 1)},
		{name: "from to days include the last day", r: Range{From: "2026-11-01", To: "2026-11-30"}, from: d(2026, 11, 1), to: d(2026, 12, 1)},
		{name: "to instant is excluded", r: Range{From: "2026-11-01", To: "2026-11-02T12:00:00Z"}, from: d(2026, 11, 1), to: d(2026, 11, 2).Add(12 * time.Hour)},
		{name: "from alone runs to the end of today", r: Range{From: "2026-11-20"}, from: d(2026, 11, 20), to: d(2026, 11, 29)},
		{name: "two periods", r: Range{Day: "2026-11-28", Month: "2026-11", Prefix: "--"}, err: "--day, --month and --from/--to"},
		{name: "bad day", r: Range{Day: "28/11/2026"}, err: "day"},
		{name: "bad month", r: Range{Month: "2026-13", Prefix: "--"}, err: "--month"},
		{name: "bad from", r: Range{From: "yesterday", Prefix: "--"}, err: "--from"},
		{name: "to without from", r: Range{To: "2026-11-02"}, err: "to needs from"},
		{name: "empty range", r: Range{From: "2026-11-02", To: "2026-11-01"}, err: "not before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to, err := tt.r.Resolve(now)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("Resolve = %v, %v, %v; want an error mentioning %q", from, to, err, tt.err)
				}
				return
			}
			if err != nil || !from.Equal(tt.from) || !to.Equal(tt.to) {
				t.Errorf("Resolve = [%v, %v), %v; want [%v, %v)", from, to, err, tt.from, tt.to)
			}
		})
	}
}
