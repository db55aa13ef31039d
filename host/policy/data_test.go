package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sluicehq/sluice/host/policy"
)

// ticketRules deny the departments data.ticketing.departments lists
// without an x-ticket-id header, with a message from data.ticketing.
const ticketRules = `package sluice.authz

deny contains {"code": "ticket_required", "message": data.ticketing.message} if {
	input.client.department in data.ticketing.departments
	not input.request.headers["x-ticket-id"]
}
`

const ticketTest = `package sluice.ticket_test

import data.sluice.authz

test_ops_need_a_ticket if {
	d := authz.decision with input as {
		"client": {"id": "bot", "department": "ops", "tier": "t", "labels": {}},
		"request": {"method": "POST", "path": "/v1/chat/completions", "model": "m", "headers": {}},
		"findings": [],
	}
		with data.sluice.tiers as {"t": {"models": ["*"]}}
	d.code == "ticket_required"
}
`

func ticketInput(department string) policy.Input {
	return policy.Input{
		Client:  policy.Client{ID: "bot", Department: department, Tier: "standard"},
		Request: policy.Request{Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini"},
	}
}

// The .json and .yaml files of a policy folder are data, at the path of
// their folder as opa loads them, beside the data the gateway writes; the
// folder's tests see them too.
func TestDataFilesBecomeData(t *testing.T) {
	files := defaultWith(t, map[string]string{
		"ticket.rego":          ticketRules,
		"ticket_test.rego":     ticketTest,
		"ticketing/data.json":  `{"departments": ["ops"]}`,
		"ticketing/extra.yaml": "message: open a ticket first\n",
		"README.md":            "not data",
	})
	e, err := policy.Load(context.Background(), files, openTier())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	d, err := e.Decide(context.Background(), ticketInput("ops"))
	if err != nil || d.Code != "ticket_required" || d.Message != "open a ticket first" {
		t.Errorf("ops: %+v, %v", d, err)
	}
	if d, err := e.Decide(context.Background(), ticketInput("research")); err != nil || !d.Allowed {
		t.Errorf("research: %+v, %v", d, err)
	}
	if !slices.Contains(e.Files(), "ticketing/data.json") || !slices.Contains(e.Files(), "ticketing/extra.yaml") {
		t.Errorf("files %v, want the data files listed", e.Files())
	}
	report, err := policy.Test(context.Background(), files, nil)
	if err != nil || report.Failed() > 0 {
		t.Errorf("Test: %v, %d failed", err, report.Failed())
	}

	// Data the gateway writes cannot come from a file.
	files["sluice/tiers.json"] = &fstest.MapFile{Data: []byte(`{"tiers": {}}`)}
	files["sluice/data.json"] = &fstest.MapFile{Data: []byte(`{"tiers": {"standard": {"models": ["*"]}}}`)}
	if _, err := policy.Load(context.Background(), files, nil); err == nil || !strings.Contains(err.Error(), "data.sluice.tiers") {
		t.Errorf("Load with data.sluice.tiers in a file: %v", err)
	}
}

// Editing a data file is a new revision, reloaded and tested like a rule;
// the gateway's data survives the reload, and the shadow set's data files
// stay its own.
func TestDataFilesReload(t *testing.T) {
	dir, shadowDir := t.TempDir(), t.TempDir()
	write := func(dir string, files map[string]string) {
		for name, src := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range []string{dir, shadowDir} {
		for name, f := range defaultWith(t, map[string]string{"ticket.rego": ticketRules, "ticket_test.rego": ticketTest}) {
			write(d, map[string]string{name: string(f.Data)})
		}
	}
	write(dir, map[string]string{"ticketing/data.json": `{"departments": ["ops"], "message": "m1"}`})
	write(shadowDir, map[string]string{"ticketing/data.json": `{"departments": ["ops", "research"], "message": "shadow"}`})
	cfg := policy.SetConfig{Policies: policy.Source{Dir: dir}, Shadow: policy.Source{Dir: shadowDir}, Data: openTier()}
	shadowed := collectShadows(&cfg)
	s := newSet(t, cfg)
	ctx := context.Background()
	if err := s.SetData(ctx, "/sluice/departments", map[string]any{"ops": map[string]any{"rpm": 7}}); err != nil {
		t.Fatal(err)
	}
	before := s.Status().Enforced.Revision

	write(dir, map[string]string{"ticketing/data.json": `{"departments": ["ops"], "message": "m2"}`})
	if err := s.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	st := s.Status()
	if st.Enforced.Revision == before {
		t.Error("a changed data file kept the revision")
	}
	r, err := s.Decide(ctx, ticketInput("ops"))
	if err != nil || r.Decision.Message != "m2" || r.Decision.DepartmentLimits.RPM != 7 {
		t.Errorf("after the reload: %+v, %v; want the new message and the gateway's department limits", r.Decision, err)
	}
	r = shadowed.of(t, r)
	if r.Shadow == nil || r.Shadow.Decision.Message != "shadow" {
		t.Errorf("shadow decision %+v, want its own data", r.Shadow)
	}
	r, err = s.Decide(ctx, ticketInput("research"))
	r = shadowed.of(t, r)
	if err != nil || !r.Decision.Allowed || r.Shadow.Decision.Allowed || !r.Shadow.Disagrees {
		t.Errorf("research: enforced %+v, shadow %+v, %v; want only the shadow's data to deny", r.Decision, r.Shadow, err)
	}

	// A data file that breaks the folder's tests keeps the last good set.
	write(dir, map[string]string{"ticketing/data.json": `{"departments": [], "message": "m3"}`})
	if err := s.Reload(ctx); err == nil || !strings.Contains(err.Error(), "test_ops_need_a_ticket") {
		t.Errorf("Reload with a data file failing the tests: %v", err)
	}
}

// An allow rule grants a client a model its tier does not have, from data
// the folder carries.
func TestAllowGrantsAModelFromData(t *testing.T) {
	files := defaultWith(t, map[string]string{
		"grants.rego":      "package sluice.authz\n\nallow contains m if some m in data.grants[input.client.id]\n",
		"grants/data.yaml": "bot: [gpt-4o]\n",
	})
	tiers := map[string]any{"sluice": map[string]any{"tiers": map[string]any{"standard": map[string]any{"models": []any{"gpt-4o-mini"}}}}}
	e, err := policy.Load(context.Background(), files, tiers)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		client, model string
		allowed       bool
	}{{"bot", "gpt-4o", true}, {"bot", "gpt-4o-mini", true}, {"other", "gpt-4o", false}} {
		in := ticketInput("research")
		in.Client.ID, in.Request.Model = tt.client, tt.model
		d, err := e.Decide(context.Background(), in)
		if err != nil || d.Allowed != tt.allowed {
			t.Errorf("%s asking for %s: %+v, %v; want allowed %v", tt.client, tt.model, d, err, tt.allowed)
		}
	}
}
