package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds the ledger's aggregate queries beyond Report: the windows a
// limiter rebuilds its counters from, time series for charts, and denials.

func (s *sqlStore) UsageWindows(ctx context.Context, since ...time.Time) ([]ScopeUsage, error) {
	if len(since) == 0 || len(since) > MaxUsageWindows {
		return nil, fmt.Errorf("usage windows: %w", invalid("%d windows: want 1 to %d", len(since), MaxUsageWindows))
	}
	args := make([]any, 1, len(since)+1)
	var lo int64
	for i, t := range since {
		n, _, err := rangeNanos(t, time.Time{})
		if err != nil {
			return nil, fmt.Errorf("usage windows: window %d: %w", i, err)
		}
		if i == 0 || n < lo {
			lo = n
		}
		args = append(args, n)
	}
	args[0] = lo
	// One pass per scope over the widest window; each narrower window is a
	// conditional sum. Only placeholder numbers are spliced into the SQL.
	var cols strings.Builder
	for i := range since {
		p := i + 2
		fmt.Fprintf(&cols, `,
		CAST(SUM(CASE WHEN occurred_at >= $%d AND usage_source <> 'none' THEN 1 ELSE 0 END) AS BIGINT),
		CAST(SUM(CASE WHEN occurred_at >= $%d THEN total_tokens ELSE 0 END) AS BIGINT),
		CAST(SUM(CASE WHEN occurred_at >= $%d THEN cost_nanos ELSE 0 END) AS BIGINT)`, p, p, p)
	}
	query := `SELECT 'client', client_id` + cols.String() + `
		FROM usage_events WHERE occurred_at >= $1 AND client_id <> '' GROUP BY client_id
		UNION ALL
		SELECT 'department', department` + cols.String() + `
		FROM usage_events WHERE occurred_at >= $1 AND department <> '' GROUP BY department
		UNION ALL
		SELECT 'key', key_id` + cols.String() + `
		FROM usage_events WHERE occurred_at >= $1 AND key_id <> '' GROUP BY key_id`
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("usage windows: %w", err)
	}
	defer rows.Close()
	var out []ScopeUsage
	for rows.Next() {
		u := ScopeUsage{Windows: make([]Usage, len(since))}
		dest := []any{&u.Scope, &u.ID}
		for i := range u.Windows {
			w := &u.Windows[i]
			dest = append(dest, &w.Requests, &w.TotalTokens, &w.CostNanos)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("usage windows: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage windows: %w", err)
	}
	slices.SortFunc(out, func(a, b ScopeUsage) int {
		return cmp.Or(strings.Compare(a.Scope, b.Scope), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (s *sqlStore) UsageSeries(ctx context.Context, q SeriesQuery) ([]SeriesPoint, error) {
	col, ok := groupColumns[q.GroupBy]
	if !ok {
		return nil, fmt.Errorf("usage series: %w", invalid("group by %q: want %q, %q, %q or %q",
			q.GroupBy, GroupByDepartment, GroupByClient, GroupByModel, GroupByEndpoint))
	}
	if q.From.IsZero() || q.To.IsZero() {
		return nil, fmt.Errorf("usage series: %w", invalid("from and to are both required"))
	}
	if q.Bucket < time.Minute {
		return nil, fmt.Errorf("usage series: %w", invalid("bucket %s is shorter than a minute", q.Bucket))
	}
	lo, hi, err := rangeNanos(q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("usage series: %w", err)
	}
	// Buckets are numbered from the one that holds From, so the division
	// in SQL only ever sees non-negative numbers, where SQLite's and
	// PostgreSQL's integer division agree with floor.
	width := int64(q.Bucket)
	first := lo - mod(lo, width)
	if first > lo {
		return nil, fmt.Errorf("usage series: %w", invalid("from %s is too early for %s buckets", q.From.Format(time.RFC3339), q.Bucket))
	}
	rows, err := s.read.QueryContext(ctx, `SELECT (occurred_at - $3) / $4, `+col+`, `+sums+`
		FROM usage_events WHERE occurred_at >= $1 AND occurred_at < $2 AND `+forAModel+`
		GROUP BY 1, 2`, lo, hi, first, width)
	if err != nil {
		return nil, fmt.Errorf("usage series by %s: %w", q.GroupBy, err)
	}
	defer rows.Close()
	var out []SeriesPoint
	for rows.Next() {
		var (
			p      SeriesPoint
			bucket int64
		)
		if err := rows.Scan(append([]any{&bucket, &p.Group}, p.dest()...)...); err != nil {
			return nil, fmt.Errorf("usage series by %s: %w", q.GroupBy, err)
		}
		p.Start = fromNanos(first + bucket*width)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage series by %s: %w", q.GroupBy, err)
	}
	slices.SortFunc(out, func(a, b SeriesPoint) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Group, b.Group))
	})
	return out, nil
}

// mod is the remainder of floor division: never negative for a positive m.
func mod(n, m int64) int64 {
	r := n % m
	if r < 0 {
		r += m
	}
	return r
}

func (s *sqlStore) DenialCounts(ctx context.Context, from, to time.Time) ([]DenialCount, error) {
	lo, hi, err := rangeNanos(from, to)
	if err != nil {
		return nil, fmt.Errorf("denial counts: %w", err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT code, COUNT(*) FROM usage_events
		WHERE occurred_at >= $1 AND occurred_at < $2 AND code <> ''
		GROUP BY code`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("denial counts: %w", err)
	}
	defer rows.Close()
	var out []DenialCount
	for rows.Next() {
		var d DenialCount
		if err := rows.Scan(&d.Code, &d.Requests); err != nil {
			return nil, fmt.Errorf("denial counts: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("denial counts: %w", err)
	}
	slices.SortFunc(out, func(a, b DenialCount) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), strings.Compare(a.Code, b.Code))
	})
	return out, nil
}
