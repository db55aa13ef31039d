package config

import (
	"fmt"
	"net/url"
	"time"
)

// AdminOIDC is an identity provider whose tokens open the admin API: a
// token of the issuer for the audience passes, with the highest role its
// role claim maps to; the audit log names its subject.
type AdminOIDC struct {
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// JWKSURL is the provider's signing keys; empty discovers it.
	JWKSURL string `yaml:"jwks_url"`
	// RoleClaim names the claim whose values map to roles: "groups" by
	// default; a string or a list of strings.
	RoleClaim string `yaml:"role_claim"`
	// Roles maps a value of the role claim to a role.
	Roles []ClaimRole `yaml:"roles"`
	// ClockSkew is how long past its expiry a token is still accepted
	// (default 30s, at most 5m).
	ClockSkew Duration `yaml:"clock_skew"`
}

// ClaimRole gives the role of a token whose role claim holds Value.
type ClaimRole struct {
	Value string `yaml:"value"`
	Role  string `yaml:"role"`
}

// problem names the first key of o that is wrong, and why; "" when none.
func (o *AdminOIDC) problem() (key, msg string) {
	u, err := url.Parse(o.Issuer)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return ".issuer", "expected the provider's issuer URL, such as https://login.example.com/"
	case o.Audience == "":
		return ".audience", "must not be empty: tokens meant for another application must not pass"
	case o.ClockSkew.D() < 0 || o.ClockSkew.D() > 5*time.Minute:
		return ".clock_skew", "expected 0s to 5m"
	case len(o.Roles) == 0:
		return ".roles", "map at least one value of the role claim to a role"
	}
	for i, r := range o.Roles {
		if r.Value == "" || (r.Role != RoleViewer && r.Role != RoleOperator && r.Role != RoleAdmin) {
			return fmt.Sprintf(".roles[%d]", i), fmt.Sprintf("expected a value and viewer, operator or admin, got %q → %q", r.Value, r.Role)
		}
	}
	return "", ""
}
