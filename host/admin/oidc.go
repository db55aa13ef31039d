package admin

import (
	"context"
	"errors"
	"time"

	"github.com/sluicehq/sluice/host/auth"
	"github.com/sluicehq/sluice/host/config"
)

// tokenRoles accepts an identity provider's tokens on the admin API: the
// role of a token is the highest its role claim maps to.
type tokenRoles struct {
	verifier *auth.Verifier
	claim    string
	roles    map[string]role
}

func newTokenRoles(c *config.AdminOIDC) *tokenRoles {
	if c == nil {
		return nil
	}
	skew := c.ClockSkew.D()
	if skew == 0 {
		skew = 30 * time.Second
	}
	tr := &tokenRoles{verifier: auth.NewVerifier(c.Issuer, c.Audience, c.JWKSURL, skew), claim: c.RoleClaim, roles: map[string]role{}}
	if tr.claim == "" {
		tr.claim = "groups"
	}
	for _, r := range c.Roles {
		tr.roles[r.Value] = max(tr.roles[r.Value], roleOf(r.Role))
	}
	return tr
}

// errNoSubject is a verified token that names no usable subject: the audit
// log could not say who acted.
var errNoSubject = errors.New("the token's sub is missing, too long or not printable")

// principal verifies token and returns who holds it, named "oidc:" and its
// subject, with its role (0 when its claims map to none):
// auth.ErrInvalidToken when it does not verify.
func (tr *tokenRoles) principal(ctx context.Context, token string) (principal, error) {
	claims, _, err := tr.verifier.Verify(ctx, token)
	if err != nil {
		return principal{}, err
	}
	sub, _ := claims["sub"].(string)
	if sub == "" || len(sub) > 128 {
		return principal{}, errNoSubject
	}
	for _, r := range sub {
		if r < ' ' || r == 0x7f {
			return principal{}, errNoSubject
		}
	}
	p := principal{name: "oidc:" + sub}
	var values []string
	switch v := claims[tr.claim].(type) {
	case string:
		values = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				values = append(values, s)
			}
		}
	}
	for _, v := range values {
		p.role = max(p.role, tr.roles[v])
	}
	return p, nil
}
