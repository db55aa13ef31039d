package upstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/sluicehq/sluice/host/config"
)

// An exception Bedrock sends in the middle of a stream ends it with an
// upstream error, after the chunks that came before it.
func TestBedrockStreamException(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/vnd.amazon.eventstream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			enc := eventstream.NewEncoder()
			writeConverseEvent(enc, w, "messageStart", []byte(`{"role":"assistant"}`))
			writeConverseEvent(enc, w, "contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"Hel"}}`))
			var h eventstream.Headers
			h.Set(":message-type", eventstream.StringValue("exception"))
			h.Set(":exception-type", eventstream.StringValue("throttlingException"))
			enc.Encode(w, eventstream.Message{Headers: h, Payload: []byte(`{"message":"slow down"}`)})
		})
	})
	b, err := NewBedrock(config.Upstream{Name: "b", Timeout: config.Duration(5e9), MaxConns: 2, BaseURL: "http://bedrock.test",
		Provider: config.Provider{Region: "us-east-1", AWSAccessKeyID: "AKID", AWSSecretAccessKey: "s"}},
		func(string) (net.Conn, error) { return ln.Dial() })
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := b.Send(context.Background(), &Call{Endpoint: EndpointChat, Stream: true, Body: []byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil || r.Events == nil {
		t.Fatalf("%v %v", r, err)
	}
	defer r.Events.Close()
	var text strings.Builder
	for {
		data, err := r.Events.Next()
		if err != nil {
			if err == io.EOF || !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "slow down") {
				t.Fatalf("stream ended with %v, want ErrUnavailable without the provider's message", err)
			}
			break
		}
		var c chatReply
		json.Unmarshal(data, &c)
		for _, ch := range c.Choices {
			if ch.Delta != nil {
				text.WriteString(ch.Delta.text())
			}
		}
	}
	if text.String() != "Hel" {
		t.Fatalf("text before the exception %q", text.String())
	}
}

// Without keys in the configuration, Bedrock signs with the AWS SDK's
// default credential chain: here, the environment's keys.
func TestBedrockUsesTheDefaultCredentialChain(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go fasthttp.Serve(ln, BedrockMockHandler(NewMock(0), "eu-central-1"))
	send := func() int {
		b, err := NewBedrock(config.Upstream{Name: "b", Timeout: config.Duration(5e9), MaxConns: 2, BaseURL: "http://bedrock.test",
			Provider: config.Provider{Region: "eu-central-1"}},
			func(string) (net.Conn, error) { return ln.Dial() })
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		r, err := b.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: []byte(`{"model":"amazon.nova-lite-v1:0","messages":[{"role":"user","content":"hi"}]}`)})
		if err != nil {
			t.Log(err)
			return 0
		}
		return r.Status
	}
	t.Setenv("AWS_ACCESS_KEY_ID", MockAWSAccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", MockAWSSecretAccessKey)
	if got := send(); got != 200 {
		t.Fatalf("with the environment's keys: status %d", got)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "another-secret")
	if got := send(); got != 403 {
		t.Fatalf("with a wrong secret in the environment: status %d, want 403", got)
	}
}

// The Bedrock mock's check can fail: a request altered after it was signed,
// an old signature, or none, is refused as Bedrock refuses it.
func TestBedrockMockVerifiesSignatures(t *testing.T) {
	b, err := NewBedrock(config.Upstream{Name: "b", BaseURL: "http://bedrock-runtime.us-east-1.amazonaws.com", MaxConns: 1,
		Provider: config.Provider{Region: "us-east-1", AWSAccessKeyID: MockAWSAccessKeyID, AWSSecretAccessKey: MockAWSSecretAccessKey}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	signed := func() *fasthttp.Request {
		req := &fasthttp.Request{}
		req.SetRequestURI("/model/amazon.nova-lite-v1%3A0/converse")
		req.Header.SetHost("bedrock-runtime.us-east-1.amazonaws.com")
		req.Header.SetMethod("POST")
		req.Header.SetContentType("application/json")
		req.SetBodyString(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
		if err := b.authorize(context.Background(), req, false); err != nil {
			t.Fatal(err)
		}
		return req
	}
	verify := func(req *fasthttp.Request, now time.Time) string {
		var ctx fasthttp.RequestCtx
		ctx.Init(req, nil, nil)
		errType, _ := verifySigV4(&ctx, v4.NewSigner(), aws.Credentials{AccessKeyID: MockAWSAccessKeyID, SecretAccessKey: MockAWSSecretAccessKey}, "us-east-1", now)
		return errType
	}
	if got := verify(signed(), time.Now()); got != "" {
		t.Fatalf("a good signature was refused: %s", got)
	}
	for name, c := range map[string]struct {
		alter func(*fasthttp.Request)
		now   time.Time
		want  string
	}{
		"body changed":    {func(r *fasthttp.Request) { r.SetBodyString(`{"messages":[{"role":"user","content":[{"text":"HI"}]}]}`) }, time.Now(), "InvalidSignatureException"},
		"model changed":   {func(r *fasthttp.Request) { r.SetRequestURI("/model/amazon.nova-pro-v1%3A0/converse") }, time.Now(), "InvalidSignatureException"},
		"header changed":  {func(r *fasthttp.Request) { r.Header.SetContentType("text/plain") }, time.Now(), "InvalidSignatureException"},
		"no signature":    {func(r *fasthttp.Request) { r.Header.Del("Authorization") }, time.Now(), "MissingAuthenticationTokenException"},
		"signed long ago": {func(*fasthttp.Request) {}, time.Now().Add(10 * time.Minute), "InvalidSignatureException"},
	} {
		req := signed()
		c.alter(req)
		if got := verify(req, c.now); got != c.want {
			t.Errorf("%s: %q, want %s", name, got, c.want)
		}
	}
}

// A provider's stream cut before its end (Bedrock's messageStop, Gemini's
// finish reason) is an upstream failure, not a reply that looks complete.
func TestCutStreamsAreUpstreamErrors(t *testing.T) {
	serve := func(write func(w *bufio.Writer)) fasthttp.DialFunc {
		ln := fasthttputil.NewInmemoryListener()
		t.Cleanup(func() { ln.Close() })
		go fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyStreamWriter(write) })
		return func(string) (net.Conn, error) { return ln.Dial() }
	}
	u := config.Upstream{Name: "x", Timeout: config.Duration(5e9), MaxConns: 2, BaseURL: "http://provider.test", APIKey: "k"}
	gemini, _ := NewGemini(u, serve(func(w *bufio.Writer) {
		w.WriteString(`data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}]}` + "\r\n\r\n")
	}))
	u.APIKey, u.Region, u.AWSAccessKeyID, u.AWSSecretAccessKey = "", "us-east-1", "AKID", "s"
	bedrock, _ := NewBedrock(u, serve(func(w *bufio.Writer) {
		enc := eventstream.NewEncoder()
		writeConverseEvent(enc, w, "messageStart", []byte(`{"role":"assistant"}`))
		writeConverseEvent(enc, w, "contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"Hel"}}`))
	}))
	for name, up := range map[string]Upstream{"gemini": gemini, "bedrock": bedrock} {
		defer up.Close()
		r, err := up.Send(context.Background(), &Call{Endpoint: EndpointChat, Stream: true, Body: []byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
		if err != nil || r.Events == nil {
			t.Fatalf("%s: %v %v", name, r, err)
		}
		for {
			_, err := r.Events.Next()
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: a cut stream ended with %v, want ErrUnavailable", name, err)
			}
			break
		}
		r.Events.Close()
	}
}
