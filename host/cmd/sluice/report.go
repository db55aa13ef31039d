package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/usage"
)

// reportFlags are the period and format flags that every report shares.
type reportFlags struct {
	period usage.Range
	by     string
	tag    string
	format string
}

// run resolves the period, opens the store and runs report over it.
func (f *reportFlags) run(cmd *cobra.Command, g *globals, report func(ctx context.Context, st store.Store, from, to time.Time) error) error {
	from, to, err := f.query()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	_, st, _, err := g.openAccounts(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return report(ctx, st, from, to)
}

// query resolves the period and checks the grouping.
func (f *reportFlags) query() (from, to time.Time, err error) {
	if !store.ValidGroupBy(f.by) {
		return from, to, fmt.Errorf("--by %q: expected %s", f.by, store.GroupByNames)
	}
	p := f.period
	p.Prefix = "--"
	return p.Resolve(time.Now())
}

func reportCommand(g *globals) *cobra.Command {
	f := &reportFlags{}
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Report requests, tokens and cost per department, client or model",
		Long: `Report requests, tokens and cost from the usage ledger, grouped by department, client
or model, for one period: --day, --month, or --from and --to. Days and months are UTC;
--from and --to also take RFC 3339 instants; --to names the last day included (default:
today). Without a period, the report covers the current month.

Subcommands chart the same period over time (series) or count refused requests (denials).`,
		Example: `  sluice report --month 2026-11 --by department
  sluice report --day 2026-11-28 --by model --format json
  sluice report --month 2026-11 --by tag:project --tag env=prod
  sluice report --month 2026-11 --by cache
  sluice report --month 2026-11 --by upstream_type
  sluice report --from 2026-11-01 --to 2026-11-30 --by client --format csv > november.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, g, func(ctx context.Context, st store.Store, from, to time.Time) error {
				rows, err := st.Report(ctx, store.ReportQuery{From: from, To: to, GroupBy: f.by, Tag: f.tag})
				if err != nil {
					return err
				}
				return usage.WriteReport(cmd.OutOrStdout(), rows, f.by, f.format)
			})
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.period.Day, "day", "", "one UTC day, e.g. 2026-11-28")
	pf.StringVar(&f.period.Month, "month", "", "one UTC month, e.g. 2026-11")
	pf.StringVar(&f.period.From, "from", "", "first day (UTC) or instant")
	pf.StringVar(&f.period.To, "to", "", "last day included, or an exclusive instant (default: today)")
	pf.StringVar(&f.by, "by", "department", "group by department, client, model, endpoint (the API called), deployment (where it was served), cache (hit, miss, bypass), or a tag's value (tag:project)")
	cmd.Flags().StringVar(&f.tag, "tag", "", "count only requests with this tag (project=search)")
	pf.StringVar(&f.format, "format", "table", "table, json or csv")
	cmd.AddCommand(reportSeriesCommand(g, f), reportDenialsCommand(g, f))
	return cmd
}

func reportSeriesCommand(g *globals, f *reportFlags) *cobra.Command {
	var every string
	cmd := &cobra.Command{
		Use:   "series",
		Short: "Report usage per hour or per day, for charts",
		Long: `Report requests, tokens and cost per hour or per UTC day and per group, for the period of
the report flags. Buckets without requests are left out.`,
		Example: `  sluice report series --every day --month 2026-11 --by department --format csv
  sluice report series --every hour --day 2026-11-28 --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			buckets := map[string]time.Duration{"hour": time.Hour, "day": 24 * time.Hour}
			bucket, ok := buckets[every]
			if !ok {
				return fmt.Errorf("--every %q: expected hour or day", every)
			}
			return f.run(cmd, g, func(ctx context.Context, st store.Store, from, to time.Time) error {
				points, err := st.UsageSeries(ctx, store.SeriesQuery{From: from, To: to, Bucket: bucket, GroupBy: f.by})
				if err != nil {
					return err
				}
				return usage.WriteSeries(cmd.OutOrStdout(), points, f.by, f.format)
			})
		},
	}
	cmd.Flags().StringVar(&every, "every", "day", "bucket width: hour or day")
	return cmd
}

func reportDenialsCommand(g *globals, f *reportFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "denials",
		Short: "Count refused and failed requests per code",
		Long: `Count the requests of the period that ended with an error code (invalid_api_key,
rate_limit_exceeded, budget_exceeded, pii_detected, upstream_error, ...), most frequent first.`,
		Example: `  sluice report denials --day 2026-11-28`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, g, func(ctx context.Context, st store.Store, from, to time.Time) error {
				counts, err := st.DenialCounts(ctx, from, to)
				if err != nil {
					return err
				}
				return usage.WriteDenials(cmd.OutOrStdout(), counts, f.format)
			})
		},
	}
}
