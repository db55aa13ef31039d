package usage

import (
	"fmt"
	"strings"
	"time"
)

// Range names a report's period the ways people ask for one: a whole day, a
// whole month, or bounds. Days and months are UTC. At most one of Day, Month
// and From/To may be set.
type Range struct {
	// Day is a UTC day such as "2026-11-28".
	Day string
	// Month is a UTC month such as "2026-11".
	Month string
	// From is a day (its UTC midnight) or an RFC 3339 instant.
	From string
	// To is the last day included, or an RFC 3339 instant excluded.
	// Empty means up to the end of today.
	To string
	// Prefix is put before the field names in errors, e.g. "--" when the
	// fields come from command-line flags.
	Prefix string
}

// Resolve returns the range as [from, to). With nothing set, it is the
// current month up to the end of today (UTC), as of now.
func (r Range) Resolve(now time.Time) (from, to time.Time, err error) {
	set := 0
	for _, v := range []string{r.Day, r.Month, r.From + r.To} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return from, to, fmt.Errorf("%[1]sday, %[1]smonth and %[1]sfrom/%[1]sto name a period each: give one", r.Prefix)
	}
	endOfToday := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	switch {
	case r.Day != "":
		from, err = time.Parse(time.DateOnly, r.Day)
		if err != nil {
			return from, to, fmt.Errorf("%sday %q: want YYYY-MM-DD", r.Prefix, r.Day)
		}
		return from, from.AddDate(0, 0, 1), nil
	case r.Month != "":
		from, err = time.Parse("2006-01", r.Month)
		if err != nil {
			return from, to, fmt.Errorf("%smonth %q: want YYYY-MM", r.Prefix, r.Month)
		}
		return from, from.AddDate(0, 1, 0), nil
	case r.From == "" && r.To == "":
		y, m, _ := now.UTC().Date()
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC), endOfToday, nil
	case r.From == "":
		return from, to, fmt.Errorf("%sto needs %sfrom", r.Prefix, r.Prefix)
	}
	if from, err = ParseDate(r.From); err != nil {
		return from, to, fmt.Errorf("%sfrom: %w", r.Prefix, err)
	}
	to = endOfToday
	if r.To != "" {
		if to, err = ParseDate(r.To); err != nil {
			return from, to, fmt.Errorf("%sto: %w", r.Prefix, err)
		}
		if _, dayOnly := time.Parse(time.DateOnly, strings.TrimSpace(r.To)); dayOnly == nil {
			to = to.AddDate(0, 0, 1) // a day names the whole day
		}
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("%sfrom %s is not before %sto %s", r.Prefix, from.Format(time.RFC3339), r.Prefix, to.Format(time.RFC3339))
	}
	return from, to, nil
}
