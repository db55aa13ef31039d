package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/usage"
)

func reportCommand(g *globals) *cobra.Command {
	var from, to, by, format string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Report requests, tokens and cost per department, client or model",
		Long: `Report requests, tokens and cost from the usage ledger, grouped by department, client
or model. Dates are UTC days (2026-11-01) or RFC 3339 instants; --to names the last day
included (default: today).`,
		Example: `  sluice report --from 2026-11-01 --by department
  sluice report --from 2026-11-01 --to 2026-11-30 --by client --format csv > november.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := store.ReportQuery{GroupBy: by}
			var err error
			if q.From, err = usage.ParseDate(from); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if to == "" {
				q.To = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
			} else {
				if q.To, err = usage.ParseDate(to); err != nil {
					return fmt.Errorf("--to: %w", err)
				}
				if len(to) == len("2006-01-02") {
					q.To = q.To.AddDate(0, 0, 1) // the whole last day
				}
			}
			switch by {
			case store.GroupByDepartment, store.GroupByClient, store.GroupByModel:
			default:
				return fmt.Errorf("--by %q: expected department, client or model", by)
			}
			ctx := cmd.Context()
			_, st, _, err := g.openAccounts(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			rows, err := st.Report(ctx, q)
			if err != nil {
				return err
			}
			return usage.WriteReport(cmd.OutOrStdout(), rows, by, format)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first day (UTC) or instant (required)")
	cmd.Flags().StringVar(&to, "to", "", "last day included, or an exclusive instant (default: today)")
	cmd.Flags().StringVar(&by, "by", "department", "group by department, client or model")
	cmd.Flags().StringVar(&format, "format", "table", "table, json or csv")
	cmd.MarkFlagRequired("from")
	return cmd
}
