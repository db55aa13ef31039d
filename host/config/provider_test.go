package config

import (
	"errors"
	"strings"
	"testing"
)

func TestProviderUpstreams(t *testing.T) {
	parse := func(upstream string) (*Config, error) {
		return Parse([]byte("upstreams:\n  - "+upstream+"\nmodels:\n  - {name: m, upstream: up}\n"), "sluice.yaml")
	}
	for _, ok := range []string{
		`{name: up, type: azure_openai, base_url: "https://acme.openai.azure.com", api_version: 2024-10-21, api_key: k}`,
		`{name: up, type: azure_openai, base_url: "https://acme.openai.azure.com", api_version: 2025-04-01-preview, azure_ad_token: t}`,
		`{name: up, type: bedrock, region: eu-west-3}`,
		`{name: up, type: bedrock, region: us-gov-west-1, aws_access_key_id: AKID, aws_secret_access_key: s}`,
		`{name: up, type: gemini, api_key: k}`,
		`{name: up, type: mock, protocol: bedrock}`,
		`{name: up, type: mock, protocol: gemini}`,
		`{name: up, type: mock, protocol: azure_openai}`,
	} {
		if _, err := parse(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, c := range []struct{ upstream, key, says string }{
		{`{name: up, type: azure_openai, base_url: "https://acme.openai.azure.com", api_key: k}`, "upstreams[0].api_version", "required"},
		{`{name: up, type: azure_openai, base_url: "https://acme.openai.azure.com", api_version: "21 Oct", api_key: k}`, "upstreams[0].api_version", "expected a date"},
		{`{name: up, type: azure_openai, api_version: 2024-10-21, api_key: k}`, "upstreams[0].base_url", "endpoint"},
		{`{name: up, type: azure_openai, base_url: "https://acme.openai.azure.com", api_version: 2024-10-21}`, "upstreams[0].api_key", "exactly one"},
		{`{name: up, type: azure_openai, base_url: "https://acme.openai.azure.com", api_version: 2024-10-21, api_key: k, azure_ad_token: t}`, "upstreams[0].api_key", "exactly one"},
		{`{name: up, type: bedrock}`, "upstreams[0].region", "required"},
		{`{name: up, type: bedrock, region: "us east"}`, "upstreams[0].region", "expected an AWS region"},
		{`{name: up, type: bedrock, region: us-east-1, aws_access_key_id: AKID}`, "upstreams[0].aws_access_key_id", "both"},
		{`{name: up, type: bedrock, region: us-east-1, api_key: k}`, "upstreams[0].api_key", "AWS credentials"},
		{`{name: up, type: gemini}`, "upstreams[0].api_key", "required"},
		{`{name: up, type: gemini, api_key: k, base_url: "ftp://x"}`, "upstreams[0].base_url", "http"},
		{`{name: up, type: mock, protocol: vertex}`, "upstreams[0].protocol", "azure_openai, bedrock or gemini"},
		{`{name: up, type: gemini, api_key: k, protocol: bedrock}`, "upstreams[0].protocol", "only a mock"},
		{`{name: up, type: openai_compatible}`, "upstreams[0].type", "bedrock, gemini"},
	} {
		_, err := parse(c.upstream)
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(ce.Msg, c.says) {
			t.Errorf("%s: %v, want an error at %s saying %q", c.upstream, err, c.key, c.says)
		}
	}
}

func TestMaskedHidesProviderSecrets(t *testing.T) {
	c, err := Parse([]byte(`
upstreams:
  - {name: az, type: azure_openai, base_url: "https://acme.openai.azure.com", api_version: 2024-10-21, azure_ad_token: entra-secret}
  - {name: br, type: bedrock, region: us-east-1, aws_access_key_id: AKIDSECRET, aws_secret_access_key: aws-secret, aws_session_token: session-secret}
models:
  - {name: m, upstream: br}
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Masked().YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"entra-secret", "AKIDSECRET", "aws-secret", "session-secret"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("effective config shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(string(out), "region: us-east-1") || c.Upstreams[1].AWSSecretAccessKey != "aws-secret" {
		t.Errorf("masking hid too much or changed the original:\n%s", out)
	}
}
