package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/config"
)

func adminTokenCommand() *cobra.Command {
	var name, role string
	cmd := &cobra.Command{
		Use:   "admin-token",
		Short: "Make a named admin API token with a role, and the configuration that accepts it",
		Long: `Make a random admin API token. It is printed once, as the last line; the
configuration holds only its SHA-256, printed as a server.admin_tokens entry to add.

Roles: viewer (usage reports, the dashboard, status), operator (and reloads, the
policy's data, dry-run decisions), admin (and clients, keys, the audit log).`,
		Example: "  sluice admin-token --name alice --role viewer",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch role {
			case config.RoleViewer, config.RoleOperator, config.RoleAdmin:
			default:
				return fmt.Errorf("--role %q: expected viewer, operator or admin", role)
			}
			buf := make([]byte, 24)
			if _, err := rand.Read(buf); err != nil {
				return err
			}
			token := "sluice-admin-" + hex.EncodeToString(buf)
			sum := sha256.Sum256([]byte(token))
			fmt.Fprintf(cmd.OutOrStdout(), "# add to the configuration:\nserver:\n  admin_tokens:\n    - name: %s\n      role: %s\n      token_sha256: %s\n# the token, shown only now:\n%s\n",
				name, role, hex.EncodeToString(sum[:]), token)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "who holds the token; the audit log records changes under it (required)")
	cmd.Flags().StringVar(&role, "role", config.RoleViewer, "viewer, operator or admin")
	cmd.MarkFlagRequired("name")
	return cmd
}
