package config

import (
	"regexp"
	"strings"
)

// Provider is what the provider-specific upstream types read, besides the
// base URL, key and timeouts every upstream has.
type Provider struct {
	// Protocol, for type mock, is the provider wire protocol the built-in
	// mock speaks: openai (the default; no adapter in between),
	// azure_openai, bedrock or gemini. The mock is then served in-process
	// behind the real adapter of that type, so the adapter's translation,
	// authentication and signing are exercised end to end.
	Protocol string `yaml:"protocol"`
	// APIVersion is Azure OpenAI's api-version query parameter, such as
	// 2024-10-21. Required for azure_openai.
	APIVersion string `yaml:"api_version"`
	// AzureADToken is a Microsoft Entra ID bearer token, sent instead of
	// api_key as "Authorization: Bearer". It is read once, at start
	// (${AZURE_AD_TOKEN} takes it from the environment), and not renewed.
	AzureADToken string `yaml:"azure_ad_token"`
	// Region is the AWS region of a bedrock upstream, such as us-east-1.
	// Required for bedrock.
	Region string `yaml:"region"`
	// AWSAccessKeyID, AWSSecretAccessKey and AWSSessionToken are static
	// credentials for bedrock. Unset, the AWS SDK's default chain is used
	// (environment, shared files, SSO, web identity, container and
	// instance roles).
	AWSAccessKeyID     string `yaml:"aws_access_key_id"`
	AWSSecretAccessKey string `yaml:"aws_secret_access_key"`
	AWSSessionToken    string `yaml:"aws_session_token"`
}

// Upstream types and mock protocols.
const (
	TypeOpenAI      = "openai"
	TypeAnthropic   = "anthropic"
	TypeMock        = "mock"
	TypeAzureOpenAI = "azure_openai"
	TypeBedrock     = "bedrock"
	TypeGemini      = "gemini"
)

var (
	apiVersionPattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)
	regionPattern     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
)

// checkProvider checks the fields of an upstream of a provider type
// (azure_openai, bedrock, gemini) or of a mock's protocol. key is the
// upstream's key in the file, such as upstreams[2].
func checkProvider(u Upstream, key string, bad func(key, format string, args ...any) error) error {
	if u.Type == TypeMock {
		switch u.Protocol {
		case "", TypeOpenAI, TypeAnthropic, TypeAzureOpenAI, TypeBedrock, TypeGemini:
			return nil
		}
		return bad(key+".protocol", "expected openai, anthropic, azure_openai, bedrock or gemini for a mock, got %q", u.Protocol)
	}
	if u.Protocol != "" {
		return bad(key+".protocol", "only a mock upstream takes a protocol; type %s speaks its own", u.Type)
	}
	if u.BaseURL != "" && !strings.HasPrefix(u.BaseURL, "http://") && !strings.HasPrefix(u.BaseURL, "https://") {
		return bad(key+".base_url", "expected an http:// or https:// URL, got %q", u.BaseURL)
	}
	switch u.Type {
	case TypeAzureOpenAI:
		if u.BaseURL == "" {
			return bad(key+".base_url", "expected the resource's endpoint, such as https://NAME.openai.azure.com")
		}
		if u.APIVersion == "" {
			return bad(key+".api_version", "required for azure_openai: the api-version to call, such as 2024-10-21")
		}
		if !apiVersionPattern.MatchString(u.APIVersion) {
			return bad(key+".api_version", "expected a date such as 2024-10-21 or 2025-04-01-preview, got %q", u.APIVersion)
		}
		if (u.APIKey == "") == (u.AzureADToken == "") {
			return bad(key+".api_key", "set exactly one of api_key (sent as the api-key header) and azure_ad_token (an Entra ID bearer token)")
		}
	case TypeBedrock:
		if u.Region == "" {
			return bad(key+".region", "required for bedrock: the AWS region, such as us-east-1")
		}
		if !regionPattern.MatchString(u.Region) {
			return bad(key+".region", "expected an AWS region such as us-east-1, got %q", u.Region)
		}
		if (u.AWSAccessKeyID == "") != (u.AWSSecretAccessKey == "") {
			return bad(key+".aws_access_key_id", "set both aws_access_key_id and aws_secret_access_key, or neither to use the AWS default credential chain")
		}
		if u.APIKey != "" {
			return bad(key+".api_key", "bedrock signs its requests with AWS credentials; use aws_access_key_id and aws_secret_access_key, or the default chain")
		}
	case TypeGemini:
		if u.APIKey == "" {
			return bad(key+".api_key", "required for gemini: the Gemini API key, sent as x-goog-api-key")
		}
	}
	return nil
}

// maskProvider hides the provider secrets of u.
func (u *Upstream) maskProvider() {
	for _, s := range []*string{&u.AzureADToken, &u.AWSAccessKeyID, &u.AWSSecretAccessKey, &u.AWSSessionToken} {
		if *s != "" {
			*s = masked
		}
	}
}
