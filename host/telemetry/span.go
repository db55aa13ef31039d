package telemetry

import (
	"context"
	"encoding/hex"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

var noopProvider = noop.NewTracerProvider()

// Attribute keys. The gen_ai.* ones are the GenAI semantic conventions'.
const (
	AttrOperation    = attribute.Key("gen_ai.operation.name")
	AttrModel        = attribute.Key("gen_ai.request.model")
	AttrInputTokens  = attribute.Key("gen_ai.usage.input_tokens")
	AttrOutputTokens = attribute.Key("gen_ai.usage.output_tokens")
	AttrClient       = attribute.Key("sluice.client")
	AttrDepartment   = attribute.Key("sluice.department")
	AttrDecisionID   = attribute.Key("sluice.decision_id")
	AttrRequestID    = attribute.Key("sluice.request_id")
	AttrStatus       = attribute.Key("http.response.status_code")
	AttrErrorType    = attribute.Key("error.type")
)

// Request is one request's server span. The zero Request (tracing off)
// does nothing. Like the strings it is given, it may outlive the handler,
// so a stream can end it; the strings must not be views of fasthttp buffers.
type Request struct {
	ctx    context.Context
	span   trace.Span
	tracer trace.Tracer
}

// Start begins the span of a request whose headers are h, continuing the
// caller's trace when h carries a W3C traceparent. method and route name the
// span ("POST /v1/chat/completions"); route should be the endpoint, not a
// raw path, so that span names stay few.
func (p *Provider) Start(h *fasthttp.RequestHeader, method, route, requestID string) Request {
	if !p.Enabled() {
		return Request{}
	}
	ctx := propagationOf.Extract(context.Background(), HeaderCarrier{h})
	name := method
	if route != "" {
		name = method + " " + route
	}
	ctx, span := p.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("http.request.method", method), AttrRequestID.String(requestID))
		if route != "" {
			span.SetAttributes(attribute.String("http.route", route))
		}
	}
	return Request{ctx: ctx, span: span, tracer: p.tracer}
}

// Context is the request span's context, for code that starts spans of its
// own; context.Background() when tracing is off.
func (r Request) Context() context.Context {
	if r.ctx == nil {
		return context.Background()
	}
	return r.ctx
}

// TraceID is the request's trace id in hex, for a log line; "" when the
// request is not traced.
func (r Request) TraceID() string {
	if r.span == nil || !r.span.SpanContext().HasTraceID() {
		return ""
	}
	return r.span.SpanContext().TraceID().String()
}

// Stage names of the request path.
const (
	StageAuth     = "auth"
	StagePolicy   = "policy"
	StageLimits   = "limits"
	StageUpstream = "upstream"
)

// Stage begins a child span for one stage of the request path, typically a
// Stage* name. End it when the stage is over.
func (r Request) Stage(name string) Span {
	if r.span == nil {
		return Span{}
	}
	if !r.span.IsRecording() {
		// An unsampled request's stages would be unsampled too: lend them
		// the request's span instead of paying for spans nobody sees. What
		// goes upstream is then the request span's context, still carrying
		// the trace and the decision not to sample it.
		return Span{ctx: r.ctx, span: r.span, lent: true}
	}
	kind := trace.SpanKindInternal
	if name == StageUpstream {
		kind = trace.SpanKindClient
	}
	ctx, span := r.tracer.Start(r.ctx, name, trace.WithSpanKind(kind))
	return Span{ctx: ctx, span: span}
}

// Plugin begins the child span of one plugin's scan, "plugin:<name>".
func (r Request) Plugin(name string) Span {
	if r.span == nil {
		return Span{}
	}
	if !r.span.IsRecording() {
		return Span{ctx: r.ctx, span: r.span, lent: true}
	}
	sp := r.Stage("plugin:" + name)
	sp.span.SetAttributes(attribute.String("sluice.plugin", name))
	return sp
}

// Summary is what the request span records when it ends: identities,
// the GenAI attributes and the outcome. It has no room for prompt text or
// keys, on purpose.
type Summary struct {
	Client, Department string
	Model              string // as requested
	Operation          string // "chat" or "embeddings"; "" for other endpoints
	DecisionID         string
	InputTokens        int64
	OutputTokens       int64
	Status             int
	Code               string // decision or error code, "" when none
}

// End records s on the request span and ends it.
func (r Request) End(s Summary) {
	if r.span == nil || !r.span.IsRecording() {
		return // an unsampled span's End does nothing either
	}
	attrs := make([]attribute.KeyValue, 0, 9)
	add := func(k attribute.Key, v string) {
		if v != "" {
			attrs = append(attrs, k.String(v))
		}
	}
	add(AttrClient, s.Client)
	add(AttrDepartment, s.Department)
	add(AttrModel, clip(s.Model))
	add(AttrOperation, s.Operation)
	add(AttrDecisionID, s.DecisionID)
	if s.InputTokens > 0 {
		attrs = append(attrs, AttrInputTokens.Int64(s.InputTokens))
	}
	if s.OutputTokens > 0 {
		attrs = append(attrs, AttrOutputTokens.Int64(s.OutputTokens))
	}
	if s.Status != 0 {
		attrs = append(attrs, AttrStatus.Int(s.Status))
	}
	add(AttrErrorType, s.Code)
	r.span.SetAttributes(attrs...)
	// A server span is an error for 5xx only; a 4xx is the caller's
	// (HTTP semantic conventions), but its code is kept in error.type.
	if s.Status >= 500 {
		r.span.SetStatus(codes.Error, s.Code)
	}
	r.span.End()
}

// Span is one stage's span. The zero Span (tracing off) does nothing.
type Span struct {
	ctx  context.Context
	span trace.Span
	lent bool // span is the request's, lent to an unsampled stage: never end it here
}

// Fail marks the stage failed with a code such as "upstream_timeout" (never
// a message that could quote the request).
func (s Span) Fail(code string) {
	if s.span == nil || s.lent {
		return
	}
	s.span.SetAttributes(AttrErrorType.String(code))
	s.span.SetStatus(codes.Error, code)
}

// End ends the stage's span.
func (s Span) End() {
	if s.span != nil && !s.lent {
		s.span.End()
	}
}

// Inject writes the stage's trace context as W3C traceparent (and
// tracestate, when the caller sent one) through set, typically the upstream
// request's header setter, so that the upstream's spans are children of this
// one. It formats the headers itself rather than through a propagator, so
// that set does not escape: a method value such as req.Header.Set then costs
// no allocation, with tracing off or on.
func (s Span) Inject(set func(name, value string)) {
	if s.span == nil {
		return
	}
	sc := s.span.SpanContext()
	if !sc.IsValid() {
		return
	}
	var buf [55]byte // "00-" 32 hex "-" 16 hex "-" 2 hex
	b := append(buf[:0], "00-"...)
	tid, sid := sc.TraceID(), sc.SpanID()
	b = hex.AppendEncode(b, tid[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, sid[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, []byte{byte(sc.TraceFlags() & trace.FlagsSampled)})
	set("traceparent", string(b))
	if ts := sc.TraceState(); ts.Len() > 0 {
		set("tracestate", ts.String())
	}
}
