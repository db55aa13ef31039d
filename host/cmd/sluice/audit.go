package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/store"
)

func auditCommand(g *globals) *cobra.Command {
	var since time.Duration
	var actor, format string
	var limit int
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the changes operators made: clients, keys, reloads",
		Long: `Show the audit log, newest first: who (an admin token's name, or "cli") did what
(client.create, client.update, key.create, key.rotate, key.revoke, policy.reload, ...), to
what, when, and the before and after of what changed. Never a secret: a key appears by
its id and prefix.`,
		Example: `  sluice audit --since 24h
  sluice audit --actor alice --format json`,
		Args: cobra.NoArgs,
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, _ []string, acc *accounts.Service) error {
			q := store.AuditQuery{Actor: actor, Limit: limit}
			if since > 0 {
				q.From = time.Now().Add(-since)
			}
			evs, err := acc.Audit(ctx, q)
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				for _, ev := range evs {
					if err := enc.Encode(map[string]any{"time": ev.Time, "actor": ev.Actor, "action": ev.Action,
						"target": ev.Target, "detail": ev.Detail}); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tDETAIL")
			for _, ev := range evs {
				detail, _ := json.Marshal(ev.Detail)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(time.RFC3339), ev.Actor, ev.Action, ev.Target, detail)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().DurationVar(&since, "since", 0, "only changes of the last DURATION (24h, 168h); all by default")
	cmd.Flags().StringVar(&actor, "actor", "", "only this actor's changes")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many changes")
	cmd.Flags().StringVar(&format, "format", "table", "table or json (one object a line)")
	return cmd
}
