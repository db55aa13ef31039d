package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/host/server"
	"github.com/sluicehq/sluice/host/upstream"
)

func scanCommand() *cobra.Command {
	var pluginPath, configPath string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "Run a WASM plugin over JSON lines from standard input",
		Long: `Run a WASM filter plugin outside the gateway. Each input line is {"id": …, "text": "…"};
each output line is {"id": …, "found": [{"type", "value", "start", "end"}]} with byte
offsets into text. A malformed line gets an output line with an "error" field.`,
		Example: `  echo '{"id":1,"text":"mail me at ann@example.com"}' | sluice scan --plugin bin/plugins/pii.wasm
  sluice scan --plugin bin/plugins/contentfilter.wasm --plugin-config terms.json < prompts.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			wasm, conf, err := readPlugin(pluginPath, configPath)
			if err != nil {
				return err
			}
			if conf == nil {
				conf = []byte("{}")
			}
			rt, err := plugin.NewRuntime(ctx, "")
			if err != nil {
				return err
			}
			defer rt.Close(ctx)
			p, err := rt.Load(ctx, wasm, plugin.Options{Name: pluginPath, Config: conf, Timeout: timeout, PoolSize: 1})
			if err != nil {
				return err
			}
			return plugin.ScanJSONLines(ctx, p, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&pluginPath, "plugin", "", "the .wasm plugin (required)")
	cmd.Flags().StringVar(&configPath, "plugin-config", "", "a JSON file passed to the plugin as its configuration")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "time limit of one scan")
	cmd.MarkFlagRequired("plugin")
	return cmd
}

// readPlugin reads a plugin module and, when configPath is not empty, its
// JSON configuration (nil otherwise).
func readPlugin(wasmPath, configPath string) (wasm, conf []byte, err error) {
	if wasm, err = os.ReadFile(wasmPath); err != nil {
		return nil, nil, err
	}
	if configPath == "" {
		return wasm, nil, nil
	}
	if conf, err = os.ReadFile(configPath); err != nil {
		return nil, nil, err
	}
	if !json.Valid(conf) {
		return nil, nil, fmt.Errorf("--plugin-config %s: not valid JSON", configPath)
	}
	return wasm, conf, nil
}

func mockCommand() *cobra.Command {
	var listen string
	var latency time.Duration
	cmd := &cobra.Command{
		Use:   "mock",
		Short: "Serve the built-in mock upstream over HTTP as an OpenAI-compatible server",
		Long: `Serve the built-in mock upstream on its own: deterministic chat replies with exact usage,
streaming included, and embeddings. Useful as a stand-in provider for load tests.`,
		Example: "  sluice mock --listen 127.0.0.1:9090 --latency 20ms",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			srv := &fasthttp.Server{Handler: upstream.MockHandler(upstream.NewMock(latency), []string{"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}),
				NoDefaultServerHeader: true}
			fmt.Fprintf(cmd.OutOrStdout(), "mock upstream serving on http://%s/v1\n", ln.Addr())
			go func() {
				sig := make(chan os.Signal, 1)
				signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
				<-sig
				srv.Shutdown()
			}()
			return srv.Serve(ln)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9090", "address to serve on")
	cmd.Flags().DurationVar(&latency, "latency", 0, "delay before each reply")
	return cmd
}

func configCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the example configuration, or check a configuration file",
		Example: `  sluice config example > sluice.yaml
  sluice config check sluice.yaml`,
	}
	example := &cobra.Command{
		Use:     "example",
		Short:   "Print the commented example configuration",
		Example: "  sluice config example > sluice.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.Example)
			return err
		},
	}
	var quiet, connect bool
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Run the checks of a start on a configuration; print it in full with secrets masked",
		Long: `Check a configuration as sluice serve would before it serves: the file parses and
every key is valid (the first problem is named with its file, line and key), every
plugin module loads, compiles and scans its smoke texts, and the policy set compiles
and passes its test_ rules. With --connect it also opens the store (creating the SQLite
file as a start would) and pings Redis when limits.backend is redis.

FILE defaults to --config, and without either to the embedded default. When every
check passes, it prints the configuration Sluice would run with: every default filled
in, and the admin token, API keys and passwords masked; --quiet prints nothing. A
failed check exits non-zero with every reason found.`,
		Example: `  sluice config check sluice.yaml
  sluice config check sluice.yaml --connect
  sluice config check sluice.yaml --quiet && echo valid
  sluice config check                          # the embedded default`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "the embedded default"
			if len(args) == 1 {
				g.configPath = args[0]
			}
			if g.configPath != "" {
				name = g.configPath
			}
			c, err := g.load()
			if err != nil {
				return err
			}
			if err := server.Check(cmd.Context(), c, server.CheckOptions{Connect: connect}); err != nil {
				return fmt.Errorf("%s:\n%w", name, err)
			}
			if quiet {
				return nil
			}
			out, err := c.Masked().YAML()
			if err != nil {
				return err
			}
			if _, err := cmd.OutOrStdout().Write(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: ok\n", name)
			return nil
		},
	}
	check.Flags().BoolVar(&connect, "connect", false, "also open the store and ping Redis, as a start does")
	check.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing when every check passes")
	cmd.AddCommand(example, check)
	return cmd
}
