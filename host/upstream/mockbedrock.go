package upstream

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/translate"
)

var bedrockPath = regexp.MustCompile(`^/model/([^/]+)/(converse|converse-stream)$`)

// BedrockMockHandler serves the mock as Bedrock's runtime API does in
// region: POST /model/{modelId}/converse and /converse-stream (AWS
// event-stream framing). Every request's SigV4 signature is verified with
// the AWS SDK's signer against MockAWSAccessKeyID and
// MockAWSSecretAccessKey; a missing, stale or wrong signature gets
// Bedrock's 403. The request is translated (by package translate) to a chat
// request for the chat mock, and its reply back.
func BedrockMockHandler(m *Mock, region string) fasthttp.RequestHandler {
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: MockAWSAccessKeyID, SecretAccessKey: MockAWSSecretAccessKey}
	return func(ctx *fasthttp.RequestCtx) {
		if errType, msg := verifySigV4(ctx, signer, creds, region, time.Now()); errType != "" {
			bedrockMockError(ctx, errType, msg)
			return
		}
		match := bedrockPath.FindStringSubmatch(string(ctx.Path()))
		if match == nil || !ctx.IsPost() {
			bedrockMockError(ctx, "UnknownOperationException", "")
			return
		}
		stream := match[2] == "converse-stream"
		chat, err := translate.ConverseToChat(ctx.PostBody(), match[1], stream)
		if err != nil {
			bedrockMockError(ctx, "ValidationException", "The request body is not a valid Converse request.")
			return
		}
		r := askMock(m, chat, stream)
		if r.Status != 200 {
			msg := "The mock refused the request."
			if r.Status == 429 {
				msg = "Too many requests, please wait before trying again."
			}
			bedrockMockError(ctx, bedrockErrorType(r.Status), msg)
			return
		}
		if r.Events == nil {
			ctx.SetContentType("application/json")
			ctx.SetBody(translate.ChatToConverseResponse(r.Body))
			return
		}
		ctx.SetContentType("application/vnd.amazon.eventstream")
		events := r.Events
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer events.Close()
			enc := eventstream.NewEncoder()
			var s translate.ChatToConverseStream
			for {
				data, err := events.Next()
				if err != nil {
					return
				}
				for _, ev := range s.Chunk(data) {
					if writeConverseEvent(enc, w, ev.Type, ev.Payload) != nil {
						return
					}
				}
				if w.Flush() != nil {
					return
				}
			}
		})
	}
}

// verifySigV4 checks a request's SigV4 signature as Bedrock does, by
// signing the request again with the SDK's signer and the known secret. It
// returns the error Bedrock would answer, or "".
func verifySigV4(ctx *fasthttp.RequestCtx, signer *v4.Signer, creds aws.Credentials, region string, now time.Time) (errType, msg string) {
	auth := string(ctx.Request.Header.Peek("Authorization"))
	if auth == "" {
		return "MissingAuthenticationTokenException", "Missing Authentication Token"
	}
	fields := map[string]string{}
	algorithm, rest, _ := strings.Cut(auth, " ")
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if algorithm != "AWS4-HMAC-SHA256" || len(scope) != 5 || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return "IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters."
	}
	if scope[0] != creds.AccessKeyID {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	if scope[2] != region || scope[3] != bedrockService {
		return "InvalidSignatureException", "Credential should be scoped to a valid region and service."
	}
	signedAt, err := time.Parse("20060102T150405Z", string(ctx.Request.Header.Peek("X-Amz-Date")))
	if err != nil || scope[1] != signedAt.Format("20060102") {
		return "IncompleteSignatureException", "The request must carry a valid X-Amz-Date."
	}
	if d := now.Sub(signedAt); d > 5*time.Minute || d < -5*time.Minute {
		return "InvalidSignatureException", "Signature expired."
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+string(ctx.Host())+string(ctx.RequestURI()), nil)
	if err != nil {
		return "InvalidSignatureException", "The request URI cannot be signed."
	}
	req.ContentLength = int64(len(ctx.PostBody()))
	for _, name := range strings.Split(fields["SignedHeaders"], ";") {
		switch name {
		case "host", "content-length":
		default:
			req.Header.Set(name, string(ctx.Request.Header.Peek(name)))
		}
	}
	sum := sha256.Sum256(ctx.PostBody())
	if signer.SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), bedrockService, region, signedAt) != nil ||
		!hmac.Equal([]byte(req.Header.Get("Authorization")), []byte(auth)) {
		return "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	}
	return "", ""
}

func bedrockMockError(ctx *fasthttp.RequestCtx, errType, msg string) {
	ctx.Response.Header.Set("X-Amzn-Errortype", errType+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	writeReply(ctx, &Reply{Status: bedrockErrorStatus(errType), Body: mustJSON(map[string]string{"message": msg})})
}

// writeConverseEvent writes one ConverseStream event in AWS event-stream
// framing.
func writeConverseEvent(enc *eventstream.Encoder, w io.Writer, eventType string, payload []byte) error {
	var h eventstream.Headers
	h.Set(":event-type", eventstream.StringValue(eventType))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("event"))
	return enc.Encode(w, eventstream.Message{Headers: h, Payload: payload})
}
