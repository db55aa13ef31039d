package server

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sluicehq/sluice/host/config"
)

// identityProvider is an OpenID provider inside the test: a discovery
// document and a JWKS endpoint whose signing key the test can rotate.
type identityProvider struct {
	t      *testing.T
	issuer string
	mu     sync.Mutex
	keys   map[string]*rsa.PrivateKey // by key id; the JWKS publishes these
}

func startIdentityProvider(t *testing.T) *identityProvider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &identityProvider{t: t, issuer: "http://" + ln.Addr().String(), keys: map[string]*rsa.PrivateKey{}}
	p.rotate("k1")
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": p.issuer, "jwks_uri": p.issuer + "/keys",
			"authorization_endpoint": p.issuer + "/auth", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		var set jose.JSONWebKeySet
		for id, k := range p.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: id, Algorithm: "RS256", Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// rotate publishes a new signing key under id in place of the others.
func (p *identityProvider) rotate(id string) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.keys = map[string]*rsa.PrivateKey{id: k}
	p.mu.Unlock()
	return k
}

// sign makes a token with claims, signed by key under kid.
func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (p *identityProvider) key(id string) *rsa.PrivateKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[id]
}

// claims are a valid token's claims for sub, expiring in an hour.
func (p *identityProvider) claims(sub string, extra map[string]any) map[string]any {
	c := map[string]any{"iss": p.issuer, "aud": "sluice", "sub": sub, "iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// TestIdentityProviderTokensAuthenticate: callers that present a token of
// a configured provider are mapped to a client (created on first use) with
// the department and tier their claims give, and limited like key callers;
// every token that should not pass does not: another audience, expired, an
// unknown issuer, an attacker's key, no signature. A rotated signing key is
// picked up without a restart.
func TestIdentityProviderTokensAuthenticate(t *testing.T) {
	idp := startIdentityProvider(t)
	cfg := testConfig(t, t.TempDir(), open)
	cfg.Tiers["limited"] = config.Tier{Models: []string{"*"}, Budget: config.Budget{RPM: 3}}
	cfg.Auth.OIDC = []config.OIDC{{Issuer: idp.issuer, Audience: "sluice", DepartmentClaim: "department",
		GroupsClaim: "groups", GroupTiers: []config.GroupTier{{Group: "llm-limited", Tier: "limited"}}}}
	h := start(t, cfg)

	good := sign(t, idp.key("k1"), "k1", idp.claims("svc-build", map[string]any{"department": "research", "groups": []string{"staff", "llm-limited"}}))
	for i := range 3 {
		if err := h.hello(good, "gpt-4o-mini"); err != nil {
			t.Fatalf("request %d with a valid token: %v", i, err)
		}
	}
	apiError(t, h.hello(good, "gpt-4o-mini"), http.StatusTooManyRequests, "rate_limit_exceeded")
	_, clients := h.admin("GET", "/admin/clients", "")
	if !strings.Contains(string(clients), `"id":"sso-svc-build","department":"research","tier":"limited"`) {
		t.Errorf("the token's client was not created as its claims say: %s", clients)
	}

	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	bad := map[string]string{
		"another audience": sign(t, idp.key("k1"), "k1", idp.claims("svc-x", map[string]any{"aud": "other-app"})),
		"expired":          sign(t, idp.key("k1"), "k1", idp.claims("svc-x", map[string]any{"exp": time.Now().Add(-10 * time.Minute).Unix()})),
		"unknown issuer":   sign(t, idp.key("k1"), "k1", idp.claims("svc-x", map[string]any{"iss": "https://evil.example"})),
		"attacker's key":   sign(t, attacker, "k1", idp.claims("svc-x", nil)),
		"no signature":     unsigned(idp.claims("svc-x", nil)),
		"no subject":       sign(t, idp.key("k1"), "k1", idp.claims("", nil)),
	}
	for name, tok := range bad {
		if e := apiError(t, h.hello(tok, "gpt-4o-mini"), http.StatusUnauthorized, "invalid_api_key"); strings.Contains(e.Message, "expired") {
			t.Errorf("%s: the message tells why: %q", name, e.Message)
		}
	}

	// The provider rotates its key: tokens signed with the new one pass.
	idp.rotate("k2")
	rotated := sign(t, idp.key("k2"), "k2", idp.claims("svc-deploy", nil))
	if err := h.hello(rotated, "gpt-4o-mini"); err != nil {
		t.Fatalf("a token signed with the rotated key: %v", err)
	}

	// A disabled token client is refused like a key client.
	if status, _ := h.admin("POST", "/admin/clients/sso-svc-deploy/disable", ""); status != http.StatusOK {
		t.Fatal("disable")
	}
	apiError(t, h.hello(rotated, "gpt-4o-mini"), http.StatusForbidden, "client_disabled")
}

// unsigned is a token with "alg": "none".
func unsigned(claims map[string]any) string {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body, _ := json.Marshal(claims)
	return head + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}
