package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/server"
	"github.com/sluicehq/sluice/host/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// globals are the flags every subcommand takes, so that each works on the
// same store as the server.
type globals struct {
	configPath string
	dataDir    string
}

func rootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "sluice",
		Short: "Sluice is an LLM API gateway: OpenAI-compatible, policy-driven, exact on budgets.",
		Long: `Sluice sits between your applications and their LLM providers. Applications keep
their OpenAI SDK and change only the base URL and key; Sluice authenticates them, runs
the security team's Rego policies and WASM filter plugins, enforces rate limits and
budgets, forwards to the upstream model and records usage for billing and audit.`,
		Example: `  sluice serve                                   # embedded default: SQLite in ./data, mock upstream
  sluice clients create --id billing-bot --department finance
  sluice keys create --client billing-bot
  sluice report --from 2026-11-01 --by department`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetVersionTemplate("{{.Version}}\n") // the text of versionText, set below
	plainFlags(root)
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "YAML configuration file (default: the embedded default)")
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", "", "data folder, overriding data_dir of the configuration")
	root.AddCommand(serveCommand(g), clientsCommand(g), keysCommand(g), auditCommand(g), reportCommand(g),
		scanCommand(), mockCommand(), configCommand(g), policyCommand(g), pluginCommand(), adminTokenCommand(), versionCommand())
	root.Version = versionText()
	return root
}

// load reads the configuration with the command-line overrides applied.
func (g *globals) load() (*config.Config, error) {
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return nil, err
	}
	if g.dataDir != "" {
		cfg.DataDir = g.dataDir
	}
	return cfg, nil
}

// openAccounts opens the store the configuration names, for the CLI commands.
func (g *globals) openAccounts(ctx context.Context) (*config.Config, store.Store, *accounts.Service, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := os.MkdirAll(cfg.Resolve(cfg.DataDir), 0o700); err != nil {
		return nil, nil, nil, err
	}
	st, err := server.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("store: %w", err)
	}
	acc := accounts.New(st, cfg.TierNames(), cfg.DefaultTier, nil)
	if cfg.Limits.Backend == "redis" {
		// Running servers hear of the change over Redis, as they do of one
		// made through another server's admin API.
		acc.OnKeysChange(func() {
			if err := server.ForgetKeysEverywhere(ctx, cfg.Limits.Redis.URL); err != nil {
				fmt.Fprintf(os.Stderr, "sluice: running servers were not told (they will notice within auth.cache_ttl): %v\n", err)
			}
		})
	}
	return cfg, st, acc, nil
}

// withAccounts makes a command body that runs on the store the configuration
// names, opened before and closed after.
func (g *globals) withAccounts(run func(ctx context.Context, cmd *cobra.Command, args []string, acc *accounts.Service) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx := accounts.WithActor(cmd.Context(), "cli")
		_, st, acc, err := g.openAccounts(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		return run(ctx, cmd, args, acc)
	}
}

// newLogger writes JSON lines to w.
// newLogger writes JSON lines at level and above ("debug", "info", "warn",
// "error"; anything else is info).
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version, the Go version and the digests of the built-in plugins",
		Example: "  sluice version\n  sluice --version",
		Args:    cobra.NoArgs,
		Run:     func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), versionText()) },
	}
}
