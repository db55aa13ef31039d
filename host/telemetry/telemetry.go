// Package telemetry is Sluice's OpenTelemetry tracing: one server span per
// request, a child span per stage of the request path (auth, policy, each
// plugin, limits, upstream), the caller's W3C trace context honoured and
// passed on to the upstream, and spans exported over OTLP/HTTP.
//
// Spans carry the GenAI semantic conventions' attributes (model, operation,
// token usage) and Sluice's client, department and decision id. They never
// carry prompt text, matched values or keys: no method here takes them.
//
// With no exporter configured, tracing is off and every call returns at
// once, allocating nothing.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultServiceName is the default of Options.ServiceName.
const DefaultServiceName = "sluice"

// Options configure tracing.
type Options struct {
	// OTLPEndpoint is the OTLP/HTTP collector's URL, for example
	// "http://otel-collector:4318"; "/v1/traces" is appended when the URL has
	// no path. http:// sends in clear text, https:// over TLS. Empty turns
	// tracing off, unless Exporter is set. The exporter still reads the
	// standard OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TIMEOUT
	// variables, for a collector that wants credentials.
	OTLPEndpoint string
	// ServiceName is the service.name of the spans. Default "sluice".
	ServiceName string
	// ServiceVersion is the service.version of the spans, when set.
	ServiceVersion string
	// SampleRatio is the share of new traces recorded, in (0, 1]; 0 is read
	// as 1. A request whose caller's traceparent says "sampled" is always
	// recorded, one that says "not sampled" never is, so that a trace is
	// whole or absent.
	SampleRatio float64
	// Exporter receives the spans instead of an OTLP collector; tests use
	// tracetest.NewInMemoryExporter.
	Exporter sdktrace.SpanExporter
}

// Provider starts spans. A nil *Provider, or one set up without an
// exporter, traces nothing.
type Provider struct {
	sdk    *sdktrace.TracerProvider
	tracer trace.Tracer
}

// Setup returns a Provider exporting to o.OTLPEndpoint (or o.Exporter). Shut
// it down to send the spans still buffered.
func Setup(ctx context.Context, o Options) (*Provider, error) {
	exp := o.Exporter
	if exp == nil {
		if o.OTLPEndpoint == "" {
			return &Provider{}, nil
		}
		opts, err := endpointOptions(o.OTLPEndpoint)
		if err != nil {
			return nil, err
		}
		if exp, err = otlptracehttp.New(ctx, opts...); err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
	}
	ratio := o.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	if ratio < 0 || ratio > 1 {
		return nil, fmt.Errorf("telemetry: sample ratio %v is outside (0, 1]", o.SampleRatio)
	}
	name := o.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if o.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", o.ServiceVersion))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	return &Provider{sdk: tp, tracer: tp.Tracer("github.com/sluicehq/sluice")}, nil
}

func endpointOptions(endpoint string) ([]otlptracehttp.Option, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP endpoint %q: %w", endpoint, err)
	}
	if u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("telemetry: OTLP endpoint %q: want a URL such as http://otel-collector:4318", endpoint)
	}
	path := u.Path
	if path == "" || path == "/" {
		path = "/v1/traces"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(path)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	return opts, nil
}

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p != nil && p.sdk != nil }

// TracerProvider is the OpenTelemetry provider behind p, for libraries that
// take one; it is a no-op provider when tracing is off.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if !p.Enabled() {
		return noopProvider
	}
	return p.sdk
}

// ForceFlush exports the spans ended so far.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// Shutdown exports the spans still buffered and stops. Spans started
// afterwards are dropped.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}

// clip keeps a caller-chosen value (a model name) to a sane length.
func clip(s string) string {
	if len(s) > 128 {
		return strings.ToValidUTF8(s[:128], "")
	}
	return s
}
