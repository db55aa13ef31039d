// Package admin serves the admin API on its own listener, behind its own token:
// clients, keys and usage reports (the same operations as the CLI), policy
// and plugin status and reloads, dry-run decisions, the usage dashboard,
// readiness and Prometheus metrics.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/admin/dashboard"
	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/auth"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/usage"
)

// Flusher makes every recorded usage event visible in the store; *usage.Ledger is one.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Control is what the admin API operates beyond accounts and usage: policy
// and plugin reloads, dry-run decisions and health. *server.Server provides it.
type Control interface {
	// PolicyStatus reports the policy set in force and its reload history.
	PolicyStatus() policy.Status
	// ReloadPolicy reloads the policy folder; the error lists the problems
	// that kept the last good set in force.
	ReloadPolicy(ctx context.Context) error
	// PluginStatus reports each plugin's module and reload history.
	PluginStatus() []plugin.Status
	// ReloadPlugins reads the plugin modules again.
	ReloadPlugins(ctx context.Context) error
	// Decide decides an OpenAI request body for a client without forwarding
	// it, as if sent with headers at the time at (now when zero), and
	// returns the explanation to show as JSON.
	Decide(ctx context.Context, client store.Client, path string, body []byte, probe policy.Probe) (any, *api.Error)
	// PolicyData is the data the gateway gives the policy (tiers,
	// departments, clients), for sluice policy eval --from-gateway.
	PolicyData() any
	// Replay finds a decision in the decision log and decides its logged
	// input again with the policy in force.
	Replay(ctx context.Context, decisionID string) (any, *api.Error)
	// Ready reports whether the gateway takes traffic, and why not.
	Ready() (bool, string)
	// UpstreamStatus reports each deployment's routing state (breaker,
	// calls in flight, latency), shown as JSON.
	UpstreamStatus() any
}

// Options are the parts of the admin API.
type Options struct {
	// Token is the admin token, named "admin", with the admin role; empty
	// for none.
	Token string
	// Tokens are further named tokens, each with a role.
	Tokens []config.AdminToken
	// OIDC accepts an identity provider's tokens beside the admin tokens;
	// nil for none.
	OIDC     *config.AdminOIDC
	Accounts *accounts.Service
	Store    store.Store
	Ledger   Flusher
	Log      *slog.Logger
	Control  Control
	// Metrics serves GET /metrics (Prometheus); nil leaves it out.
	Metrics fasthttp.RequestHandler
	// Dashboard serves the usage dashboard; nil leaves it out.
	Dashboard *dashboard.Dashboard
}

// API is the admin API.
type API struct {
	principals []principal
	tokenRoles *tokenRoles
	accounts   *accounts.Service
	store      store.Store
	ledger     Flusher
	log        *slog.Logger
	control    Control
	metrics    fasthttp.RequestHandler
	dashboard  *dashboard.Dashboard
}

// New returns the admin API guarded by o.Token and o.Tokens. The tokens are
// checked by configuration (config.Load): names unique, hashes well formed.
func New(o Options) *API {
	a := &API{accounts: o.Accounts, store: o.Store, ledger: o.Ledger,
		log: o.Log, control: o.Control, metrics: o.Metrics, dashboard: o.Dashboard, tokenRoles: newTokenRoles(o.OIDC)}
	if o.Token != "" {
		a.principals = append(a.principals, principal{name: "admin", role: roleAdmin, hash: sha256.Sum256([]byte(o.Token))})
	}
	for _, t := range o.Tokens {
		p := principal{name: t.Name, role: roleOf(t.Role)}
		if n, err := hex.Decode(p.hash[:], []byte(strings.ToLower(t.TokenSHA256))); err != nil || n != len(p.hash) || p.role == 0 {
			continue // refused by the configuration's checks; never a token that matches nothing
		}
		a.principals = append(a.principals, p)
	}
	return a
}

// Handler serves the admin API. /healthz, /readyz, /metrics and the
// dashboard's page (which holds no data) answer without the token; the
// rest needs it.
func (a *API) Handler(ctx *fasthttp.RequestCtx) {
	path, method := string(ctx.Path()), string(ctx.Method())
	switch {
	case path == "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
		return
	case path == "/readyz":
		a.ready(ctx)
		return
	case path == "/metrics" && a.metrics != nil:
		a.metrics(ctx)
		return
	case a.dashboard != nil && dashboard.IsPage(path):
		a.dashboard.ServePage(ctx)
		return
	}
	who, aerr := a.authorized(ctx)
	if aerr != nil {
		fail(ctx, aerr)
		return
	}
	if need := requiredRole(path, method); who.role == 0 {
		fail(ctx, &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Code: "insufficient_role",
			Message: fmt.Sprintf("The identity token of %q maps to no role of the admin API; %s %s needs %s.", who.name, method, path, need)})
		return
	} else if who.role < need {
		fail(ctx, &api.Error{Status: http.StatusForbidden, Type: api.TypePermission, Code: "insufficient_role",
			Message: fmt.Sprintf("The admin token %q has the %s role; %s %s needs %s.", who.name, who.role, method, path, need)})
		return
	}
	ctx.SetUserValue(actorValue, who.name)
	switch {
	case strings.HasPrefix(path, "/debug/pprof/"):
		// Go's profiles (CPU, heap, allocs, goroutine, mutex, block,
		// trace): they show code paths and memory, never requests.
		pprofhandler.PprofHandler(ctx)
	case a.dashboard != nil && dashboard.IsAPI(path):
		a.dashboard.ServeAPI(ctx)
	case path == "/admin/whoami" && method == fasthttp.MethodGet:
		writeJSON(ctx, http.StatusOK, map[string]string{"name": who.name, "role": who.role.String()})
	case path == "/admin/clients" && method == fasthttp.MethodGet:
		a.listClients(ctx)
	case path == "/admin/clients" && method == fasthttp.MethodPost:
		a.createClient(ctx)
	case strings.HasPrefix(path, "/admin/clients/") && method == fasthttp.MethodPatch:
		a.updateClient(ctx, strings.TrimPrefix(path, "/admin/clients/"))
	case strings.HasPrefix(path, "/admin/clients/") && strings.HasSuffix(path, "/disable") && method == fasthttp.MethodPost:
		a.disableClient(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/admin/clients/"), "/disable"), true)
	case strings.HasPrefix(path, "/admin/clients/") && strings.HasSuffix(path, "/enable") && method == fasthttp.MethodPost:
		a.disableClient(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/admin/clients/"), "/enable"), false)
	case strings.HasPrefix(path, "/admin/clients/") && method == fasthttp.MethodDelete:
		a.deleteClient(ctx, strings.TrimPrefix(path, "/admin/clients/"))
	case path == "/admin/keys" && method == fasthttp.MethodGet:
		a.listKeys(ctx)
	case path == "/admin/keys" && method == fasthttp.MethodPost:
		a.createKey(ctx)
	case strings.HasPrefix(path, "/admin/keys/") && strings.HasSuffix(path, "/rotate") && method == fasthttp.MethodPost:
		a.rotateKey(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/admin/keys/"), "/rotate"))
	case strings.HasPrefix(path, "/admin/keys/") && strings.HasSuffix(path, "/revoke") && method == fasthttp.MethodPost:
		a.revokeKey(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/admin/keys/"), "/revoke"))
	case strings.HasPrefix(path, "/admin/keys/") && method == fasthttp.MethodDelete:
		a.revokeKey(ctx, strings.TrimPrefix(path, "/admin/keys/"))
	case path == "/admin/usage" && method == fasthttp.MethodGet:
		a.usageReport(ctx)
	case a.control != nil && path == "/admin/policy" && method == fasthttp.MethodGet:
		writeJSON(ctx, http.StatusOK, a.control.PolicyStatus())
	case a.control != nil && path == "/admin/policy/data" && method == fasthttp.MethodGet:
		writeJSON(ctx, http.StatusOK, a.control.PolicyData())
	case a.control != nil && path == "/admin/policy/reload" && method == fasthttp.MethodPost:
		a.reload(ctx, "policy", a.control.ReloadPolicy)
	case a.control != nil && path == "/admin/upstreams" && method == fasthttp.MethodGet:
		writeJSON(ctx, http.StatusOK, map[string]any{"object": "list", "data": a.control.UpstreamStatus()})
	case a.control != nil && path == "/admin/plugins" && method == fasthttp.MethodGet:
		writeJSON(ctx, http.StatusOK, map[string]any{"object": "list", "data": a.control.PluginStatus()})
	case a.control != nil && path == "/admin/plugins/reload" && method == fasthttp.MethodPost:
		a.reload(ctx, "plugins", a.control.ReloadPlugins)
	case a.control != nil && path == "/admin/reload" && method == fasthttp.MethodPost:
		a.reload(ctx, "policy and plugins", func(c context.Context) error {
			return errors.Join(a.control.ReloadPolicy(c), a.control.ReloadPlugins(c))
		})
	case a.control != nil && path == "/admin/decide" && method == fasthttp.MethodPost:
		a.decide(ctx)
	case path == "/admin/audit" && method == fasthttp.MethodGet:
		a.auditLog(ctx)
	default:
		fail(ctx, api.NotFound(fmt.Sprintf("The admin API does not serve %s %s.", method, path)))
	}
}

// reload runs a reload and answers 200 with what is in force, or 422 with
// the problems that kept the last good version in force.
func (a *API) reload(ctx *fasthttp.RequestCtx, what string, reload func(context.Context) error) {
	err := reload(ctx)
	result := "ok"
	if err != nil {
		result = "refused"
	}
	if aerr := a.store.InsertAudit(ctx, store.AuditEvent{Actor: actorName(ctx), Action: "reload", Target: what,
		Detail: map[string]any{"result": result}}); aerr != nil {
		a.log.Error("a reload could not be written to the audit log", "error", aerr)
	}
	status := map[string]any{"policy": a.control.PolicyStatus(), "plugins": a.control.PluginStatus()}
	if err != nil {
		e := &api.Error{Status: http.StatusUnprocessableEntity, Type: api.TypeInvalidRequest, Code: "reload_refused",
			Message: fmt.Sprintf("The %s reload was refused; the last good version stays in force: %v", what, err)}
		ctx.SetStatusCode(e.Status)
		ctx.SetContentType("application/json")
		b, _ := json.Marshal(map[string]any{"error": json.RawMessage(errorObject(e)), "status": status})
		ctx.SetBody(b)
		return
	}
	writeJSON(ctx, http.StatusOK, status)
}

// errorObject is the inner object of an OpenAI error body.
func errorObject(e *api.Error) []byte {
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	json.Unmarshal(e.Body(), &body)
	return body.Error
}

// decide answers POST /admin/decide: the decision a client's request would
// get, the input it was made from and the rules that produced it.
func (a *API) decide(ctx *fasthttp.RequestCtx) {
	var req struct {
		ClientID string          `json:"client_id"`
		Path     string          `json:"path"`
		Request  json.RawMessage `json:"request"`
		// Headers, time and usage as policy.Probe reads them.
		policy.Probe
		// DecisionID replays a logged decision instead: the other fields
		// must be absent.
		DecisionID string `json:"decision_id"`
	}
	if !readJSON(ctx, &req) {
		return
	}
	if req.DecisionID != "" {
		if req.ClientID != "" || len(req.Request) > 0 {
			e := api.InvalidRequest("invalid_value", "decision_id replays a logged decision; give it alone, or client_id and request.")
			e.Param = "decision_id"
			fail(ctx, e)
			return
		}
		out, aerr := a.control.Replay(ctx, req.DecisionID)
		if aerr != nil {
			fail(ctx, aerr)
			return
		}
		writeJSON(ctx, http.StatusOK, out)
		return
	}
	if req.Path == "" {
		req.Path = "/v1/chat/completions"
	}
	if len(req.Request) == 0 {
		e := api.InvalidRequest("invalid_value", "request must hold the OpenAI request body to decide.")
		e.Param = "request"
		fail(ctx, e)
		return
	}
	client, err := a.store.GetClient(ctx, req.ClientID)
	if err != nil {
		a.storeError(ctx, "finding the client", err)
		return
	}
	ex, aerr := a.control.Decide(ctx, client, req.Path, req.Request, req.Probe)
	if aerr != nil {
		fail(ctx, aerr)
		return
	}
	writeJSON(ctx, http.StatusOK, ex)
}

// ready answers 200 while the gateway takes traffic, 503 with the reason
// while it drains or a backend it needs is down.
func (a *API) ready(ctx *fasthttp.RequestCtx) {
	ok, why := true, ""
	if a.control != nil {
		ok, why = a.control.Ready()
	}
	if !ok {
		writeJSON(ctx, http.StatusServiceUnavailable, map[string]any{"status": "not_ready", "reason": why})
		return
	}
	if why != "" {
		// Serving, with a part missing: a load balancer keeps sending
		// traffic, an operator sees why.
		writeJSON(ctx, http.StatusOK, map[string]any{"status": "degraded", "reason": why})
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"status": "ready"})
}

// authorized compares the token's hash in constant time; hashing first makes
// the comparison independent of the token's length too.
// authorized finds the token of the request among the configured ones. The
// hash is compared with every token, in constant time each, so the time
// taken says nothing of which token came closest or matched.
func (a *API) authorized(ctx *fasthttp.RequestCtx) (principal, *api.Error) {
	refused := &api.Error{Status: http.StatusUnauthorized, Type: api.TypeAuthentication, Code: "invalid_admin_token",
		Message: "The admin API needs 'Authorization: Bearer <admin token or identity token>'."}
	h := ctx.Request.Header.Peek("Authorization")
	token, ok := strings.CutPrefix(string(h), "Bearer ")
	if !ok {
		return principal{}, refused
	}
	token = strings.TrimSpace(token)
	sum := sha256.Sum256([]byte(token))
	var found principal
	match := 0
	for _, p := range a.principals {
		if subtle.ConstantTimeCompare(sum[:], p.hash[:]) == 1 {
			found, match = p, 1
		}
	}
	if match == 1 {
		return found, nil
	}
	if a.tokenRoles == nil || !auth.LooksLikeToken(token) {
		return principal{}, refused
	}
	p, err := a.tokenRoles.principal(ctx, token)
	switch {
	case errors.Is(err, auth.ErrInvalidToken) || errors.Is(err, errNoSubject):
		a.log.Debug("admin identity token refused", "error", err)
		return principal{}, refused
	case err != nil:
		a.log.Error("admin identity token could not be checked", "error", err)
		return principal{}, &api.Error{Status: http.StatusServiceUnavailable, Type: api.TypeUnavailable, Code: "auth_unavailable",
			Message: "Identity tokens cannot be checked right now; retry shortly, or use an admin token."}
	}
	return p, nil
}

// ClientJSON is a client in the admin API.
type ClientJSON struct {
	ID         string            `json:"id"`
	Department string            `json:"department"`
	Tier       string            `json:"tier"`
	Labels     map[string]string `json:"labels"`
	CreatedAt  time.Time         `json:"created_at"`
	DisabledAt *time.Time        `json:"disabled_at"`
}

// KeyJSON is a key in the admin API. Key is set only in the answer that creates it.
type KeyJSON struct {
	ID          string             `json:"id"`
	ClientID    string             `json:"client_id"`
	Name        string             `json:"name"`
	Prefix      string             `json:"prefix"`
	CreatedAt   time.Time          `json:"created_at"`
	CreatedBy   string             `json:"created_by"`
	RevokedAt   *time.Time         `json:"revoked_at"`
	ExpiresAt   *time.Time         `json:"expires_at"`
	ExpiresSoon bool               `json:"expires_soon"`
	Limits      accounts.KeyLimits `json:"limits"`
	Models      []string           `json:"models"`
	Tags        map[string]string  `json:"tags"`
	RotatedFrom string             `json:"rotated_from,omitempty"`
	Key         string             `json:"key,omitempty"`
}

func clientJSON(c store.Client) ClientJSON {
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	j := ClientJSON{ID: c.ID, Department: c.Department, Tier: c.Tier, Labels: labels, CreatedAt: c.CreatedAt}
	if !c.DisabledAt.IsZero() {
		t := c.DisabledAt
		j.DisabledAt = &t
	}
	return j
}

// updateClient changes a client's department, tier or labels: the members
// of the body that are present.
func (a *API) updateClient(ctx *fasthttp.RequestCtx, id string) {
	var u accounts.ClientUpdate
	if !readJSON(ctx, &u) {
		return
	}
	c, err := a.accounts.UpdateClient(actor(ctx), id, u)
	if err != nil {
		a.storeError(ctx, "updating client", err)
		return
	}
	writeJSON(ctx, http.StatusOK, clientJSON(c))
}

func (a *API) disableClient(ctx *fasthttp.RequestCtx, id string, disabled bool) {
	if err := a.accounts.DisableClient(actor(ctx), id, disabled); err != nil {
		a.storeError(ctx, "disabling client", err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"id": id, "disabled": disabled})
}

func (a *API) deleteClient(ctx *fasthttp.RequestCtx, id string) {
	if err := a.accounts.DeleteClient(actor(ctx), id); err != nil {
		a.storeError(ctx, "deleting client", err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"id": id, "deleted": true})
}

func keyJSON(k store.Key, now time.Time) KeyJSON {
	j := KeyJSON{ID: k.ID, ClientID: k.ClientID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy,
		Limits: accounts.LimitsOf(k.Scope), Models: k.Scope.Models, Tags: k.Scope.Tags, RotatedFrom: k.RotatedFrom}
	if j.Models == nil {
		j.Models = []string{}
	}
	if j.Tags == nil {
		j.Tags = map[string]string{}
	}
	if !k.Active() {
		t := k.RevokedAt
		j.RevokedAt = &t
	}
	if !k.ExpiresAt.IsZero() {
		t := k.ExpiresAt
		j.ExpiresAt = &t
		j.ExpiresSoon = k.Active() && accounts.ExpiresSoon(k, now)
	}
	return j
}

func (a *API) listClients(ctx *fasthttp.RequestCtx) {
	cs, err := a.accounts.Clients(ctx)
	if err != nil {
		a.internal(ctx, "listing clients", err)
		return
	}
	out := make([]ClientJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, clientJSON(c))
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"object": "list", "data": out})
}

func (a *API) createClient(ctx *fasthttp.RequestCtx) {
	var nc accounts.NewClient
	if !readJSON(ctx, &nc) {
		return
	}
	c, err := a.accounts.CreateClient(actor(ctx), nc)
	if err != nil {
		a.storeError(ctx, "creating client", err)
		return
	}
	writeJSON(ctx, http.StatusCreated, clientJSON(c))
}

func (a *API) listKeys(ctx *fasthttp.RequestCtx) {
	ks, err := a.accounts.Keys(ctx, string(ctx.QueryArgs().Peek("client_id")))
	if err != nil {
		a.internal(ctx, "listing keys", err)
		return
	}
	out := make([]KeyJSON, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyJSON(k, time.Now()))
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"object": "list", "data": out})
}

func (a *API) createKey(ctx *fasthttp.RequestCtx) {
	var nk accounts.NewKey
	if !readJSON(ctx, &nk) {
		return
	}
	nk.CreatedBy = actorName(ctx)
	secret, k, err := a.accounts.CreateKey(actor(ctx), nk)
	if err != nil {
		a.storeError(ctx, "creating key", err)
		return
	}
	j := keyJSON(k, time.Now())
	j.Key = secret
	writeJSON(ctx, http.StatusCreated, j)
}

// rotateKey issues a key in place of id; the old one works for the grace
// period the body names ("grace": "1h"; 24h by default).
func (a *API) rotateKey(ctx *fasthttp.RequestCtx, id string) {
	var req struct {
		Grace   string `json:"grace"`
		Expires string `json:"expires"`
	}
	if len(ctx.PostBody()) > 0 && !readJSON(ctx, &req) {
		return
	}
	grace := accounts.DefaultGrace
	if req.Grace != "" {
		d, err := time.ParseDuration(req.Grace)
		if err != nil || d < 0 {
			fail(ctx, api.InvalidRequest("invalid_value", "grace must be a duration such as 24h or 0s."))
			return
		}
		grace = d
	}
	secret, k, err := a.accounts.RotateKey(actor(ctx), id, grace, req.Expires, actorName(ctx))
	if err != nil {
		a.storeError(ctx, "rotating key", err)
		return
	}
	j := keyJSON(k, time.Now())
	j.Key = secret
	writeJSON(ctx, http.StatusCreated, j)
}

func (a *API) revokeKey(ctx *fasthttp.RequestCtx, id string) {
	if err := a.accounts.RevokeKey(actor(ctx), id); err != nil {
		a.storeError(ctx, "revoking key", err)
		return
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"id": id, "revoked": true})
}

func (a *API) usageReport(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	groupBy := string(args.Peek("group_by"))
	if groupBy == "" {
		groupBy = store.GroupByDepartment
	}
	format := string(args.Peek("format"))
	if format == "" {
		format = "json"
	}
	var q store.ReportQuery
	q.GroupBy, q.Tag = groupBy, string(args.Peek("tag"))
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if v := string(args.Peek(p.name)); v != "" {
			t, err := usage.ParseDate(v)
			if err != nil {
				e := api.InvalidRequest("invalid_value", fmt.Sprintf("%s: %v", p.name, err))
				e.Param = p.name
				fail(ctx, e)
				return
			}
			*p.dst = t
		}
	}
	if v := string(args.Peek("to")); len(v) == len("2006-01-02") {
		q.To = q.To.AddDate(0, 0, 1) // a date names the whole day
	}
	if err := a.ledger.Flush(ctx); err != nil {
		a.internal(ctx, "flushing the ledger", err)
		return
	}
	rows, err := a.store.Report(ctx, q)
	if err != nil {
		a.storeError(ctx, "reporting usage", err)
		return
	}
	var b strings.Builder
	if err := usage.WriteReport(&b, rows, groupBy, format); err != nil {
		fail(ctx, api.InvalidRequest("invalid_value", err.Error()))
		return
	}
	switch format {
	case "csv":
		ctx.SetContentType("text/csv")
	case "table":
		ctx.SetContentType("text/plain; charset=utf-8")
	default:
		ctx.SetContentType("application/json")
	}
	ctx.SetBodyString(b.String())
}

func (a *API) storeError(ctx *fasthttp.RequestCtx, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(ctx, &api.Error{Status: http.StatusNotFound, Type: api.TypeNotFound, Code: "not_found", Message: err.Error()})
	case errors.Is(err, store.ErrExists):
		fail(ctx, &api.Error{Status: http.StatusConflict, Type: api.TypeInvalidRequest, Code: "already_exists", Message: err.Error()})
	case errors.Is(err, store.ErrInvalid), errors.Is(err, accounts.ErrUnknownTier), errors.Is(err, accounts.ErrInvalidKeyRequest):
		fail(ctx, api.InvalidRequest("invalid_value", err.Error()))
	default:
		a.internal(ctx, what, err)
	}
}

func (a *API) internal(ctx *fasthttp.RequestCtx, what string, err error) {
	a.log.Error("admin request failed", "op", what, "error", err)
	fail(ctx, api.Internal("The admin operation failed: "+what+"."))
}

func readJSON(ctx *fasthttp.RequestCtx, v any) bool {
	dec := json.NewDecoder(strings.NewReader(string(ctx.PostBody())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(ctx, api.InvalidRequest("invalid_json", "The request body is not the expected JSON: "+err.Error()))
		return false
	}
	return true
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(ctx, api.Internal("The answer could not be encoded."))
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func fail(ctx *fasthttp.RequestCtx, e *api.Error) {
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(e.Body())
}

var _ Flusher = (*usage.Ledger)(nil)

// actorName is the name of the admin token a request came with.
func actorName(ctx *fasthttp.RequestCtx) string {
	name, _ := ctx.UserValue(actorValue).(string)
	return name
}

// auditLog answers the audit log: ?since=24h&actor=name&limit=100.
func (a *API) auditLog(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	q := store.AuditQuery{Actor: string(args.Peek("actor")), Limit: 100}
	if v := args.Peek("since"); len(v) > 0 {
		d, err := time.ParseDuration(string(v))
		if err != nil || d <= 0 {
			fail(ctx, api.InvalidRequest("invalid_value", "since must be a duration such as 24h."))
			return
		}
		q.From = time.Now().Add(-d)
	}
	if v := args.GetUintOrZero("limit"); v > 0 {
		q.Limit = v
	}
	evs, err := a.accounts.Audit(ctx, q)
	if err != nil {
		a.storeError(ctx, "reading the audit log", err)
		return
	}
	out := make([]map[string]any, 0, len(evs))
	for _, ev := range evs {
		out = append(out, map[string]any{"time": ev.Time, "actor": ev.Actor, "action": ev.Action, "target": ev.Target, "detail": ev.Detail})
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"object": "list", "data": out})
}
