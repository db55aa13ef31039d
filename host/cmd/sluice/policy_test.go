package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/sluicehq/sluice/policies"
)

// runPolicy executes the policy command in-process and returns its output.
func runPolicy(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := policyCommand(&globals{})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// policyDir writes the shipped policies to a temporary folder, with files
// added or replaced, as an author's working copy.
func policyDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policies.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name), src, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPolicyShippedPoliciesPass(t *testing.T) {
	out, err := runPolicy(t, "test")
	if err != nil {
		t.Fatalf("policy test: %v\n%s", err, out)
	}
	if !strings.Contains(out, "PASS  data.sluice.authz_test.test_") || strings.Contains(out, "FAIL") {
		t.Errorf("policy test output:\n%s", out)
	}
	// The shipped policy keeps its tests at 90% coverage or more.
	m := regexp.MustCompile(`coverage: ([0-9.]+)% of policy lines`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no coverage figure in:\n%s", out)
	}
	if cov, _ := strconv.ParseFloat(m[1], 64); cov < 90 {
		t.Errorf("shipped policy coverage %.1f%%, want at least 90%%", cov)
	}
	out, err = runPolicy(t, "check")
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("policy check: %v\n%s", err, out)
	}
}

func TestPolicyTestFails(t *testing.T) {
	failing := `package sluice.extra_test

import data.sluice.authz

test_premium_is_denied if {
	d := authz.decision with input as {"client": {"tier": "premium"}, "request": {"model": "gpt-4o"}, "findings": []}
		with data.sluice.tiers as {"premium": {"models": ["*"]}}
	print("got", d.code)
	d.allowed == false
}
`
	dir := policyDir(t, map[string]string{"extra_test.rego": failing})
	for _, args := range [][]string{{"test", dir}, {"test", "--policies", dir}} {
		out, err := runPolicy(t, args...)
		if err == nil || !strings.Contains(err.Error(), "1 of") {
			t.Errorf("%v: error %v, want one failed test", args, err)
		}
		if !strings.Contains(out, "FAIL  data.sluice.extra_test.test_premium_is_denied") ||
			!strings.Contains(out, "extra_test.rego:5") || !strings.Contains(out, "| got \n") {
			t.Errorf("%v: output must name the failing test, its line and what it printed:\n%s", args, out)
		}
	}
}

func TestPolicyCheckReportsProblems(t *testing.T) {
	cases := []struct {
		name, file, src, want string
	}{
		{"syntax error", "helpers.rego", "package sluice.helpers\n\nx := {\n\ny := 1\n", "helpers.rego:5: "},
		{"formatting", "helpers.rego", "package sluice.helpers\n\nx :=   1\n", "helpers.rego:3: not opa fmt clean"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{c.file: c.src})
			out, err := runPolicy(t, "check", dir)
			if err == nil {
				t.Fatalf("check passed:\n%s", out)
			}
			if want := filepath.Join(dir, c.want); !strings.Contains(out, want) {
				t.Errorf("output must contain %q:\n%s", want, out)
			}
		})
	}
}

func TestPolicyEvalShowsDenial(t *testing.T) {
	input := filepath.Join(t.TempDir(), "request.json")
	doc := `{"client": {"id": "billing-bot", "department": "finance", "tier": "standard"},
	         "request": {"method": "POST", "path": "/v1/chat/completions", "model": "gpt-4o"},
	         "findings": []}`
	if err := os.WriteFile(input, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runPolicy(t, "eval", "--input", input)
	if err != nil {
		t.Fatalf("policy eval: %v\n%s", err, out)
	}
	var d struct {
		Allowed    bool   `json:"allowed"`
		HTTPStatus int    `json:"http_status"`
		Code       string `json:"code"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("output is not the decision as JSON: %v\n%s", err, out)
	}
	if d.Allowed || d.HTTPStatus != 403 || d.Code != "model_not_allowed" {
		t.Errorf("decision %+v, want a 403 model_not_allowed denial:\n%s", d, out)
	}
	if !strings.Contains(out, "\n  \"code\"") {
		t.Errorf("decision must be indented:\n%s", out)
	}
}

func TestPolicyEvalErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("[1, 2"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"eval"}, "--input is required"},
		{[]string{"eval", "--input", bad}, "not a JSON object"},
		{[]string{"eval", "--input", filepath.Join(t.TempDir(), "missing.json")}, "--input"},
	}
	for _, c := range cases {
		_, err := runPolicy(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

// check and test refuse a folder that calls http.send, at its line, unless
// the configuration allows it; check warns of a header the configuration
// does not give the policy, and stops warning once it does.
func TestPolicyCheckFollowsTheConfiguration(t *testing.T) {
	dir := policyDir(t, map[string]string{
		"ticket.rego": `package sluice.authz

deny contains "a ticket id is required" if {
	input.client.department == "ops"
	not input.request.headers["x-ticket-id"]
}

deny contains "audit unreachable" if {
	input.client.department == "audited"
	http.send({"method": "GET", "url": "http://audit.invalid/"}).status_code != 200
}
`,
	})
	run := func(config string, args ...string) (string, error) {
		t.Helper()
		g := &globals{}
		if config != "" {
			g.configPath = filepath.Join(t.TempDir(), "sluice.yaml")
			if err := os.WriteFile(g.configPath, []byte(config), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cmd := policyCommand(g)
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}

	out, err := run("", "check", dir)
	if err == nil || !strings.Contains(out, "ticket.rego:10: http.send is not allowed") {
		t.Errorf("check without config: %v\n%s", err, out)
	}
	if out, err := run("", "test", dir); err == nil || !strings.Contains(out, "http.send is not allowed") {
		t.Errorf("test without config: %v\n%s", err, out)
	}

	out, err = run("policy:\n  allow_builtins: [http.send]\n", "check", dir)
	if err != nil || !strings.Contains(out, `ticket.rego:5: warning: input.request.headers["x-ticket-id"] is never set`) {
		t.Errorf("check with http.send allowed: %v, want only a warning about x-ticket-id\n%s", err, out)
	}
	out, err = run("policy:\n  allow_builtins: [http.send]\n  headers: [user-agent, x-ticket-id]\n", "check", dir)
	if err != nil || strings.Contains(out, "warning") {
		t.Errorf("check with http.send allowed and x-ticket-id given: %v\n%s", err, out)
	}
	if _, err := run("policy:\n  headers: [authorization]\n", "check", dir); err == nil || !strings.Contains(err.Error(), "policy.headers") {
		t.Errorf("check with authorization as a header: %v, want a configuration error", err)
	}

	out, err = run("policy:\n  allow_builtins: [time.now_ns]\n", "capabilities")
	if err != nil || !strings.Contains(out, `"time.now_ns"`) || strings.Contains(out, `"http.send"`) {
		t.Errorf("capabilities: %v\n%.300s", err, out)
	}
}

// eval --data gives the policy data the gateway would write, such as
// clients, and a policy folder's own data files are data as well.
func TestPolicyEvalReadsData(t *testing.T) {
	dir := policyDir(t, map[string]string{
		"peers.rego": `package sluice.authz

deny contains {"code": "peer_suspended", "message": data.peers.message} if {
	some peer in data.sluice.clients
	peer.labels.suspends == input.client.department
}
`,
	})
	if err := os.MkdirAll(filepath.Join(dir, "peers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "peers", "data.yaml"), []byte("message: suspended by a peer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	input := filepath.Join(tmp, "request.json")
	doc := `{"client": {"id": "billing-bot", "department": "finance", "tier": "standard"},
	         "request": {"method": "POST", "path": "/v1/chat/completions", "model": "gpt-4o-mini"},
	         "findings": []}`
	clients := filepath.Join(tmp, "clients.json")
	if err := os.WriteFile(input, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(clients, []byte(`{"sluice": {"clients": {"auditor": {"labels": {"suspends": "finance"}}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runPolicy(t, "eval", "--input", input, "--policies", dir)
	if err != nil || !strings.Contains(out, `"allowed": true`) {
		t.Fatalf("without --data: %v\n%s", err, out)
	}
	out, err = runPolicy(t, "eval", "--input", input, "--policies", dir, "--data", clients)
	if err != nil || !strings.Contains(out, `"peer_suspended"`) || !strings.Contains(out, "suspended by a peer") {
		t.Fatalf("with --data: %v\n%s", err, out)
	}
}

// test -v shows where a failing test failed, with its variables' values.
func TestPolicyTestVerboseShowsValues(t *testing.T) {
	dir := policyDir(t, map[string]string{"fail_test.rego": `package sluice.fail_test

import data.sluice.authz

test_lowered_limit if {
	limit := authz._lowered(100, {50})
	limit == 60
}
`})
	out, err := runPolicy(t, "test", "-v", dir)
	if err == nil {
		t.Fatalf("a failing test passed:\n%s", out)
	}
	for _, want := range []string{"at fail_test.rego:5", "fail_test.rego:7:", "limit == 60", "50"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out, _ := runPolicy(t, "test", dir); strings.Contains(out, "limit == 60") {
		t.Errorf("without -v, the failing expression is shown:\n%s", out)
	}
}

// test and check read an OPA bundle as it ships.
func TestPolicyToolsReadABundle(t *testing.T) {
	var b bundle.Bundle
	for _, name := range []string{"authz.rego", "authz_test.rego"} {
		src, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + name, Path: "/" + name, Raw: src, Parsed: m})
	}
	b.Data = map[string]any{}
	b.Manifest.Init()
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.tar.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runPolicy(t, "test", path); err != nil || !strings.Contains(out, " 0 failed") {
		t.Errorf("test of a bundle: %v\n%s", err, out)
	}
	if out, err := runPolicy(t, "check", path); err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("check of a bundle: %v\n%s", err, out)
	}
}

// eval --from-gateway gives the policy the data a running gateway writes,
// read from its admin API with the admin token.
func TestPolicyEvalFromGateway(t *testing.T) {
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/policy/data" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"sluice": {"tiers": {"standard": {"models": ["*"]}}, "departments": {},
			"clients": {"auditor": {"labels": {"suspends": "finance"}}}}}`))
	}))
	defer admin.Close()
	dir := policyDir(t, map[string]string{"peers.rego": `package sluice.authz

deny contains {"code": "peer_suspended"} if {
	some peer in data.sluice.clients
	peer.labels.suspends == input.client.department
}
`})
	input := filepath.Join(t.TempDir(), "request.json")
	doc := `{"client": {"id": "billing-bot", "department": "finance", "tier": "standard"},
	         "request": {"method": "POST", "path": "/v1/chat/completions", "model": "gpt-4o"}, "findings": []}`
	if err := os.WriteFile(input, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runPolicy(t, "eval", "--input", input, "--policies", dir, "--from-gateway", admin.URL, "--admin-token", "tok")
	if err != nil || !strings.Contains(out, `"peer_suspended"`) {
		t.Errorf("eval --from-gateway: %v\n%s", err, out)
	}
	if _, err := runPolicy(t, "eval", "--input", input, "--policies", dir, "--from-gateway", admin.URL, "--admin-token", "bad"); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Errorf("eval --from-gateway with a bad token: %v", err)
	}
}

// sluice policy bench times the decision and names every rule file of the
// folder with its p50, p99 and share, on the built-in input set or on the
// author's own inputs; a file no input reaches shows 0.
func TestPolicyBenchPrintsEveryRuleFile(t *testing.T) {
	dir := policyDir(t, map[string]string{"ticket.rego": `package sluice.authz

deny contains "send a ticket" if {
	input.client.department == "ops"
	not input.request.headers["x-ticket-id"]
}
`})
	row := regexp.MustCompile(`(?m)^(\S+)\s+([0-9.]+) µs\s+([0-9.]+) µs\s+([0-9]+)%$`)
	out, err := runPolicy(t, "bench", dir, "-n", "20")
	if err != nil {
		t.Fatalf("policy bench: %v\n%s", err, out)
	}
	files := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(out, -1) {
		files[m[1]] = true
	}
	if !files["authz.rego"] || !files["token_input.rego"] || !files["ticket.rego"] || files["authz_test.rego"] ||
		!regexp.MustCompile(`(?m)^decision \(unprofiled\)\s+[0-9.]+ µs\s+[0-9.]+ µs`).MatchString(out) ||
		!strings.Contains(out, "inputs, 20 evaluations each") {
		t.Fatalf("policy bench output lacks a rule file or the decision:\n%s", out)
	}

	inputs := filepath.Join(t.TempDir(), "inputs.json")
	if err := os.WriteFile(inputs, []byte(`[
		{"client": {"id": "a", "tier": "standard", "department": "ops"}, "request": {"model": "gpt-4o-mini", "headers": {}}, "findings": []},
		{"client": {"id": "b", "tier": "premium", "department": "sales"}, "request": {"model": "gpt-4o", "headers": {}}, "findings": []}
	]`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runPolicy(t, "bench", dir, "--input", inputs, "-n", "10")
	if err != nil || !strings.Contains(out, ": 2 inputs, 10 evaluations each") {
		t.Fatalf("policy bench --input: %v\n%s", err, out)
	}

	broken := policyDir(t, map[string]string{"zero.rego": `package sluice.authz

deny contains "never" if 1 / count(input.findings) > 2
`})
	if out, err := runPolicy(t, "bench", broken, "-n", "5"); err == nil || !strings.Contains(err.Error(), "input 1") {
		t.Fatalf("policy bench of a policy that fails: %v\n%s", err, out)
	}
}
