package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/store"
)

func clientsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Create, list, update, disable and delete clients (applications that call Sluice)",
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
			fmt.Fprintln(tw, "ID\tDEPARTMENT\tTIER\tLABELS\tCREATED\tSTATE")
			for _, c := range cs {
				var ls []string
				for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
					ls = append(ls, k+"="+c.Labels[k])
				}
				state := "active"
				if !c.DisabledAt.IsZero() {
					state = "disabled " + c.DisabledAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Department, c.Tier, strings.Join(ls, ","),
					c.CreatedAt.UTC().Format(time.RFC3339), state)
			}
			return tw.Flush()
		}),
	}
	var update accounts.ClientUpdate
	var updateID, updateDept, updateTier string
	var updateLabels []string
	updateCmd := &cobra.Command{
		Use:   "update",
		Short: "Change a client's department, tier or labels",
		Long: `Change a client's department, tier or labels; what is not given is kept (--label
replaces every label). A server applies the change to the client's keys from their next
request: at once where it was made through the admin API and, with Redis, on every
replica; otherwise within auth.cache_ttl.`,
		Example: "  sluice clients update --id billing-bot --tier premium",
		Args:    cobra.NoArgs,
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, _ []string, acc *accounts.Service) error {
			f := cmd.Flags()
			if f.Changed("department") {
				update.Department = &updateDept
			}
			if f.Changed("tier") {
				update.Tier = &updateTier
			}
			if f.Changed("label") {
				ls, err := parseTags(updateLabels)
				if err != nil {
					return err
				}
				if ls == nil {
					ls = map[string]string{}
				}
				update.Labels = &ls
			}
			c, err := acc.UpdateClient(ctx, updateID, update)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "updated client %s (department %s, tier %s)\n", c.ID, c.Department, c.Tier)
			return nil
		}),
	}
	updateCmd.Flags().StringVar(&updateID, "id", "", "client id (required)")
	updateCmd.Flags().StringVar(&updateDept, "department", "", "the new department")
	updateCmd.Flags().StringVar(&updateTier, "tier", "", "the new tier")
	updateCmd.Flags().StringArrayVar(&updateLabels, "label", nil, "label name=value, repeatable; replaces every label")
	updateCmd.MarkFlagRequired("id")

	state := func(use, short, done string, do func(ctx context.Context, acc *accounts.Service, id string) error) *cobra.Command {
		return &cobra.Command{
			Use:     use + " CLIENT_ID",
			Short:   short,
			Example: "  sluice clients " + use + " billing-bot",
			Args:    cobra.ExactArgs(1),
			RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, args []string, acc *accounts.Service) error {
				if err := do(ctx, acc, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s client %s\n", done, args[0])
				return nil
			}),
		}
	}
	disable := state("disable", "Refuse a client's keys (403 client_disabled) until it is enabled", "disabled",
		func(ctx context.Context, acc *accounts.Service, id string) error {
			return acc.DisableClient(ctx, id, true)
		})
	enable := state("enable", "Accept a disabled client's keys again", "enabled",
		func(ctx context.Context, acc *accounts.Service, id string) error {
			return acc.DisableClient(ctx, id, false)
		})
	del := state("delete", "Delete a client: its keys stop working, its usage stays in the ledger, its id stays taken", "deleted",
		func(ctx context.Context, acc *accounts.Service, id string) error { return acc.DeleteClient(ctx, id) })
	cmd.AddCommand(create, list, updateCmd, disable, enable, del)
	return cmd
}

func keysCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list, rotate and revoke API keys",
		Example: `  sluice keys create --client billing-bot
  sluice keys create --client billing-bot --name ci --expires 90d --daily-tokens 200000 --models 'gpt-4o-mini*'
  sluice keys list --client billing-bot
  sluice keys rotate --key key_0123456789ab --grace 24h
  sluice keys revoke key_0123456789ab`,
	}
	var nk accounts.NewKey
	var tags []string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a key for a client; the key is printed once, as the last line",
		Long: `Create a key for a client. The key is printed once, as the last line of standard
output, and only its SHA-256 hash is stored: keep it now, it cannot be shown again.

A key may carry limits of its own, enforced in addition to its client's and its
department's (a request must fit all of them), a model allow-list that narrows what
the client's tier allows, an expiry, a name and tags.`,
		Example: "  KEY=$(sluice keys create --client billing-bot --expires 90d | tail -n1)",
		Args:    cobra.NoArgs,
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, _ []string, acc *accounts.Service) error {
			var err error
			if nk.Tags, err = parseTags(tags); err != nil {
				return err
			}
			nk.CreatedBy = "cli"
			secret, k, err := acc.CreateKey(ctx, nk)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created key %s for client %s%s; it is shown only now:\n%s\n", k.ID, k.ClientID, expiryNote(k), secret)
			return nil
		}),
	}
	f := create.Flags()
	f.StringVar(&nk.ClientID, "client", "", "client id (required)")
	f.StringVar(&nk.Name, "name", "", "a name for the key, such as ci or laptop")
	f.StringVar(&nk.Expires, "expires", "", "when the key stops working: a lifetime (90d, 36h) or a date (2027-03-01); never by default")
	f.Int64Var(&nk.Limits.RPM, "rpm", 0, "the key's own requests per minute (0: only the client's limits)")
	f.Int64Var(&nk.Limits.TPM, "tpm", 0, "the key's own tokens per minute")
	f.Int64Var(&nk.Limits.DailyTokens, "daily-tokens", 0, "the key's own tokens per UTC day")
	f.Int64Var(&nk.Limits.MonthlyTokens, "monthly-tokens", 0, "the key's own tokens per UTC month")
	f.Float64Var(&nk.Limits.MonthlySpendUSD, "monthly-spend-usd", 0, "the key's own spend per UTC month, in dollars")
	f.StringSliceVar(&nk.Models, "models", nil, "models the key may use, as patterns like a tier's (gpt-4o*); all the tier allows by default")
	f.StringSliceVar(&tags, "tag", nil, "a tag name=value; repeat for several")
	create.MarkFlagRequired("client")

	var listClient string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List keys (id, name, prefix, expiry, state); never the keys themselves",
		Long:    "List keys. A key that expires within 7 days is marked \"expires soon\".",
		Example: "  sluice keys list --client billing-bot",
		Args:    cobra.NoArgs,
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, _ []string, acc *accounts.Service) error {
			ks, err := acc.Keys(ctx, listClient)
			if err != nil {
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCLIENT\tNAME\tPREFIX\tCREATED\tEXPIRES\tSTATE")
			for _, k := range ks {
				expires := "never"
				if !k.ExpiresAt.IsZero() {
					expires = k.ExpiresAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s…\t%s\t%s\t%s\n", k.ID, k.ClientID, cmp.Or(k.Name, "-"), k.Prefix,
					k.CreatedAt.UTC().Format(time.RFC3339), expires, keyState(k, now))
			}
			return tw.Flush()
		}),
	}
	list.Flags().StringVar(&listClient, "client", "", "only this client's keys")

	var rotateKey, rotateExpires string
	var grace time.Duration
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Issue a new key in place of one, keeping the old one working for a grace period",
		Long: `Issue a new key with the same client, name, limits, models and tags as an existing
one, printed once as the last line. The old key keeps working until the grace period
ends (24h by default; 0s ends it now), then answers 401 key_expired. A server that
has the old key cached notices the shorter expiry within auth.cache_ttl; rotating
through the admin API of a server applies it there at once.

The new key expires as --expires says; without it, a key that had a lifetime gets the
same lifetime from now, and a key that never expired does not.`,
		Example: "  NEW=$(sluice keys rotate --key key_0123456789ab --grace 1h | tail -n1)",
		Args:    cobra.NoArgs,
		RunE: g.withAccounts(func(ctx context.Context, cmd *cobra.Command, _ []string, acc *accounts.Service) error {
			secret, k, err := acc.RotateKey(ctx, rotateKey, grace, rotateExpires, "cli")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created key %s in place of %s, which works until %s%s; the new key is shown only now:\n%s\n",
				k.ID, rotateKey, time.Now().Add(grace).UTC().Format(time.RFC3339), expiryNote(k), secret)
			return nil
		}),
	}
	rotate.Flags().StringVar(&rotateKey, "key", "", "the id of the key to replace (required)")
	rotate.Flags().DurationVar(&grace, "grace", accounts.DefaultGrace, "how long the old key keeps working")
	rotate.Flags().StringVar(&rotateExpires, "expires", "", "the new key's expiry: a lifetime (90d) or a date")
	rotate.MarkFlagRequired("key")

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
	cmd.AddCommand(create, list, rotate, revoke)
	return cmd
}

// keyState is a key's state for listings.
func keyState(k store.Key, now time.Time) string {
	switch {
	case !k.Active():
		return "revoked " + k.RevokedAt.UTC().Format(time.RFC3339)
	case k.Expired(now):
		return "expired"
	case accounts.ExpiresSoon(k, now):
		return "expires soon"
	}
	return "active"
}

func expiryNote(k store.Key) string {
	if k.ExpiresAt.IsZero() {
		return ""
	}
	return ", expiring " + k.ExpiresAt.UTC().Format(time.RFC3339)
}

// parseTags reads name=value pairs.
func parseTags(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--tag %q: want name=value", p)
		}
		out[name] = value
	}
	return out, nil
}
