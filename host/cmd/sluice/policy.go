package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/policies"
)

func policyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:          "policy",
		Short:        "Test, check and try Rego admission policies",
		SilenceUsage: true,
		Long: `Tools for the authors of Sluice's Rego admission policies. Each works on a folder of
.rego files, or on the policies built into the binary when given none. policies/README.md
describes the input, the data and the decision a policy must produce.`,
		Example: `  sluice policy test ./policies
  sluice policy check ./policies
  sluice policy eval --input request.json --policies ./policies
  sluice policy bench ./policies`,
	}
	cmd.AddCommand(policyTestCommand(g), policyCheckCommand(g), policyEvalCommand(g), policyCapabilitiesCommand(g), policyBenchCommand(g))
	return cmd
}

// policyOptions are the engine options of the configuration, so that the
// tools compile and bound a policy as the gateway would: the builtins it
// allows, the time limit and the headers the policy sees.
func policyOptions(g *globals) ([]policy.Option, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	if err := policy.CheckAllowedBuiltins(cfg.Policy.AllowBuiltins); err != nil {
		return nil, err
	}
	return []policy.Option{policy.WithTimeZone(cfg.TimeZone()), policy.WithAllowedBuiltins(cfg.Policy.AllowBuiltins),
		policy.WithEvalTimeout(cfg.Policy.EvalTimeout.D()), policy.WithHeaders(cfg.Policy.Headers)}, nil
}

func policyCapabilitiesCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "capabilities",
		Short: "Print the builtins policies may call, as an OPA capabilities file",
		Long: `Print, in OPA's capabilities format, what policies are compiled against: the builtins of
the embedded OPA version without those refused by default (http.send, net.*, rand.*,
uuid.rfc4122, time.now_ns, opa.runtime), except those the configuration's
policy.allow_builtins allows. Plain opa refuses the same calls with it:
opa check --capabilities FILE.`,
		Example: `  sluice policy capabilities > sluice-capabilities.json
  opa check --capabilities sluice-capabilities.json ./policies`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := policy.CheckAllowedBuiltins(cfg.Policy.AllowBuiltins); err != nil {
				return err
			}
			out, err := json.MarshalIndent(policy.Capabilities(cfg.Policy.AllowBuiltins), "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
}

func policyTestCommand(g *globals) *cobra.Command {
	var (
		dir         string
		minCoverage float64
		verbose     bool
	)
	cmd := &cobra.Command{
		Use:   "test [DIR | BUNDLE.tar.gz]",
		Short: "Run the test_ rules of a policy and report coverage",
		Long: `Run every test_ rule of the .rego files in DIR (the built-in policies when no DIR
is given), compiled as the gateway compiles them: Rego v1, strict mode, strict builtin
errors, only the builtins the configuration (--config) allows, and each test within 1000
times policy.eval_timeout. Prints PASS or FAIL per test, then the share of policy lines (*_test.rego excluded) the tests evaluated
and the lines they did not. Exits non-zero if a test fails or coverage is below
--min-coverage. Tests bring their own data with "with data.sluice.tiers as", as with
opa test.`,
		Example: `  sluice policy test                       # the built-in policies
  sluice policy test ./policies --min-coverage 90`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fsys, _, err := policyFS(dir, args)
			if err != nil {
				return err
			}
			opts, err := policyOptions(g)
			if err != nil {
				return err
			}
			if verbose {
				opts = append(opts, policy.WithFailureDetails())
			}
			report, err := policy.Test(cmd.Context(), fsys, nil, opts...)
			if err != nil {
				return err
			}
			printTestReport(cmd.OutOrStdout(), report)
			if n := report.Failed(); n > 0 {
				return fmt.Errorf("%d of %d tests failed", n, len(report.Results))
			}
			if report.Coverage < minCoverage {
				return fmt.Errorf("coverage %.1f%% is below --min-coverage %.1f%%", report.Coverage, minCoverage)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "policies", "", "folder of .rego files, instead of DIR")
	cmd.Flags().Float64Var(&minCoverage, "min-coverage", 0, "fail if fewer than this percentage of policy lines are covered")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show where each failing test failed, with the values of its variables (traces every test)")
	return cmd
}

func printTestReport(w io.Writer, report policy.TestReport) {
	for _, r := range report.Results {
		status := "PASS"
		switch {
		case r.Err != nil:
			status = "ERROR"
		case r.Fail:
			status = "FAIL"
		case r.Skip:
			status = "SKIP"
		}
		fmt.Fprintf(w, "%-5s %s.%s (%s)\n", status, r.Package, r.Name, r.Duration.Round(time.Microsecond))
		if r.Err != nil {
			fmt.Fprintf(w, "      %v\n", r.Err)
		}
		if r.Fail {
			fmt.Fprintf(w, "      at %s\n", r.Location)
			for line := range strings.Lines(r.Failure) {
				fmt.Fprintf(w, "      %s\n", strings.TrimSuffix(line, "\n"))
			}
		}
		// Printed output helps only to understand a failure.
		if !r.Pass() && len(r.Output) > 0 {
			for line := range bytes.Lines(r.Output) {
				fmt.Fprintf(w, "      | %s", line)
			}
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", len(report.Results)-report.Failed(), report.Failed())
	fmt.Fprintf(w, "coverage: %.1f%% of policy lines\n", report.Coverage)
	for _, f := range report.Files {
		for _, r := range f.Uncovered {
			if r.Start == r.End {
				fmt.Fprintf(w, "  %s: line %d not covered\n", f.File, r.Start)
			} else {
				fmt.Fprintf(w, "  %s: lines %d-%d not covered\n", f.File, r.Start, r.End)
			}
		}
	}
}

func policyCheckCommand(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "check [DIR | BUNDLE.tar.gz]",
		Short: "Compile a policy strictly and check its formatting",
		Long: `Check the .rego files in DIR (the built-in policies when no DIR is given), test files
included, as the gateway would load them: Rego v1 in strict mode (unused variables and
imports, shadowed input or data are errors), with a rule for data.sluice.authz.decision,
calling no builtin the configuration (--config) does not allow. Also reports every file
that opa fmt would change. Prints one problem per line as file:line: message and exits
non-zero if there is any. Warns, without failing, of rules that read a request header
the configuration's policy.headers does not give the policy.`,
		Example: `  sluice policy check ./policies
  sluice policy check --policies /etc/sluice/policies`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fsys, root, err := policyFS(dir, args)
			if err != nil {
				return err
			}
			opts, err := policyOptions(g)
			if err != nil {
				return err
			}
			problems, err := policy.Check(fsys, opts...)
			if err != nil {
				return err
			}
			for _, p := range problems {
				// Name files as the author passed them, so that editors can jump there.
				if p.File != "" && root != "" {
					p.File = filepath.Join(root, filepath.FromSlash(p.File))
				}
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			if n := policy.Errors(problems); n > 0 {
				return fmt.Errorf("%d problems found", n)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "policies", "", "folder of .rego files, instead of DIR")
	return cmd
}

func policyEvalCommand(g *globals) *cobra.Command {
	var (
		dir, inputPath, fromGateway, adminToken string
		dataPaths                               []string
	)
	cmd := &cobra.Command{
		Use:   "eval --input FILE.json",
		Short: "Print the decision a policy makes for one input document",
		Long: `Evaluate data.sluice.authz.decision for the input document in FILE.json ("-" reads
standard input) and print the decision as JSON. The policy sees the data the gateway would
give it: the tiers and departments of the configuration (--config), the data files
of the policy folder, what --data adds (clients, for one), and the policy's derived
data computed from them all. The policy is --policies, else the configuration's policy.dir, else the
built-in one. Exits non-zero if the decision is undefined or one the gateway would refuse,
printing the decision first when there is one.`,
		Example: `  echo '{"client": {"id": "billing-bot", "tier": "standard"},
        "request": {"model": "gpt-4o"}, "findings": []}' > request.json
  sluice policy eval --input request.json
  sluice policy eval --input request.json --policies ./policies --config sluice.yaml
  sluice policy eval --input request.json --data clients.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if inputPath == "" {
				return errors.New("--input is required (a JSON file, or - for standard input)")
			}
			input, err := readInput(cmd.InOrStdin(), inputPath)
			if err != nil {
				return err
			}
			cfg, tiers, departments, opts, err := configPolicy(g)
			if err != nil {
				return err
			}
			var fsys fs.FS = policies.FS
			switch {
			case dir != "":
				fsys = os.DirFS(dir)
			case cfg.Policy.Dir != "":
				fsys = os.DirFS(cfg.Resolve(cfg.Policy.Dir))
			}
			data := map[string]any{"sluice": map[string]any{"tiers": tiers, "departments": departments}}
			if fromGateway != "" {
				if data, err = gatewayData(cmd.Context(), cfg, fromGateway, adminToken); err != nil {
					return fmt.Errorf("--from-gateway: %w", err)
				}
			}
			if data, err = withDataFiles(data, dataPaths); err != nil {
				return err
			}
			decision, evalErr := policy.Eval(cmd.Context(), fsys, data, input, opts...)
			if decision != nil {
				out, err := json.MarshalIndent(decision, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(out))
			}
			return evalErr
		},
	}
	cmd.Flags().StringVar(&inputPath, "input", "", `JSON input document, as in policies/README.md ("-" for standard input)`)
	cmd.Flags().StringVar(&dir, "policies", "", "folder of .rego files (default: policy.dir of the configuration, else the built-in policies)")
	cmd.Flags().StringVar(&fromGateway, "from-gateway", "", `admin API of a running gateway (e.g. http://127.0.0.1:8081) whose tiers, departments and clients the policy sees, instead of the configuration's`)
	cmd.Flags().StringVar(&adminToken, "admin-token", "", "admin token for --from-gateway (default: $SLUICE_ADMIN_TOKEN, server.admin_token, else the data folder's admin.token)")
	cmd.Flags().StringSliceVar(&dataPaths, "data", nil, `data files or folders, loaded as opa eval --data loads them, e.g. a clients.json of {"sluice": {"clients": {...}}}; repeatable`)
	return cmd
}

// gatewayData reads the data a running gateway gives its policy, from its
// admin API at base, with the admin token: token, else $SLUICE_ADMIN_TOKEN,
// else the configuration's, else the data folder's admin.token.
func gatewayData(ctx context.Context, cfg *config.Config, base, token string) (map[string]any, error) {
	if token == "" {
		token = os.Getenv("SLUICE_ADMIN_TOKEN")
	}
	if token == "" {
		token = cfg.Server.AdminToken
	}
	if token == "" {
		b, err := os.ReadFile(filepath.Join(cfg.Resolve(cfg.DataDir), "admin.token"))
		if err != nil {
			return nil, fmt.Errorf("no admin token: give --admin-token or $SLUICE_ADMIN_TOKEN (%w)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/admin/policy/data", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("GET /admin/policy/data: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return nil, fmt.Errorf("GET /admin/policy/data: %w", err)
	}
	return data, nil
}

// policyFS picks the policy folder of test and check: DIR or --policies,
// else the built-in policies. root is the folder as given, "" for the
// built-in ones.
func policyFS(flag string, args []string) (fsys fs.FS, root string, err error) {
	root = flag
	if len(args) == 1 {
		if flag != "" && flag != args[0] {
			return nil, "", fmt.Errorf("give the policy folder once: DIR %q or --policies %q", args[0], flag)
		}
		root = args[0]
	}
	if root == "" {
		return policies.FS, "", nil
	}
	info, err := os.Stat(root)
	if err != nil {
		return nil, "", err
	}
	if !info.IsDir() {
		if strings.HasSuffix(root, ".tar.gz") {
			// An OPA bundle, as it ships: its files are named as inside it.
			fsys, err := policy.OpenBundle(root, nil)
			return fsys, "", err
		}
		return nil, "", fmt.Errorf("%s is not a folder of .rego files nor an OPA bundle (.tar.gz)", root)
	}
	return os.DirFS(root), root, nil
}

// readInput reads the JSON input document at name, or standard input for
// "-". Numbers stay json.Number so that large integers keep every digit.
func readInput(stdin io.Reader, name string) (map[string]any, error) {
	var (
		src []byte
		err error
	)
	if name == "-" {
		src, err = io.ReadAll(stdin)
	} else {
		src, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("--input: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var input map[string]any
	if err := dec.Decode(&input); err != nil {
		return nil, fmt.Errorf("--input %s: not a JSON object: %w", name, err)
	}
	return input, nil
}

func policyBenchCommand(g *globals) *cobra.Command {
	var (
		dir                   string
		inputPaths, dataPaths []string
		n                     int
	)
	cmd := &cobra.Command{
		Use:   "bench [DIR | BUNDLE.tar.gz]",
		Short: "Time a policy's decisions, and each rule file's part of them",
		Long: `Decide a representative set of inputs many times with the policy in DIR (the built-in
policies when no DIR is given), compiled and given data as the gateway would (the
configuration's tiers and departments, the folder's data files, --data), and print the p50
and p99 of the whole decision, then of the time each rule file's expressions took, with its
share. The per-file times come from OPA's profiler, which adds its own cost: compare files
with each other, not with the decision. The decision cache is not used: every figure is an
evaluation.

The inputs are, for every tier of the configuration: the first pass of a chat request for
each model the tier names and for one it does not allow, the second pass with personal data
found and with a content filter finding, an embeddings request and the models list. --input
replaces them with your own documents (one JSON object, or an array of them, per file, in
the shape of input in policies/README.md), for example inputs copied from the decision log.`,
		Example: `  sluice policy bench                          # the built-in policies
  sluice policy bench ./policies --config sluice.yaml
  sluice policy bench ./policies --input inputs.json -n 5000`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fsys, root, err := policyFS(dir, args)
			if err != nil {
				return err
			}
			_, tiers, departments, opts, err := configPolicy(g)
			if err != nil {
				return err
			}
			data := map[string]any{"sluice": map[string]any{"tiers": tiers, "departments": departments}}
			if data, err = withDataFiles(data, dataPaths); err != nil {
				return err
			}
			inputs := policy.BenchInputs(tiers, departments, time.Now())
			if len(inputPaths) > 0 {
				inputs = nil
				for _, p := range inputPaths {
					docs, err := readInputs(cmd.InOrStdin(), p)
					if err != nil {
						return err
					}
					for _, d := range docs {
						inputs = append(inputs, policy.BenchInput{Document: d})
					}
				}
			}
			if n < 1 {
				return fmt.Errorf("-n %d: want at least 1 evaluation per input", n)
			}
			report, err := policy.Bench(cmd.Context(), fsys, data, inputs, n, opts...)
			if err != nil {
				return err
			}
			if root == "" {
				root = "the built-in policies"
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %d inputs, %d evaluations each\n\n", root, report.Inputs, report.Evaluations)
			const format = "%-32s %10s %10s %7s\n"
			fmt.Fprintf(w, format, "", "p50", "p99", "share")
			fmt.Fprintf(w, format, "decision (unprofiled)", benchMicros(report.Decision.P50), benchMicros(report.Decision.P99), "")
			for _, f := range report.Files {
				fmt.Fprintf(w, format, f.Name, benchMicros(f.P50), benchMicros(f.P99), fmt.Sprintf("%.0f%%", 100*f.Share))
			}
			fmt.Fprintln(w, "\nPer file: the time in its expressions, profiled (the profiler adds its own cost).")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "policies", "", "folder of .rego files, instead of DIR")
	cmd.Flags().StringSliceVar(&inputPaths, "input", nil, `JSON input documents (an object or an array of them per file, "-" for standard input), instead of the built-in set; repeatable`)
	cmd.Flags().StringSliceVar(&dataPaths, "data", nil, "data files or folders, loaded as opa eval --data loads them; repeatable")
	cmd.Flags().IntVarP(&n, "evaluations", "n", 1000, "evaluations of each input")
	return cmd
}

// benchMicros writes d in microseconds.
func benchMicros(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

// readInputs reads the JSON input documents at name ("-" for standard
// input): one object, or an array of objects.
func readInputs(stdin io.Reader, name string) ([]map[string]any, error) {
	var (
		src []byte
		err error
	)
	if name == "-" {
		src, err = io.ReadAll(stdin)
	} else {
		src, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("--input: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimSpace(src)))
	dec.UseNumber()
	var docs []map[string]any
	if trimmed := bytes.TrimSpace(src); len(trimmed) > 0 && trimmed[0] == '[' {
		err = dec.Decode(&docs)
	} else {
		var doc map[string]any
		err = dec.Decode(&doc)
		docs = []map[string]any{doc}
	}
	if err != nil || len(docs) == 0 {
		return nil, fmt.Errorf("--input %s: want a JSON object or an array of objects: %v", name, err)
	}
	return docs, nil
}

// configPolicy is what the policy commands take from the configuration:
// the configuration, its tiers and departments as the policy's data holds
// them, and the engine's options.
func configPolicy(g *globals) (cfg *config.Config, tiers, departments map[string]any, opts []policy.Option, err error) {
	if cfg, err = g.load(); err != nil {
		return nil, nil, nil, nil, err
	}
	if tiers, err = cfg.TiersData(); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("config tiers: %w", err)
	}
	if departments, err = cfg.DepartmentsData(); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("config departments: %w", err)
	}
	if opts, err = policyOptions(g); err != nil {
		return nil, nil, nil, nil, err
	}
	return cfg, tiers, departments, opts, nil
}

// withDataFiles merges the --data files into data.
func withDataFiles(data map[string]any, paths []string) (map[string]any, error) {
	extra, err := policy.LoadDataFiles(paths)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	if data, err = policy.MergeData(data, extra); err != nil {
		return nil, fmt.Errorf("--data: %w (tiers and departments come from the configuration)", err)
	}
	return data, nil
}
