package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/builtin"

	"github.com/sluicehq/sluice/sdk/plugintest"
)

func pluginCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Work with WASM filter plugins",
		Example: `  sluice plugin list
  sluice plugin test bin/plugins/pii.wasm
  sluice plugin test vendor-filter.wasm --plugin-config vendor.json`,
	}
	cmd.AddCommand(pluginListCommand(), pluginTestCommand())
	return cmd
}

func pluginTestCommand() *cobra.Command {
	var configPath string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test FILE.wasm",
		Short: "Check that a WASM plugin conforms to the Sluice plugin ABI v1",
		Long: `Run the conformance suite of sdk/ABI.md on a WASM filter plugin, whatever language it was
written in: the module compiles, exports the ABI v1 functions with the right signatures,
reports ABI version 1, accepts its configuration and cleanly refuses invalid JSON, scans a
built-in corpus (prose, PII-like strings, empty, long, multi-message, non-ASCII and invalid
UTF-8 texts) with well-formed findings, gives the same findings every time and on every
instance, handles an empty input and agrees with itself under concurrent scans. Then
it holds the module to what the gateway's sandbox enforces: every sample scans within
the gateway's 100ms deadline, every result keeps to the output limits and declared
types, and the module keeps no state across calls. A start function that never
returns, a manifest the host refuses and an invalid module fail their checks, named.

Prints one line per check and a summary; exits non-zero if any check failed.`,
		Example: `  sluice plugin test bin/plugins/pii.wasm
  sluice plugin test bin/plugins/contentfilter.wasm --plugin-config terms.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wasm, conf, err := readPlugin(args[0], configPath)
			if err != nil {
				return err
			}
			report := plugintest.Check(cmd.Context(), wasm, conf, plugintest.Options{Timeout: timeout})
			out := cmd.OutOrStdout()
			for _, res := range report.Results {
				fmt.Fprintln(out, res)
			}
			failed := len(report.Failed())
			fmt.Fprintf(out, "%s: %d checks, %d passed, %d failed\n", args[0], len(report.Results), len(report.Results)-failed, failed)
			if failed > 0 {
				cmd.SilenceUsage = true // the report says what is wrong; usage would bury it
				return fmt.Errorf("%s does not conform to the plugin ABI: %d of %d checks failed", args[0], failed, len(report.Results))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "plugin-config", "", "a JSON file passed to the plugin as its configuration (default: none, the plugin's defaults)")
	cmd.Flags().DurationVar(&timeout, "timeout", plugintest.DefaultTimeout, "time limit of each call into the plugin")
	return cmd
}

func pluginListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the plugins built into this binary, with the SHA-256 pinned when it was built",
		Long: `List the plugin modules built into this binary, which a configuration names as
builtin:NAME, each with the SHA-256 digest pinned when the binary was built and its size.
A module this binary lacks is listed as missing, with the reason. Exits non-zero if any
is missing.`,
		Example: "  sluice plugin list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PLUGIN\tSHA256\tBYTES")
			for _, st := range builtin.List() {
				if st.Present {
					fmt.Fprintf(w, "%s%s\t%s\t%d\n", builtin.Prefix, st.Name, st.SHA256, st.Size)
				} else {
					fmt.Fprintf(w, "%s%s\tmissing\t-\n", builtin.Prefix, st.Name)
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			for _, st := range builtin.List() {
				if st.Err != "" {
					return errors.New(st.Err) // the first: they share a cause
				}
			}
			return nil
		},
	}
}
