package telemetry

import (
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/propagation"
)

// propagationOf is W3C Trace Context, the one format Sluice reads and writes.
var propagationOf propagation.TraceContext

// HeaderCarrier reads and writes a fasthttp request's headers for
// OpenTelemetry propagation.
type HeaderCarrier struct{ Header *fasthttp.RequestHeader }

// Get returns the value of header key, "" when absent.
func (c HeaderCarrier) Get(key string) string { return string(c.Header.Peek(key)) }

// Set sets header key.
func (c HeaderCarrier) Set(key, value string) { c.Header.Set(key, value) }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	var keys []string
	for k := range c.Header.All() {
		keys = append(keys, string(k))
	}
	return keys
}

var _ propagation.TextMapCarrier = HeaderCarrier{}
