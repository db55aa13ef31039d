package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/server"
)

func serveCommand(g *globals) *cobra.Command {
	var listen, adminListen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the OpenAI-compatible API and the admin API",
		Long: `Serve the OpenAI-compatible API (POST /v1/chat/completions, POST /v1/embeddings,
GET /v1/models, GET /healthz) and, on its own listener, the admin API.

Without --config, Sluice serves the embedded default: SQLite under ./data, in-process
counters, the policies and plugins built into the binary (builtin:pii,
builtin:contentfilter), and the built-in mock upstream (or OpenAI when OPENAI_API_KEY
is set), from any folder. On first start it creates a demo client and key and prints a
curl line that works. sluice config check runs the same checks without serving.`,
		Example: `  sluice serve
  sluice serve --config sluice.yaml --listen 0.0.0.0:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Server.Listen = listen
			}
			if adminListen != "" {
				cfg.Server.AdminListen = adminListen
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sink := newLogSink(os.Stderr)
			defer sink.Close()
			log := newLogger(sink, cfg.Server.LogLevel)
			server.Version = version
			srv, err := server.Start(ctx, cfg, log)
			if err != nil {
				return err
			}
			printBanner(cmd, srv)
			// SIGHUP reloads the policies and the plugins; a set or module
			// that fails its checks leaves the last good one in force.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
		serving:
			for {
				select {
				case <-ctx.Done():
					break serving
				case err := <-srv.Done():
					log.Error("listener stopped", "error", err)
					break serving
				case <-hup:
					log.Info("SIGHUP: reloading policies and plugins")
					if err := srv.Reload(ctx); err != nil {
						log.Error("reload refused in part; the last good versions stay in force", "error", err)
					}
				}
			}
			stop() // a second signal stops the process at once
			log.Info("shutting down: draining requests and flushing the ledger")
			sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
			defer cancel()
			return srv.Close(sctx)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address of the OpenAI-compatible API (overrides server.listen)")
	cmd.Flags().StringVar(&adminListen, "admin-listen", "", "address of the admin API (overrides server.admin_listen)")
	return cmd
}

func printBanner(cmd *cobra.Command, srv *server.Server) {
	w := cmd.OutOrStdout()
	base := "http://" + srv.Addr() + "/v1"
	fmt.Fprintf(w, "\nSluice is serving the OpenAI API on %s\n", base)
	fmt.Fprintf(w, "Admin API on http://%s (token in the data folder's admin.token unless configured)\n", srv.AdminAddr())
	fmt.Fprintf(w, "Usage dashboard on http://%s/admin/dashboard, metrics on http://%s/metrics\n", srv.AdminAddr(), srv.AdminAddr())
	if key := srv.DemoKey(); key != "" {
		fmt.Fprintf(w, "\nTry it with the demo key:\n\n")
		fmt.Fprintf(w, "  curl %s/chat/completions \\\n    -H 'Authorization: Bearer %s' \\\n    -H 'Content-Type: application/json' \\\n    -d '%s'\n\n",
			base, key, strings.ReplaceAll(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello, Sluice!"}]}`, "'", `'\''`))
	}
}
