package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/policy"
	"github.com/sluicehq/sluice/host/respcache"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/upstream"
)

// The reply cache sits where the upstream call is: a hit is an upstream
// reply that came from the cache instead of a provider, so the reply
// guardrails, redaction's restoration, the reply's translation and billing
// treat it exactly as a fresh one. What is kept is the upstream's reply
// before any of those: a tier whose guardrails changed since sees the reply
// through its new ones.

// headerCache is the response header that says what the cache did:
// hit, miss or bypass. It is absent when the policy does not cache.
const headerCache = "x-sluice-cache"

// sendCached answers a request from the reply cache when the policy caches
// its tier's replies and an identical request's reply is kept, and
// otherwise sends it (sendRouted) and keeps its reply if it is a 200 that
// completes. The caller's Cache-Control: no-cache skips the lookup, and
// no-store the keeping too.
func (g *Gateway) sendCached(ctx context.Context, resp *fasthttp.ResponseHeader, x *exchange, target *upstream.Target, call *upstream.Call,
	body func(upstreamModel string) ([]byte, error), estimate int64) (*upstream.Reply, *api.Error) {
	c := x.dec.Cache
	if g.cache == nil || c.TTL <= 0 {
		return g.sendRouted(ctx, x, target, call, body, estimate)
	}
	b, err := body(target.Model.UpstreamModel)
	if err != nil {
		return nil, errReencode
	}
	scope, ok := cacheScope(x, c.Scope)
	if !ok {
		return g.sendRouted(ctx, x, target, call, body, estimate)
	}
	// The stream flag is in the body too; it is named here so that a whole
	// reply is never replayed as a stream or the other way round.
	endpoint := x.ev.Endpoint + " " + call.Endpoint + " stream=" + strconv.FormatBool(call.Stream)
	key, err := respcache.Key(scope, endpoint, target.Model.Name, b)
	if err != nil {
		return g.sendRouted(ctx, x, target, call, body, estimate)
	}
	read, write := cacheControl(call.CallerHeaders)
	if read {
		if e, ok := g.cache.Get(ctx, key); ok && (e.Chunks != nil) == call.Stream {
			resp.Set(headerCache, store.CacheHit)
			x.ev.Cache = store.CacheHit
			if call.Stream {
				return &upstream.Reply{Status: http.StatusOK, Events: &replayEvents{chunks: e.Chunks}}, nil
			}
			return &upstream.Reply{Status: http.StatusOK, Body: e.Body}, nil
		}
		resp.Set(headerCache, store.CacheMiss)
		x.ev.Cache = store.CacheMiss
	} else {
		resp.Set(headerCache, store.CacheBypass)
		x.ev.Cache = store.CacheBypass
	}
	up, aerr := g.sendRouted(ctx, x, target, call, body, estimate)
	if aerr != nil || up == nil || up.Status != http.StatusOK || !write {
		return up, aerr
	}
	if up.Events != nil {
		up.Events = &recordedEvents{Events: up.Events, keep: func(chunks [][]byte) {
			g.cache.Set(stepContext, key, respcache.Entry{Chunks: chunks}, c.TTL)
		}, limit: g.cache.MaxEntryBytes()}
	} else {
		g.cache.Set(stepContext, key, respcache.Entry{Body: up.Body}, c.TTL)
	}
	return up, nil
}

// cacheScope is who may share the request's cached replies: its client,
// its department (its client when it has none) or everyone.
func cacheScope(x *exchange, scope string) (string, bool) {
	switch scope {
	case policy.CacheScopeClient:
		return ClientScope(x.ev.ClientID), x.ev.ClientID != ""
	case policy.CacheScopeDepartment:
		if x.ev.Department == "" {
			return ClientScope(x.ev.ClientID), x.ev.ClientID != ""
		}
		return DepartmentScope(x.ev.Department), true
	case policy.CacheScopeShared:
		return "shared", true
	}
	return "", false
}

// cacheControl reads the caller's Cache-Control: no-cache asks for a
// fresh reply (which is kept), no-store for one that is neither read
// from the cache nor kept.
func cacheControl(h upstream.HeaderSource) (read, write bool) {
	read, write = true, true
	var values [][]byte
	switch h := h.(type) {
	case nil:
	case interface{ PeekAll(key string) [][]byte }:
		values = h.PeekAll(fasthttp.HeaderCacheControl)
	default:
		values = [][]byte{h.Peek(fasthttp.HeaderCacheControl)}
	}
	for _, v := range values {
		for d := range bytes.SplitSeq(v, []byte{','}) {
			d = bytes.TrimSpace(d)
			switch {
			case bytes.EqualFold(d, []byte("no-cache")):
				read = false
			case bytes.EqualFold(d, []byte("no-store")):
				read, write = false, false
			}
		}
	}
	return read, write
}

// replayEvents plays a kept stream back as an upstream stream.
type replayEvents struct {
	chunks  [][]byte
	next    int
	aborted atomic.Bool
}

func (r *replayEvents) Next() ([]byte, error) {
	if r.aborted.Load() {
		return nil, upstream.ErrAborted
	}
	if r.next >= len(r.chunks) {
		return nil, io.EOF
	}
	r.next++
	return r.chunks[r.next-1], nil
}

func (r *replayEvents) Close() {}
func (r *replayEvents) Abort() { r.aborted.Store(true) }

// recordedEvents passes an upstream stream on and keeps a copy of its
// events; a stream that reaches its end is handed to keep. One that breaks,
// is cut, or outgrows limit bytes is not.
type recordedEvents struct {
	upstream.Events
	keep   func(chunks [][]byte)
	limit  int64
	chunks [][]byte
	size   int64
	over   bool
}

func (r *recordedEvents) Next() ([]byte, error) {
	data, err := r.Events.Next()
	switch {
	case err == io.EOF && !r.over && r.chunks != nil:
		r.keep(r.chunks)
		r.over = true // kept once
	case err != nil:
		r.over = true
	case !r.over:
		if r.size += int64(len(data)); r.limit > 0 && r.size > r.limit {
			r.over, r.chunks = true, nil
		} else {
			r.chunks = append(r.chunks, bytes.Clone(data))
		}
	}
	return data, err
}
