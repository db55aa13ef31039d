package bench

import (
	"time"

	"github.com/valyala/fasthttp"
)

// hopHeaders are meaningful for one connection only (RFC 9110, section 7.6.1);
// a proxy must not forward them. fasthttp does not strip them for us.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

// NewProxy returns a bare fasthttp reverse proxy to the HTTP server at
// upstreamAddr (host:port): it copies each request, forwards it over a
// pooled keep-alive connection, and copies the response back. It does what
// any gateway must do at the least, and nothing else, so that the latency
// it adds is the floor a gateway is measured against. Serve it with the
// returned server's Serve or ListenAndServe.
func NewProxy(upstreamAddr string) *fasthttp.Server {
	client := &fasthttp.HostClient{
		Addr:                     upstreamAddr,
		MaxConns:                 MaxConcurrency,
		MaxConnWaitTimeout:       5 * time.Second,
		MaxIdleConnDuration:      time.Minute,
		NoDefaultUserAgentHeader: true,
		ReadTimeout:              2 * time.Minute,
		WriteTimeout:             30 * time.Second,
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)

		ctx.Request.CopyTo(req)
		for _, h := range hopHeaders {
			req.Header.Del(h)
		}
		req.Header.SetHost(upstreamAddr)
		if err := client.Do(req, resp); err != nil {
			ctx.Error("upstream unreachable: "+err.Error(), fasthttp.StatusBadGateway)
			return
		}
		for _, h := range hopHeaders {
			resp.Header.Del(h)
		}
		resp.CopyTo(&ctx.Response)
	}
	return &fasthttp.Server{
		Handler:               handler,
		NoDefaultServerHeader: true,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           2 * time.Minute,
		CloseOnShutdown:       true,
	}
}
