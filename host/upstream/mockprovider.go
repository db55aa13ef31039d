package upstream

import (
	"context"
	"fmt"
	"net"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/sluicehq/sluice/host/config"
)

// Credentials the built-in provider mocks accept. An upstream of type mock
// with a protocol uses them unless its configuration sets others, which
// the mock then refuses as the provider would.
const (
	MockAzureAPIKey        = "sluice-mock-azure-key"
	MockAzureADToken       = "sluice-mock-entra-token"
	MockGeminiAPIKey       = "sluice-mock-gemini-key"
	MockAWSAccessKeyID     = "AKIDSLUICEMOCK"
	MockAWSSecretAccessKey = "sluice-mock-aws-secret-access-key"
	MockAWSRegion          = "us-east-1"
)

// newMock returns the mock upstream u: the chat mock itself, or, for a
// provider protocol, the chat mock served in-process in that provider's
// wire protocol and called through the provider's real adapter.
func newMock(u config.Upstream) (Upstream, error) {
	m := NewMock(u.Latency.D())
	var handler fasthttp.RequestHandler
	var connect func(dial fasthttp.DialFunc) (Upstream, error)
	switch u.Protocol {
	case "", config.TypeOpenAI:
		return m, nil
	case config.TypeAnthropic:
		return NewAnthropicMock(u), nil
	case config.TypeAzureOpenAI:
		if u.APIKey == "" && u.AzureADToken == "" {
			u.APIKey = MockAzureAPIKey
		}
		if u.APIVersion == "" {
			u.APIVersion = "2024-10-21"
		}
		u.BaseURL = "http://mock.openai.azure.com"
		handler = AzureMockHandler(m)
		connect = func(dial fasthttp.DialFunc) (Upstream, error) { return NewAzure(u, dial) }
	case config.TypeBedrock:
		if u.Region == "" {
			u.Region = MockAWSRegion
		}
		if u.AWSAccessKeyID == "" {
			u.AWSAccessKeyID, u.AWSSecretAccessKey = MockAWSAccessKeyID, MockAWSSecretAccessKey
		}
		u.BaseURL = "http://bedrock-runtime." + u.Region + ".amazonaws.com"
		handler = BedrockMockHandler(m, u.Region)
		connect = func(dial fasthttp.DialFunc) (Upstream, error) { return NewBedrock(u, dial) }
	case config.TypeGemini:
		if u.APIKey == "" {
			u.APIKey = MockGeminiAPIKey
		}
		u.BaseURL = "http://generativelanguage.googleapis.com"
		handler = GeminiMockHandler(m)
		connect = func(dial fasthttp.DialFunc) (Upstream, error) { return NewGemini(u, dial) }
	default:
		return nil, fmt.Errorf("the mock speaks no protocol %q", u.Protocol)
	}
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: handler, Name: "sluice-mock-" + u.Protocol}
	go srv.Serve(ln)
	up, err := connect(func(string) (net.Conn, error) { return ln.Dial() })
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &servedMock{Upstream: up, ln: ln}, nil
}

// servedMock is a provider adapter calling a mock served in-process.
type servedMock struct {
	Upstream
	ln *fasthttputil.InmemoryListener
}

func (s *servedMock) Close() {
	s.Upstream.Close()
	s.ln.Close()
}

// askMock asks the chat mock for the reply to an OpenAI chat body.
func askMock(m *Mock, chatBody []byte, stream bool) *Reply {
	r, err := m.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: chatBody, Stream: stream})
	if err != nil {
		return mockError(500, "the mock failed")
	}
	return r
}
