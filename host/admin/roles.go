package admin

import (
	"context"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/admin/dashboard"
	"github.com/sluicehq/sluice/host/config"
)

// role is what an admin token may do; each role may do what the ones
// below it may.
type role int

const (
	roleViewer role = iota + 1
	roleOperator
	roleAdmin
)

func roleOf(name string) role {
	switch name {
	case config.RoleViewer:
		return roleViewer
	case config.RoleOperator:
		return roleOperator
	case config.RoleAdmin:
		return roleAdmin
	}
	return 0
}

func (r role) String() string {
	switch r {
	case roleViewer:
		return config.RoleViewer
	case roleOperator:
		return config.RoleOperator
	case roleAdmin:
		return config.RoleAdmin
	}
	return "no"
}

// principal is a configured admin token: who holds it, and its role.
type principal struct {
	name string
	role role
	hash [32]byte
}

// requiredRole is the role a request needs. Reading usage, the dashboard's
// data and status is a viewer's; reloads, the policy's data and dry-run
// decisions an operator's; clients, keys and the audit log, and anything
// not named here, an admin's.
func requiredRole(path, method string) role {
	read := method == fasthttp.MethodGet
	switch {
	case read && (path == "/admin/usage" || path == "/admin/whoami" || path == "/admin/policy" || path == "/admin/plugins" || path == "/admin/upstreams" || dashboard.IsAPI(path)):
		return roleViewer
	case path == "/admin/policy/data" || path == "/admin/decide" || strings.HasSuffix(path, "/reload") ||
		strings.HasPrefix(path, "/debug/pprof/"):
		return roleOperator
	}
	return roleAdmin
}

// actorValue is the user value that names the admin token of a request.
const actorValue = "sluice.admin.actor"

// actor is the context of a request's account changes, naming who makes them
// for the audit log.
func actor(ctx *fasthttp.RequestCtx) context.Context {
	return accounts.WithActor(ctx, actorName(ctx))
}
