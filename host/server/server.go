// Package server assembles a running Sluice from its configuration: the store,
// the ledger, the policy engine, the plugins, the limiter, the upstreams, and
// the two listeners. The CLI and the integration tests start Sluice through it.
package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/accounts"
	"github.com/sluicehq/sluice/host/admin"
	"github.com/sluicehq/sluice/host/admin/dashboard"
	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/auth"
	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/metrics"
	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/proxy"
	"github.com/sluicehq/sluice/host/respcache"
	"github.com/sluicehq/sluice/host/routing"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/telemetry"
	"github.com/sluicehq/sluice/host/tokens"
	"github.com/sluicehq/sluice/host/upstream"
	"github.com/sluicehq/sluice/host/usage"
	"github.com/sluicehq/sluice/policies"
)

// Server is a running Sluice.
type Server struct {
	cfg      *config.Config
	accounts *accounts.Service
	// keyBroadcast tells other replicas to forget cached keys; nil
	// without Redis.
	keyBroadcast *keyBroadcast
	// tokens accepts identity providers' tokens; nil without auth.oidc.
	tokens      *auth.Tokens
	log         *slog.Logger
	store       store.Store
	ledger      *usage.Ledger
	auth        *auth.Authenticator
	plugins     *plugin.Runtime
	slots       []*plugin.Slot
	pluginWatch *plugin.Watcher
	router      *upstream.Router
	routes      *routing.Table
	cache       *respcache.Cache
	limiter     limits.Backend
	gateway     *proxy.Gateway
	policy      *policy.Set
	decisions   *policy.DecisionLog
	// background runs the policy watcher and the clients' data refresh
	// until stopBackground.
	background     sync.WaitGroup
	stopBackground context.CancelFunc
	clientsChanged chan struct{}
	draining       atomic.Bool
	metrics        *metrics.Metrics
	tracer         *telemetry.Provider
	public         *fasthttp.Server
	adminSrv       *fasthttp.Server
	publicLn       net.Listener
	adminLn        net.Listener
	adminToken     string
	demoKey        string
	served         chan error
}

// Start opens everything the configuration names and starts serving. On error,
// whatever was opened is closed again.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (s *Server, err error) {
	if log == nil {
		log = slog.Default()
	}
	s = &Server{cfg: cfg, log: log, served: make(chan error, 2), clientsChanged: make(chan struct{}, 1)}
	started := time.Now()
	// The token vocabulary takes a few hundred milliseconds of one core to
	// build: it is built beside the policy's compilation and the plugins'
	// loading, and waited for before the listeners open.
	vocab := make(chan time.Duration, 1)
	go func() { t := time.Now(); tokens.Warm(); vocab <- time.Since(t) }()
	var startup startupTimes
	// Every error return below sets s to nil; close what was opened through
	// a copy of the pointer.
	opened := s
	defer func() {
		if err != nil {
			opened.Close(context.Background())
			s = nil
		}
	}()
	dataDir := cfg.Resolve(cfg.DataDir)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	storeErr := error(nil)
	if cfg.Store.Driver == store.DriverPostgres {
		// A replica starts while PostgreSQL is down: it cannot check any
		// key until the database is back (503 auth_unavailable), says so
		// in its readiness, and spools its ledger.
		s.store, storeErr = store.OpenPostgresDeferred(ctx, cfg.Store.DSN)
		if storeErr != nil && s.store != nil {
			log.Warn("the store is unreachable; starting without it: keys cannot be checked until it is back", "error", storeErr)
		} else if storeErr != nil {
			return nil, fmt.Errorf("store: %w", storeErr)
		}
	} else if s.store, err = OpenStore(ctx, cfg); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// The ledger goes through a spool in the data folder, so that a store
	// outage costs disk, not memory, and a crash during one loses at most a
	// flush interval.
	if s.ledger, err = usage.OpenLedger(s.store, usage.LedgerOptions{SpoolDir: dataDir}, log); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if s.auth, err = auth.New(s.store, cfg.Auth.CacheTTL.D()); err != nil {
		return nil, err
	}
	s.auth.NoteStore(storeErr)
	if len(cfg.Auth.OIDC) > 0 {
		if s.tokens, err = auth.NewTokens(cfg.Auth.OIDC, s.store, cfg.DefaultTier, cfg.Auth.CacheTTL.D()); err != nil {
			return nil, err
		}
	}
	startup.store = time.Since(started)
	t := time.Now()
	if err := s.loadPolicy(ctx); err != nil {
		return nil, err
	}
	startup.policy, t = time.Since(t), time.Now()
	guards, err := s.loadPlugins(ctx, cfg.PluginCache())
	if err != nil {
		return nil, err
	}
	startup.plugins = time.Since(t)
	if s.limiter, err = openLimiter(ctx, cfg, s.store, log); err != nil {
		return nil, err
	}
	if s.router, err = upstream.NewRouter(cfg); err != nil {
		return nil, err
	}
	if s.routes, err = routing.NewTable(cfg, s.router); err != nil {
		return nil, err
	}
	if s.cache, err = respcache.New(respcache.Options{MaxBytes: cfg.CacheMaxBytes(), MaxEntryBytes: cfg.Cache.MaxEntryBytes,
		RedisURL: cfg.CacheRedisURL(), Timeout: cfg.Cache.Timeout.D(), Log: log.With("component", "cache")}); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	startup.tokens = <-vocab

	acc := accounts.New(s.store, cfg.TierNames(), cfg.DefaultTier, s.auth)
	s.accounts = acc
	if cfg.Limits.Backend == "redis" {
		if s.keyBroadcast, err = startKeyBroadcast(ctx, cfg.Limits.Redis.URL, s.forgetCredentials, log); err != nil {
			return nil, fmt.Errorf("limits.redis: %w", err)
		}
	}
	acc.OnKeysChange(func() {
		s.forgetCredentials()
		if s.keyBroadcast != nil {
			s.keyBroadcast.publish()
		}
	})
	acc.OnClientChange(func() {
		select {
		case s.clientsChanged <- struct{}{}:
		default: // a refresh is already due
		}
	})
	if s.adminToken, err = adminToken(cfg, dataDir); err != nil {
		return nil, err
	}
	if cfg.Demo.Enabled {
		if s.demoKey, err = ensureDemo(ctx, acc, cfg, dataDir); err != nil {
			return nil, err
		}
	}
	if err := s.startTelemetry(ctx); err != nil {
		return nil, err
	}
	// A nil *policy.DecisionLog in the interface would not be a nil
	// interface: pass one only when the log is on.
	var decisions proxy.DecisionLog
	if s.decisions != nil {
		decisions = s.decisions
	}
	s.gateway = proxy.New(proxy.Options{
		Config: cfg, Authenticator: s.auth, Tokens: s.tokens, Decider: s.policy, DecisionLog: decisions, Guards: guards,
		Metrics: s.metrics, Tracer: s.tracer,
		Limiter: s.limiter, Router: s.router, Routes: s.routes, Cache: s.cache, Recorder: s.ledger, Log: log,
	})
	s.public = &fasthttp.Server{
		Handler:            s.gateway.Handler,
		ErrorHandler:       s.gateway.ErrorHandler,
		MaxRequestBodySize: cfg.Server.MaxBodyBytes,
		ReadTimeout:        cfg.Server.ReadTimeout.D(),
		// A stream is bounded by its upstream's timeout; the write timeout
		// bounds a caller that stops reading, which would otherwise hold a
		// stream, its upstream connection and its reservation for ever.
		WriteTimeout: longestUpstreamTimeout(cfg) + 30*time.Second,
		// Header parse errors must not quote the request: it holds the key.
		SecureErrorLogMessage: true,
		IdleTimeout:           2 * time.Minute,
		NoDefaultServerHeader: true,
		NoDefaultDate:         false,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{log},
	}
	s.adminSrv = &fasthttp.Server{
		Handler: admin.New(admin.Options{
			Token: s.adminToken, Tokens: cfg.Server.AdminTokens, OIDC: cfg.Server.AdminOIDC, Accounts: acc, Store: s.store, Ledger: s.ledger, Log: log, Control: s,
			Metrics:   s.metrics.Handler(),
			Dashboard: dashboard.New(s.store, s.health, dashboard.WithFlusher(s.ledger), dashboard.WithLogger(log)),
		}).Handler,
		MaxRequestBodySize:    1 << 20,
		ReadTimeout:           cfg.Server.ReadTimeout.D(),
		WriteTimeout:          cfg.Server.ReadTimeout.D(),
		SecureErrorLogMessage: true,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{log},
	}
	if s.publicLn, err = listenLingering(cfg.Server.Listen); err != nil {
		return nil, fmt.Errorf("server.listen: %w", err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.Server.AdminListen); err != nil {
		return nil, fmt.Errorf("server.admin_listen: %w", err)
	}
	go func() { s.served <- s.public.Serve(s.publicLn) }()
	go func() { s.served <- s.adminSrv.Serve(s.adminLn) }()
	startup.total = time.Since(started)
	log.Info("sluice serving", "listen", s.Addr(), "admin_listen", s.AdminAddr(),
		"plugins", len(guards), "models", len(cfg.Models), "store", cfg.StorePath(), "startup_ms", startup)
	return s, nil
}

// startupTimes is how long each part of the start took: what an operator
// reads when a replica is slow to come up.
type startupTimes struct {
	store, policy, plugins, tokens, total time.Duration
}

func (st startupTimes) LogValue() slog.Value {
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	return slog.GroupValue(
		slog.Int64("store", ms(st.store)),
		slog.Int64("policy", ms(st.policy)),
		slog.Int64("plugins", ms(st.plugins)),
		slog.Int64("token_vocabulary", ms(st.tokens)), // built beside the policy and the plugins
		slog.Int64("total", ms(st.total)),
	)
}

// Addr is the address of the OpenAI-compatible API.
func (s *Server) Addr() string { return s.publicLn.Addr().String() }

// AdminAddr is the address of the admin API.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// AdminToken is the bearer token of the admin API.
func (s *Server) AdminToken() string { return s.adminToken }

// DemoKey is the demo client's key, or "" when there is no demo client.
func (s *Server) DemoKey() string { return s.demoKey }

// Store is the server's store, for tests and tools in the same process.
func (s *Server) Store() store.Store { return s.store }

// Ledger is the server's usage ledger.
func (s *Server) Ledger() *usage.Ledger { return s.ledger }

// Done reports a listener that stopped serving on its own.
func (s *Server) Done() <-chan error { return s.served }

// Close stops accepting, lets in-flight requests finish within ctx, flushes the
// ledger and releases everything. It is safe to call on a partly started Server.
func (s *Server) Close(ctx context.Context) error {
	// Readiness turns false first; the admin listener keeps answering it
	// (and /metrics) while the public one drains. The public one keeps
	// accepting for the drain delay, so that a load balancer polling
	// readiness stops sending before connections are refused.
	s.draining.Store(true)
	if d := s.cfg.Server.DrainDelay.D(); d > 0 && s.public != nil {
		s.log.Info("draining: not ready, still accepting", "drain_delay", d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	var errs []error
	if s.public != nil {
		errs = append(errs, s.shutdownPublic(ctx))
	}
	if s.adminSrv != nil {
		actx := ctx
		if ctx.Err() != nil {
			// The drain used the deadline up; closing the admin
			// listener's idle connections needs a moment of its own.
			var cancel context.CancelFunc
			actx, cancel = context.WithTimeout(context.Background(), time.Second)
			defer cancel()
		}
		errs = append(errs, s.adminSrv.ShutdownWithContext(actx))
	}
	if s.router != nil {
		s.router.Close()
	}
	if s.keyBroadcast != nil {
		s.keyBroadcast.Close()
	}
	s.cache.Close()
	if s.tokens != nil {
		s.tokens.Close()
	}
	if s.tracer != nil {
		errs = append(errs, s.tracer.Shutdown(context.Background()))
	}
	if s.stopBackground != nil {
		s.stopBackground()
		s.background.Wait()
	}
	if s.policy != nil {
		// Before the decision log: the shadow decisions still queued are
		// written to it.
		s.policy.Close()
	}
	if s.decisions != nil {
		errs = append(errs, s.decisions.Close())
	}
	if s.limiter != nil {
		// After the streams: their commits are the last the limiter takes,
		// and a Redis limiter flushes commits it had to defer.
		errs = append(errs, s.limiter.Close())
	}
	if s.ledger != nil {
		// The ledger gets time of its own to flush, even when the drain used
		// up the caller's deadline.
		lctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		errs = append(errs, s.ledger.Close(lctx))
		cancel()
	}
	if s.pluginWatch != nil {
		errs = append(errs, s.pluginWatch.Close())
	}
	for _, slot := range s.slots {
		errs = append(errs, slot.Close(context.Background()))
	}
	if s.plugins != nil {
		errs = append(errs, s.plugins.Close(context.Background()))
	}
	if s.auth != nil {
		s.auth.Close()
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
}

// streamRecordGrace is how long streams cut at the shutdown deadline have
// to write their last event and be recorded.
const streamRecordGrace = 5 * time.Second

// shutdownPublic closes the public listener and waits, until ctx is done,
// for the requests in flight to be answered and recorded, streams
// included. Streams still open then are cut (see proxy.Gateway.AbortStreams)
// and recorded with what was relayed, within streamRecordGrace: an orderly
// shutdown loses no stream.
func (s *Server) shutdownPublic(ctx context.Context) error {
	// fasthttp closes each connection once its response has ended only
	// while a shutdown is in progress: it runs under a context of its own,
	// which outlives ctx by the grace.
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.public.ShutdownWithContext(sctx) }()
	var err error
	select {
	case err = <-shut:
	case <-ctx.Done():
		s.log.Warn("requests still open at the shutdown deadline: ending their streams and recording what was relayed")
		s.gateway.AbortStreams()
		grace := time.AfterFunc(streamRecordGrace, cancel)
		err = <-shut
		grace.Stop()
	}
	if err != nil {
		return fmt.Errorf("requests still open %v after the shutdown deadline: %w", streamRecordGrace, err)
	}
	// Streams outlive their handlers: they are recorded once their
	// writers end, which fasthttp waits for before closing their
	// connections; this only confirms it.
	wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
	defer wcancel()
	if err := s.gateway.WaitStreams(wctx); err != nil {
		s.log.Error("streams could not be recorded before exit; their usage is lost", "error", err)
		return err
	}
	return nil
}

// loadPolicy loads the policy set in force (and the shadow set, if any)
// with the data it reads, opens the decision log, and starts keeping both
// current: the clients' data is refreshed as the store changes, and the
// policy folder is watched when reload.watch is on.
func (s *Server) loadPolicy(ctx context.Context) error {
	cfg := s.cfg
	src, shadow, err := policySources(cfg)
	if err != nil {
		return err
	}
	tiers, err := cfg.TiersData()
	if err != nil {
		return err
	}
	departments, err := cfg.DepartmentsData()
	if err != nil {
		return err
	}
	clients, err := clientsData(ctx, s.store)
	if errors.Is(err, store.ErrUnreachable) {
		// Started without the store: no key can be checked either, so no
		// request reaches the policy before the first refresh fills this.
		s.log.Warn("policy data: no clients until the store is back", "error", err)
		clients, err = map[string]any{}, nil
	}
	if err != nil {
		return err
	}
	s.policy, err = policy.NewSet(ctx, policy.SetConfig{
		Policies: src, Shadow: shadow, TimeZone: cfg.TimeZone(),
		EvalTimeout: cfg.Policy.EvalTimeout.D(), AllowBuiltins: cfg.Policy.AllowBuiltins, Headers: cfg.Policy.Headers,
		Data:          map[string]any{"sluice": map[string]any{"tiers": tiers, "departments": departments, "clients": clients}},
		DecisionCache: cmp.Or(cfg.Policy.DecisionCache, -1), // 0 in the configuration keeps none
		ShadowQueue:   cfg.Policy.ShadowQueue,
		// The shadow set decides off the request path; its decisions are
		// logged here, as the gateway logs the enforced ones.
		ShadowDone: func(requestID string, r policy.Result, err error) {
			if sh := r.Shadow; sh != nil && sh.Disagrees {
				s.log.Warn("shadow policy disagrees", "request_id", requestID, "decision_id", r.ID,
					"enforced", policy.Outcome(r.Decision, err), "shadow", policy.Outcome(sh.Decision, sh.Err),
					"enforced_revision", r.Revision, "shadow_revision", sh.Revision)
			}
			if s.decisions != nil {
				s.decisions.Record(requestID, r, err)
			}
		},
		Reloaded: func(set string, err error) {
			if err != nil {
				s.log.Error("policy reload refused; the last good set stays in force", "set", set, "error", err)
				return
			}
			st := s.policy.Status()
			revision := st.Enforced.Revision
			if set == "shadow" && st.Shadow != nil {
				revision = st.Shadow.Revision
			}
			s.log.Info("policy in force", "set", set, "revision", revision)
		},
		Rewatched: func(dir string, err error) {
			if err != nil {
				s.log.Warn("policy folder not followed", "dir", dir, "error", err)
				return
			}
			s.log.Info("policy folder replaced; watch re-established", "dir", dir)
		},
	})
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if path := cfg.DecisionLogPath(); path != "" {
		if s.decisions, err = policy.OpenDecisionLog(path, policy.DecisionLogConfig{SampleRate: cfg.Policy.DecisionLogSample}); err != nil {
			return fmt.Errorf("policy.decision_log: %w", err)
		}
		if err := ownerOnly(path); err != nil {
			return fmt.Errorf("policy.decision_log: %w", err)
		}
	}
	bg, cancel := context.WithCancel(context.Background())
	s.stopBackground = cancel
	if cfg.Policy.Bundle.URL != "" {
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			s.policy.Poll(bg, cfg.Policy.Bundle.Poll.D())
		}()
	}
	if cfg.Reload.Watch {
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			if err := s.policy.Watch(bg); err != nil {
				s.log.Error("policy folder no longer watched; SIGHUP and POST /admin/policy/reload still reload", "error", err)
			}
		}()
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		s.refreshClients(bg, clients)
	}()
	return nil
}

// policySources are the policy set the configuration enforces (the
// policies built into the binary unless policy.dir or policy.bundle names
// others) and its shadow set.
func policySources(cfg *config.Config) (src, shadow policy.Source, err error) {
	src = policy.Source{FS: policies.FS}
	if cfg.Policy.Dir != "" {
		src = policy.Source{Dir: cfg.Resolve(cfg.Policy.Dir)}
	}
	if b := cfg.Policy.Bundle; b.File != "" || b.URL != "" {
		src = policy.Source{BundleURL: b.URL}
		if b.File != "" {
			src = policy.Source{Bundle: cfg.Resolve(b.File)}
		}
		if b.PublicKey != "" {
			key, err := os.ReadFile(cfg.Resolve(b.PublicKey))
			if err != nil {
				return src, shadow, fmt.Errorf("policy.bundle.public_key: %w", err)
			}
			src.Verify = &policy.BundleVerification{PublicKey: string(key), KeyID: b.KeyID, Algorithm: b.Algorithm}
		}
	}
	if cfg.Policy.ShadowDir != "" {
		shadow = policy.Source{Dir: cfg.Resolve(cfg.Policy.ShadowDir)}
	}
	return src, shadow, nil
}

// clientsData is data.sluice.clients: every client's department, tier and
// labels by id.
func clientsData(ctx context.Context, st store.Store) (map[string]any, error) {
	cs, err := st.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy data: listing clients: %w", err)
	}
	out := make(map[string]any, len(cs))
	for _, c := range cs {
		labels := make(map[string]any, len(c.Labels))
		for k, v := range c.Labels {
			labels[k] = v
		}
		out[c.ID] = map[string]any{"department": c.Department, "tier": c.Tier, "labels": labels}
	}
	return out, nil
}

// refreshClients rewrites data.sluice.clients when the clients in the store
// change: at once after a change through this server's admin API, and every
// auth.cache_ttl for changes made through another replica.
func (s *Server) refreshClients(ctx context.Context, last map[string]any) {
	every := max(s.cfg.Auth.CacheTTL.D(), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.clientsChanged:
		}
		clients, err := clientsData(ctx, s.store)
		s.auth.NoteStore(err)
		if err != nil {
			s.log.Warn("policy data not refreshed", "error", err)
			continue
		}
		if reflect.DeepEqual(clients, last) {
			continue
		}
		if err := s.policy.SetData(ctx, "/sluice/clients", clients); err != nil {
			s.log.Error("policy data not refreshed", "error", err)
			continue
		}
		last = clients
	}
}

// PolicyStatus reports the policy set in force and its reload history.
func (s *Server) PolicyStatus() policy.Status { return s.policy.Status() }

// ReloadPolicy reloads the policy folder (and the shadow folder).
func (s *Server) ReloadPolicy(ctx context.Context) error { return s.policy.Reload(ctx) }

// Reload reloads the policies and the plugins, as SIGHUP asks.
func (s *Server) Reload(ctx context.Context) error {
	return errors.Join(s.ReloadPolicy(ctx), s.ReloadPlugins(ctx))
}

// Decide answers a dry run of POST /admin/decide.
func (s *Server) Decide(ctx context.Context, client store.Client, path string, body []byte, probe policy.Probe) (any, *api.Error) {
	return s.gateway.Explain(ctx, client, path, body, probe)
}

// PolicyData answers GET /admin/policy/data: the data the gateway writes
// for the policy.
func (s *Server) PolicyData() any { return s.policy.Data() }

// Replay answers POST /admin/decide with a decision_id: the line of the
// decision log, and the decision the policy in force makes for its input.
func (s *Server) Replay(ctx context.Context, id string) (any, *api.Error) {
	path := s.cfg.DecisionLogPath()
	if path == "" {
		return nil, &api.Error{Status: http.StatusConflict, Type: api.TypeInvalidRequest, Code: "decision_log_off",
			Message: "The decision log is off (policy.decision_log), so no decision can be replayed."}
	}
	logged, err := policy.FindDecision(path, id)
	if errors.Is(err, policy.ErrDecisionNotFound) {
		return nil, api.NotFound(fmt.Sprintf("Decision %q is not in this gateway's decision log: allowed decisions are sampled "+
			"(policy.decision_log_sample), and another replica keeps its own log.", id))
	}
	if err != nil {
		s.log.Error("decision log could not be read", "error", err)
		return nil, api.Internal("The decision log could not be read.")
	}
	replayed, err := s.policy.Replay(ctx, logged.Input)
	out := struct {
		Logged      policy.LoggedDecision `json:"logged"`
		Replayed    policy.Explanation    `json:"replayed"`
		Error       string                `json:"replayed_error,omitempty"`
		SameOutcome bool                  `json:"same_outcome"`
	}{Logged: logged, Replayed: replayed}
	if err != nil {
		out.Error = err.Error()
		out.SameOutcome = logged.Result == nil
	} else {
		out.SameOutcome = logged.Result != nil && policy.SameOutcome(*logged.Result, replayed.Decision)
	}
	return out, nil
}

// Ready reports whether the server takes traffic: not while it drains, nor
// while the Redis its limits need is unreachable and denying. While the
// store is unreachable it still does, degraded (the reason says so): keys it
// confirmed in the last auth.StaleFor keep working, and the ledger spools.
func (s *Server) Ready() (bool, string) {
	if s.draining.Load() {
		return false, "draining"
	}
	if r, ok := s.limiter.(*limits.Redis); ok && r.Stats().Down && s.cfg.Limits.Redis.FailMode == "deny" {
		return false, "limits backend (Redis) unreachable"
	}
	if why, open := s.unhealthyPlugins(); why != "" {
		if open {
			// Only fail_mode open plugins are failing: requests still pass.
			return true, "degraded: " + why
		}
		return false, why
	}
	if s.auth != nil && s.auth.StoreDown() {
		return true, fmt.Sprintf("degraded: the store is unreachable; keys confirmed in the last %v keep working (none after a start without the store), others get 503 auth_unavailable; the ledger spools", auth.StaleFor)
	}
	return true, ""
}

// unhealthyPlugins says which plugins are unhealthy and why, "" when none
// is, and whether every one of them fails open: a fail_mode closed plugin
// that fails most of its calls denies most requests that need it, and the
// gateway is not ready; one that fails open lets them through unchecked.
func (s *Server) unhealthyPlugins() (why string, allOpen bool) {
	var reasons []string
	allOpen = true
	for i, slot := range s.slots {
		h := slot.Health()
		if h.Healthy {
			continue
		}
		reasons = append(reasons, fmt.Sprintf("plugin %s unhealthy: %s", slot.Name(), h.Reason))
		allOpen = allOpen && s.cfg.Plugins[i].FailMode == "open"
	}
	return strings.Join(reasons, "; "), allOpen
}

func (s *Server) loadPlugins(ctx context.Context, cacheDir string) ([]proxy.Guard, error) {
	if len(s.cfg.Plugins) == 0 {
		return nil, nil
	}
	var err error
	if s.plugins, err = plugin.NewRuntime(ctx, cacheDir); err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	s.plugins.LimitMemory(uint64(s.cfg.PluginMemoryMB()) << 20)
	// The plugins load side by side: each one's instances are made and
	// smoke-tested on a core of its own.
	slots := make([]*plugin.Slot, len(s.cfg.Plugins))
	errs := make([]error, len(s.cfg.Plugins))
	var loading sync.WaitGroup
	for i, pc := range s.cfg.Plugins {
		loading.Go(func() {
			wasm, opts, err := s.pluginModule(i)
			if err != nil {
				errs[i] = err
				return
			}
			if slots[i], err = s.plugins.NewSlot(ctx, wasm, opts); err != nil {
				errs[i] = fmt.Errorf("plugins[%d] (%s): %w", i, pc.Name, err)
			}
		})
	}
	loading.Wait()
	for _, slot := range slots {
		if slot != nil {
			s.slots = append(s.slots, slot) // closed with the server, if another failed
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var guards []proxy.Guard
	for i, pc := range s.cfg.Plugins {
		guards = append(guards, guardOf(slots[i], pc.FailMode == "open"))
	}
	if s.cfg.Reload.Watch {
		if err := s.watchPlugins(); err != nil {
			return nil, err
		}
	}
	return guards, nil
}

// pluginModule reads the i-th configured plugin's module and options.
func (s *Server) pluginModule(i int) ([]byte, plugin.Options, error) {
	pc := s.cfg.Plugins[i]
	wasm, pinned, err := readModule(s.cfg, pc)
	if err != nil {
		return nil, plugin.Options{}, fmt.Errorf("plugins[%d] (%s): %w", i, pc.Name, err)
	}
	conf := []byte("{}")
	if pc.Config != nil {
		if conf, err = json.Marshal(pc.Config); err != nil {
			return nil, plugin.Options{}, fmt.Errorf("plugins[%d] (%s): config: %w", i, pc.Name, err)
		}
	}
	return wasm, plugin.Options{
		Name: pc.Name, Config: conf, Timeout: pc.Timeout.D(), PoolSize: pc.PoolSize,
		MaxQueue: pc.MaxQueue, QueueTimeout: pc.QueueTimeout.D(),
		MemoryLimitPages: uint32(pc.MemoryLimitMB) * 16, // 64 KiB pages; 0 takes the default
		SHA256:           cmp.Or(pc.SHA256, pinned),
		Health: plugin.HealthOptions{Window: pc.Health.Window.D(), MinCalls: pc.Health.MinCalls,
			MaxFailureRatio: pc.Health.MaxFailureRatio},
		Logger: s.log.With("plugin", pc.Name),
	}, nil
}

// watchPlugins reloads a plugin when its module file changes.
func (s *Server) watchPlugins() error {
	w, err := plugin.NewWatcher(plugin.WatchOptions{Logger: s.log.With("component", "plugins")})
	if err != nil {
		return fmt.Errorf("plugins: watching the module files: %w", err)
	}
	s.pluginWatch = w
	for i, slot := range s.slots {
		if _, ok := s.cfg.Plugins[i].Builtin(); ok {
			continue // part of the binary: it changes with the binary
		}
		if err := w.Add(s.cfg.Resolve(s.cfg.Plugins[i].Path), slot); err != nil {
			return fmt.Errorf("plugins[%d] (%s): watching %s: %w", i, slot.Name(), s.cfg.Plugins[i].Path, err)
		}
	}
	return nil
}

// ReloadPlugins reads every plugin's module file again and swaps in those
// that changed and pass their checks; the others keep serving. It returns
// the errors of the modules it refused.
func (s *Server) ReloadPlugins(ctx context.Context) error {
	var errs []error
	for i, slot := range s.slots {
		wasm, opts, err := s.pluginModule(i)
		if err == nil {
			err = slot.Reload(ctx, wasm, opts)
		}
		if err != nil {
			s.log.Error("plugin reload refused; the loaded module stays in service", "plugin", slot.Name(), "error", err)
			errs = append(errs, fmt.Errorf("%s: %w", slot.Name(), err))
			continue
		}
		s.log.Info("plugin reloaded", "plugin", slot.Name(), "sha256", slot.Status().SHA256)
	}
	return errors.Join(errs...)
}

// startTelemetry sets up the Prometheus metrics and, when an OTLP endpoint
// is configured, tracing.
func (s *Server) startTelemetry(ctx context.Context) error {
	cfg := s.cfg
	var models, plugins []string
	for _, m := range cfg.Models {
		models = append(models, m.Name)
	}
	for _, p := range cfg.Plugins {
		plugins = append(plugins, p.Name)
	}
	src := metrics.Sources{
		PolicyReloads: func() (ok, failed uint64) {
			st := s.policy.Status()
			return st.Enforced.ReloadsOK, st.Enforced.ReloadsFailed
		},
		ShadowDisagreements: func() uint64 { return s.policy.Status().Disagreements },
		ShadowErrors:        func() uint64 { return s.policy.Status().ShadowErrors },
		ShadowDropped:       func() uint64 { return s.policy.Status().ShadowDropped },
		DecisionCache: func() (hits, misses uint64) {
			st := s.policy.Status()
			return st.CacheHits, st.CacheMisses
		},
		ShadowReloads: func() (ok, failed uint64) {
			if sh := s.policy.Status().Shadow; sh != nil {
				return sh.ReloadsOK, sh.ReloadsFailed
			}
			return 0, 0
		},
		AuthCache:        s.auth.CacheStats,
		LedgerQueueDepth: func() int { return int(s.ledger.Stats().Pending) },
		KeysExpiringSoon: s.keysExpiringSoon(),
		Ready:            func() bool { ok, _ := s.Ready(); return ok },
		PluginMemory: func() (reserved, limit, refused uint64) {
			if s.plugins == nil {
				return 0, uint64(cfg.PluginMemoryMB()) << 20, 0
			}
			st := s.plugins.MemoryStats()
			return st.Reserved, st.Limit, st.Refused
		},
		PluginHealth: func(name string) (bool, uint64) {
			for _, slot := range s.slots {
				if slot.Name() == name {
					h := slot.Health()
					return h.Healthy, h.TimesUnhealthy
				}
			}
			return true, 0
		},
	}
	if s.decisions != nil {
		src.DecisionLogDropped = s.decisions.Dropped
	}
	if s.tokens != nil {
		src.ClaimsDropped = s.tokens.DroppedClaims
	}
	if r, ok := s.limiter.(*limits.Redis); ok {
		src.LimitsBackendErrors = func() uint64 { return r.Stats().Errors }
	}
	s.metrics = metrics.New(metrics.Options{Models: models, Plugins: plugins, MaxClients: cfg.Telemetry.MetricsMaxClients,
		Codes: []string{limits.CodeUnavailable, "reload_refused"}, Sources: src})
	s.metrics.WatchDeployments(deploymentMetrics(s.routes))
	var err error
	s.tracer, err = telemetry.Setup(ctx, telemetry.Options{OTLPEndpoint: cfg.Telemetry.OTLPEndpoint, ServiceName: "sluice",
		ServiceVersion: Version, SampleRatio: cfg.Telemetry.TraceSampleRatio})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	return nil
}

// Version is the version Sluice reports in traces; the binary sets it.
var Version = "dev"

// health is what the dashboard shows of plugins and policy.
func (s *Server) health(context.Context) dashboard.Health {
	st := s.policy.Status()
	return dashboard.Health{Plugins: s.PluginStatus(), Policy: &st}
}

// UpstreamStatus reports every deployment's health, for /admin/upstreams.
func (s *Server) UpstreamStatus() any {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var peek routing.Peek
	if s.limiter != nil {
		peek = s.limiter.Peek
	}
	return s.routes.Status(ctx, time.Now(), peek)
}

// PluginStatus reports every plugin's module and reload history.
func (s *Server) PluginStatus() []plugin.Status {
	out := make([]plugin.Status, len(s.slots))
	for i, slot := range s.slots {
		out[i] = slot.Status()
	}
	return out
}

// guardOf adapts a plugin slot to the gateway's guard.
func guardOf(p *plugin.Slot, failOpen bool) proxy.Guard {
	return proxy.Guard{
		Name:     p.Name(),
		FailOpen: failOpen,
		Scan: func(ctx context.Context, texts []string) ([]proxy.Finding, proxy.ScanUse, error) {
			found, call, err := p.ScanCall(ctx, texts)
			use := proxy.ScanUse{Guest: call.Guest, Fault: call.Fault.String(), Cancelled: call.Cancelled}
			if err != nil {
				return nil, use, err
			}
			out := make([]proxy.Finding, len(found))
			for i, f := range found {
				out[i] = proxy.Finding{Type: f.Type, Text: f.Message, Start: f.Start, End: f.End, Score: f.Score}
			}
			return out, use, nil
		},
	}
}

// OpenStore opens the configured store: a SQLite file, or PostgreSQL. The
// CLI opens the same store as a running server through it.
func OpenStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	if cfg.Store.Driver == store.DriverPostgres {
		return store.Open(ctx, store.DriverPostgres, cfg.Store.DSN)
	}
	return store.Open(ctx, store.DriverSQLite, cfg.StorePath())
}

// openLimiter opens the configured limits backend. The in-process one is
// rebuilt from the ledger, so that a restart resets no budget; Redis keeps
// its own counts.
func openLimiter(ctx context.Context, cfg *config.Config, st store.Store, log *slog.Logger) (limits.Backend, error) {
	if cfg.Limits.Backend == "redis" {
		r, err := limits.NewRedis(limits.RedisOptions{
			URL: cfg.Limits.Redis.URL, Timeout: cfg.Limits.Redis.Timeout.D(),
			FailMode: limits.FailMode(cfg.Limits.Redis.FailMode), Log: log.With("component", "limits"),
			// The reconcile leaves the request path: one round trip per request.
			BackgroundCommit: true,
			// A Redis that lost its counters is given the ledger's back.
			Seed: func(ctx context.Context) (map[string]limits.Usage, error) {
				return ledgerUsage(ctx, st, time.Now())
			},
			Lease: leaseOf(cfg),
		})
		if err != nil {
			return nil, fmt.Errorf("limits.redis: %w", err)
		}
		return r, nil
	}
	m := limits.NewMemory()
	if err := seedLimits(ctx, st, m, time.Now()); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// seedLimits rebuilds in-process counters from the ledger.
func seedLimits(ctx context.Context, st store.Store, m *limits.Memory, now time.Time) error {
	usage, err := ledgerUsage(ctx, st, now)
	if err != nil {
		return err
	}
	for key, u := range usage {
		m.Seed(key, u)
	}
	return nil
}

// ledgerUsage is what the ledger says every client, department and key used this
// month, today (both UTC) and in the last minute, by limiter scope key.
func ledgerUsage(ctx context.Context, st store.Store, now time.Time) (map[string]limits.Usage, error) {
	now = now.UTC()
	day := now.Truncate(24 * time.Hour)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	rows, err := st.UsageWindows(ctx, month, day, now.Add(-time.Minute))
	if err != nil {
		return nil, fmt.Errorf("rebuilding limits from the ledger: %w", err)
	}
	out := make(map[string]limits.Usage, len(rows))
	for _, r := range rows {
		key := proxy.ClientScope(r.ID)
		switch r.Scope {
		case store.ScopeDepartment:
			key = proxy.DepartmentScope(r.ID)
		case store.ScopeKey:
			key = proxy.KeyScope(r.ID)
		}
		thisMonth, today, lastMinute := r.Windows[0], r.Windows[1], r.Windows[2]
		out[key] = limits.Usage{
			MinuteRequests: lastMinute.Requests, MinuteTokens: lastMinute.TotalTokens,
			DayTokens: today.TotalTokens, MonthTokens: thisMonth.TotalTokens, MonthNanos: thisMonth.CostNanos,
		}
	}
	return out, nil
}

// adminToken is the configured token, or one generated on first start and
// kept in the data folder, readable by its owner only.
func adminToken(cfg *config.Config, dataDir string) (string, error) {
	if cfg.Server.AdminToken != "" {
		return cfg.Server.AdminToken, nil
	}
	path := filepath.Join(dataDir, "admin.token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), ownerOnly(path)
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	token := "sluice-admin-" + hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the admin token: %w", err)
	}
	return token, nil
}

// ensureDemo creates the demo client and a key on first start. The demo key is
// kept in the data folder (mode 0600) so that every start can print a curl
// line that works; production configurations turn the demo off.
func ensureDemo(ctx context.Context, acc *accounts.Service, cfg *config.Config, dataDir string) (string, error) {
	path := filepath.Join(dataDir, "demo.key")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), ownerOnly(path)
	}
	_, err := acc.CreateClient(ctx, accounts.NewClient{ID: cfg.Demo.Client, Department: cfg.Demo.Department})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return "", fmt.Errorf("demo client: %w", err)
	}
	secret, _, err := acc.CreateKey(ctx, accounts.NewKey{ClientID: cfg.Demo.Client, Name: "demo", CreatedBy: "demo"})
	if err != nil {
		return "", fmt.Errorf("demo key: %w", err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the demo key: %w", err)
	}
	return secret, nil
}

// ownerOnly narrows a file Sluice wrote to its owner (0600): one created by
// another tool, or by hand, may be readable by others, and it holds keys,
// tokens or who called what. A file already that narrow is left alone.
func ownerOnly(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(path, perm&0o700); err != nil {
			return fmt.Errorf("making %s readable by its owner only: %w", path, err)
		}
	}
	return nil
}

// leaseOf is how long a reservation may wait for its commit before another
// replica takes its replica for dead and refunds it: limits.redis.lease, or
// longer than any request may take.
func leaseOf(cfg *config.Config) time.Duration {
	if d := cfg.Limits.Redis.Lease.D(); d > 0 {
		return d
	}
	return longestUpstreamTimeout(cfg) + time.Minute
}

func longestUpstreamTimeout(cfg *config.Config) time.Duration {
	var d time.Duration
	for _, u := range cfg.Upstreams {
		d = max(d, u.Timeout.D())
	}
	return max(d, 2*time.Minute)
}

// keysExpiringSoon counts the keys that expire within a week, reading the
// store at most once a minute however often /metrics is scraped; a failed
// read keeps the last count.
func (s *Server) keysExpiringSoon() func() int {
	var mu sync.Mutex
	var last time.Time
	var n int
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < time.Minute {
			return n
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if c, err := s.accounts.ExpiringSoon(ctx); err == nil {
			n, last = c, time.Now()
		}
		return n
	}
}

// forgetCredentials drops every cached key and token identity of this
// process.
func (s *Server) forgetCredentials() {
	s.auth.Forget()
	if s.tokens != nil {
		s.tokens.Forget()
	}
}

// deploymentMetrics is what the metrics read of each deployment.
func deploymentMetrics(t *routing.Table) []metrics.Deployment {
	var out []metrics.Deployment
	seen := map[string]bool{}
	for _, d := range t.Deployments() {
		if seen[d.Name] {
			continue // two models on one deployment name: one series
		}
		seen[d.Name] = true
		out = append(out, metrics.Deployment{
			Name: d.Name,
			State: func() float64 {
				switch d.State(time.Now()) {
				case routing.StateOpen:
					return 2
				case routing.StateHalfOpen:
					return 1
				}
				return 0
			},
			InFlight: func() float64 { return float64(d.InFlight()) },
			Reason:   func() string { return d.Reason(time.Now()) },
		})
	}
	return out
}
