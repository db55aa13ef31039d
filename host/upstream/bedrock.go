package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/encoding/httpbinding"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
	"github.com/sluicehq/sluice/host/translate"
)

// bedrockService is the name Bedrock's runtime API is signed for.
const bedrockService = "bedrock"

// Bedrock is Amazon Bedrock's Converse API (converse and converse-stream),
// signed with AWS Signature Version 4. Chat requests are translated to
// Converse messages and content blocks, and replies back; a stream is read
// from AWS event-stream framing.
type Bedrock struct {
	http   *httpClient
	region string
	creds  aws.CredentialsProvider
	signer *v4.Signer
	now    func() time.Time
}

// NewBedrock returns a client for the bedrock upstream u, dialing with dial
// (nil: the network). Static keys in u are used when set; otherwise the
// AWS SDK's default credential chain.
func NewBedrock(u config.Upstream, dial fasthttp.DialFunc) (*Bedrock, error) {
	base := u.BaseURL
	if base == "" {
		base = "https://bedrock-runtime." + u.Region + ".amazonaws.com"
	}
	h, err := newHTTPClient(u, base, dial)
	if err != nil {
		return nil, err
	}
	b := &Bedrock{http: h, region: u.Region, signer: v4.NewSigner(), now: time.Now}
	if u.AWSAccessKeyID != "" {
		b.creds = credentials.NewStaticCredentialsProvider(u.AWSAccessKeyID, u.AWSSecretAccessKey, u.AWSSessionToken)
	} else {
		cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(u.Region))
		if err != nil {
			return nil, fmt.Errorf("AWS credentials: %w", err)
		}
		b.creds = cfg.Credentials
	}
	return b, nil
}

// Close releases idle connections.
func (b *Bedrock) Close() { b.http.Close() }

// Send has the chat call c translated to Converse, or ConverseStream for a
// stream, and its reply back; it signs and sends the request and reads the
// event stream.
func (b *Bedrock) Send(ctx context.Context, c *Call) (*Reply, error) {
	if c.Endpoint != EndpointChat {
		return openAIErrorReply(404, "invalid_request_error", "unsupported_endpoint", "", "a bedrock upstream serves chat completions only"), nil
	}
	creq, aerr := translate.ChatToConverse(c.Body)
	if aerr != nil {
		return &Reply{Status: aerr.Status, Body: aerr.Body()}, nil
	}
	path := "/model/" + httpbinding.EscapePath(creq.Model, true) + "/converse"
	if c.Stream {
		path += "-stream"
	}
	r, err := b.http.post(ctx, c, path, creq.Body, b)
	if err != nil {
		return nil, err
	}
	if r.status != fasthttp.StatusOK {
		code := "upstream_error"
		if r.awsError != "" {
			code = snakeCase(r.awsError)
		}
		reply := openAIErrorReply(r.status, errorTypeFor(r.status), code, "", "Bedrock refused the request")
		reply.Headers = r.headers // a Retry-After among them
		return reply, nil
	}
	meta := translate.ChatMeta{ID: "chatcmpl-bedrock-" + shortHash(c.Body), Created: b.now().Unix(), Model: creq.Model}
	if r.stream == nil {
		chat, err := translate.ConverseToChatCompletion(r.body, meta)
		if err != nil {
			return openAIErrorReply(502, "server_error", "upstream_error", "", "Bedrock sent a reply that is not JSON"), nil
		}
		return &Reply{Status: 200, Body: chat, Headers: r.headers}, nil
	}
	s := &bedrockStream{body: r.stream, decoder: eventstream.NewDecoder(), out: translate.NewConverseStream(meta, creq.IncludeUsage)}
	return &Reply{Status: 200, Events: &translatedEvents{body: r.stream, read: s.read}, Headers: r.headers}, nil
}

// authorize signs the request hr with SigV4, as the AWS SDK's signer does
// for Bedrock: the request is rebuilt as a net/http request with the
// headers that are signed (content type, accept, host and length), and the
// signature's headers are copied back.
func (b *Bedrock) authorize(ctx context.Context, hr *fasthttp.Request, stream bool) error {
	creds, err := b.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("AWS credentials: %w", err)
	}
	body := hr.Body()
	// The host and path as sent: the scheme is not signed.
	req, err := http.NewRequest(http.MethodPost, "https://"+b.http.host+string(hr.URI().PathOriginal()), nil)
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "application/vnd.amazon.eventstream")
		hr.Header.Set("Accept", "application/vnd.amazon.eventstream")
	}
	sum := sha256.Sum256(body)
	if err := b.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), bedrockService, b.region, b.now()); err != nil {
		return err
	}
	for _, name := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		if v := req.Header.Get(name); v != "" {
			hr.Header.Set(name, v)
		}
	}
	return nil
}

// bedrockStream reads ConverseStream's event-stream messages, and has
// their events translated to chat chunks.
type bedrockStream struct {
	body    *httpBody
	decoder *eventstream.Decoder
	buf     []byte
	out     *translate.ConverseStream
}

// errBedrockStream is a stream Bedrock ended with an exception.
var errBedrockStream = errors.New("bedrock stream failed")

func (s *bedrockStream) read() ([][]byte, error) {
	msg, err := s.decoder.Decode(s.body, s.buf)
	if err == io.EOF {
		if !s.out.Stopped() {
			return nil, fmt.Errorf("%w: %w: it ended before messageStop", ErrUnavailable, errBedrockStream)
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, s.body.fail(err)
	}
	s.buf = msg.Payload[:0]
	header := func(name string) string {
		if v := msg.Headers.Get(name); v != nil {
			return v.String()
		}
		return ""
	}
	if t := header(":message-type"); t != "event" {
		// An exception (throttlingException, modelStreamErrorException…):
		// its name says what failed; its message is not logged.
		return nil, fmt.Errorf("%w: %w: %s", ErrUnavailable, errBedrockStream, header(":exception-type"))
	}
	chunks, err := s.out.Event(header(":event-type"), msg.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrUnavailable, errBedrockStream, err)
	}
	return chunks, nil
}

var _ Upstream = (*Bedrock)(nil)
