package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/accounts"
)

func clientsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Create and list clients (applications that call Sluice)",
		Example: `  sluice clients create --id billing-bot --department finance --tier premium
  sluice clients list`,
	}
	var nc accounts.NewClient
	var labels []string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create a client",
		Example: "  sluice clients create --id billing-bot --department finance --label env=prod",
		Args:    cobra.NoArgs,
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, _ []string, acc *accounts.Service) error {
			nc.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: expected name=value", l)
				}
				nc.Labels[k] = v
			}
			c, err := acc.CreateClient(ctx, nc)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created client %s (department %s, tier %s)\n", c.ID, c.Department, c.Tier)
			return nil
		}),
	}
	create.Flags().StringVar(&nc.ID, "id", "", "client id (required)")
	create.Flags().StringVar(&nc.Department, "department", "", "department billed for the client's usage (required)")
	create.Flags().StringVar(&nc.Tier, "tier", "", "tier (default: default_tier of the configuration)")
	create.Flags().StringArrayVar(&labels, "label", nil, "label name=value, repeatable; policies see them")
	create.MarkFlagRequired("id")
	create.MarkFlagRequired("department")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List clients",
		Example: "  sluice clients list",
		Args:    cobra.NoArgs,
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, _ []string, acc *accounts.Service) error {
			cs, err := acc.Clients(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDEPARTMENT\tTIER\tLABELS\tCREATED")
			for _, c := range cs {
				var ls []string
				for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
					ls = append(ls, k+"="+c.Labels[k])
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Department, c.Tier, strings.Join(ls, ","), c.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		}),
	}
	cmd.AddCommand(create, list)
	return cmd
}

func keysCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke API keys",
		Example: `  sluice keys create --client billing-bot
  sluice keys list --client billing-bot
  sluice keys revoke key_0123456789ab`,
	}
	var clientID string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a key for a client; the key is printed once, as the last line",
		Long: `Create a key for a client. The key is printed once, as the last line of standard
output, and only its SHA-256 hash is stored: keep it now, it cannot be shown again.`,
		Example: "  KEY=$(sluice keys create --client billing-bot | tail -n1)",
		Args:    cobra.NoArgs,
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, _ []string, acc *accounts.Service) error {
			secret, k, err := acc.CreateKey(ctx, clientID)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created key %s for client %s; it is shown only now:\n%s\n", k.ID, k.ClientID, secret)
			return nil
		}),
	}
	create.Flags().StringVar(&clientID, "client", "", "client id (required)")
	create.MarkFlagRequired("client")

	var listClient string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List keys (id, prefix, state); never the keys themselves",
		Example: "  sluice keys list --client billing-bot",
		Args:    cobra.NoArgs,
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, _ []string, acc *accounts.Service) error {
			ks, err := acc.Keys(ctx, listClient)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCLIENT\tPREFIX\tCREATED\tSTATE")
			for _, k := range ks {
				state := "active"
				if !k.Active() {
					state = "revoked " + k.RevokedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\n", k.ID, k.ClientID, k.Prefix, k.CreatedAt.UTC().Format(time.RFC3339), state)
			}
			return tw.Flush()
		}),
	}
	list.Flags().StringVar(&listClient, "client", "", "only this client's keys")

	revoke := &cobra.Command{
		Use:   "revoke KEY_ID",
		Short: "Revoke a key",
		Long: `Revoke a key. A server that has the key's client cached keeps accepting it for at
most auth.cache_ttl (30s by default); revoking through the admin API of a server stops
it there at once.`,
		Example: "  sluice keys revoke key_0123456789ab",
		Args:    cobra.ExactArgs(1),
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, args []string, acc *accounts.Service) error {
			if err := acc.RevokeKey(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked key %s\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
