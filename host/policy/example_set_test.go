package policy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/host/policy"
)

// ExampleSet shows the gateway's side of a reloadable policy set: load a
// folder, watch it, and decide.
func ExampleSet() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "policies")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	src, err := os.ReadFile("testdata/v2/authz.rego")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), src, 0o644); err != nil {
		fmt.Println(err)
		return
	}

	set, err := policy.NewSet(ctx, policy.SetConfig{
		Policies: policy.Source{Dir: dir},
		Data: map[string]any{"sluice": map[string]any{
			"tiers": map[string]any{"standard": map[string]any{"models": []any{"gpt-4o-mini"}, "rpm": 60}},
		}},
		Reloaded: func(set string, err error) {
			if err != nil {
				fmt.Printf("%s policy set not reloaded: %v\n", set, err)
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = set.Watch(ctx) }() // the gateway would log a broken watch

	r, err := set.Decide(ctx, policy.Input{
		Client:  policy.Client{ID: "billing-bot", Tier: "standard"},
		Request: policy.Request{Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o"},
	})
	if err != nil {
		fmt.Println("policy_error:", err)
		return
	}
	fmt.Println(r.Decision.HTTPStatus, r.Decision.Code, r.Revision == set.Status().Enforced.Revision)
	// Output:
	// 403 model_not_allowed true
}
