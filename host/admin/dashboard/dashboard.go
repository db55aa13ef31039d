// Package dashboard serves the usage dashboard on the admin listener: spend and
// tokens per department over time, the top clients, denied requests by reason,
// and the health of plugins and policies.
//
// It is two halves with different access rules. The page and its assets
// (HTML, JavaScript, CSS, embedded in the binary so that the dashboard works
// on a closed network) carry no data and are served to anyone who can reach
// the admin listener. The data comes from JSON endpoints under APIPrefix, which
// the admin API guards with its bearer token like its other routes; the page
// asks for that token once and sends it with every request.
//
// Wiring it into the admin handler:
//
//	switch {
//	case dashboard.IsPage(path):
//		d.ServePage(ctx) // before the token check
//	case dashboard.IsAPI(path):
//		d.ServeAPI(ctx) // after it
//	}
package dashboard

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/store"
)

// Paths the dashboard serves on the admin listener.
const (
	// PagePath is the dashboard page. Its assets are under PagePath + "/".
	PagePath = "/admin/dashboard"
	// APIPrefix starts the paths of the JSON endpoints, which need the
	// admin token.
	APIPrefix = PagePath + "/api/"
)

// IsPage reports whether path is the page or one of its assets, which need no
// token. The API's paths are not.
func IsPage(p string) bool {
	return p == PagePath || (strings.HasPrefix(p, PagePath+"/") && !IsAPI(p))
}

// IsAPI reports whether path is one of the JSON endpoints, which need the
// admin token.
func IsAPI(p string) bool { return strings.HasPrefix(p, APIPrefix) }

// Health is what the health panel shows: the plugins in service and the
// policy sets in force.
type Health struct {
	Plugins []plugin.Status `json:"plugins"`
	// Policy is nil when the gateway runs without a policy set.
	Policy *policy.Status `json:"policy"`
}

// Flusher makes every recorded usage event visible in the store;
// *usage.Ledger is one.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Option configures a Dashboard.
type Option func(*Dashboard)

// WithFlusher flushes f before each query that reads the ledger, so that the
// dashboard counts the requests of the last moments too, as the admin usage
// report does. Without it the dashboard shows what the store holds.
func WithFlusher(f Flusher) Option { return func(d *Dashboard) { d.flusher = f } }

// WithLogger logs failed store queries to log; the default discards them.
// Errors are logged with the operation that failed, never with event contents.
func WithLogger(log *slog.Logger) Option { return func(d *Dashboard) { d.log = log } }

// Dashboard serves the dashboard page and its data. It is safe for concurrent use.
type Dashboard struct {
	store   store.Store
	health  func(context.Context) Health
	flusher Flusher
	log     *slog.Logger
	now     func() time.Time // replaced in tests
}

// New returns the dashboard over st. health reports plugin and policy health
// when the page asks for it; when nil, the panel says that nothing reports it.
func New(st store.Store, health func(context.Context) Health, opts ...Option) *Dashboard {
	d := &Dashboard{
		store:  st,
		health: health,
		log:    slog.New(slog.DiscardHandler),
		now:    time.Now,
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

//go:embed assets
var assetFS embed.FS

// asset is one embedded file, with what its response needs.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assets maps the path under PagePath ("" for the page itself) to its file.
var assets = loadAssets()

func loadAssets() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(assetFS, "assets", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		name := strings.TrimPrefix(p, "assets/")
		if name == "index.html" {
			name = ""
		}
		out[name] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("dashboard: reading embedded assets: %v", err)) // the build embedded them
	}
	return out
}

// contentSecurityPolicy allows the page nothing but its own assets and API:
// the admin token lives in the page's session storage, so no script from
// elsewhere may run there, and no data may be sent elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ServePage serves the page at PagePath and its assets below it. They carry
// no data, so they need no token. PagePath + "/" redirects to PagePath, since
// the page refers to its assets and API by relative URLs.
func (d *Dashboard) ServePage(ctx *fasthttp.RequestCtx) {
	p := string(ctx.Path())
	if !ctx.IsGet() && !ctx.IsHead() {
		methodNotAllowed(ctx)
		return
	}
	if p == PagePath+"/" {
		ctx.Redirect(PagePath, http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(p, PagePath)
	if ok {
		name = strings.TrimPrefix(name, "/")
	}
	a, found := assets[name]
	if !ok || !found || name == "index.html" {
		fail(ctx, api.NotFound(fmt.Sprintf("The dashboard has no file %s.", p)))
		return
	}
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// no-cache, not max-age: a new binary may bring new assets under the
	// same names; the ETag makes the revalidation cheap.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.SetContentType(a.contentType)
	if string(ctx.Request.Header.Peek("If-None-Match")) == a.etag {
		ctx.SetStatusCode(http.StatusNotModified)
		return
	}
	ctx.SetBody(a.body)
}

// ServeAPI serves the JSON endpoints under APIPrefix. The caller must have
// checked the admin token. Every endpoint but health takes
// range=24h|7d|30d (default 7d):
//
//	GET usage     spend, tokens and requests per department, per bucket and in total
//	GET clients   the top clients; by=cost|tokens (default cost), limit=1..100 (default 10)
//	GET denials   denied and failed requests per code, with a reason for people
//	GET health    plugin and policy health
//
// Errors are OpenAI-shaped; a bad parameter is a 400 naming it.
func (d *Dashboard) ServeAPI(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		methodNotAllowed(ctx)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	switch name := strings.TrimPrefix(string(ctx.Path()), APIPrefix); name {
	case "usage":
		d.serveUsage(ctx)
	case "clients":
		d.serveClients(ctx)
	case "denials":
		d.serveDenials(ctx)
	case "health":
		d.serveHealth(ctx)
	default:
		fail(ctx, api.NotFound(fmt.Sprintf("The dashboard API has no endpoint %q.", name)))
	}
}

func methodNotAllowed(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Allow", "GET, HEAD")
	fail(ctx, &api.Error{Status: http.StatusMethodNotAllowed, Type: api.TypeInvalidRequest, Code: "method_not_allowed",
		Message: fmt.Sprintf("The dashboard serves GET, not %s.", ctx.Method())})
}

func fail(ctx *fasthttp.RequestCtx, e *api.Error) {
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(e.Body())
}
