package upstream

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/host/config"
)

// BenchmarkOpenAISend is one chat call to the mock over loopback: what the
// HTTP client costs a request, the mock's own work included.
func BenchmarkOpenAISend(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: MockHandler(NewMock(0), []string{"m1"})}
	go srv.Serve(ln)
	defer srv.Shutdown()
	o, err := NewOpenAI(config.Upstream{Name: "t", Type: "openai", BaseURL: "http://" + ln.Addr().String() + "/v1",
		Timeout: config.Duration(10 * time.Second), MaxConns: 16})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	body := []byte(chatBody)
	b.ReportAllocs()
	for b.Loop() {
		r, err := o.Send(context.Background(), &Call{Endpoint: EndpointChat, Body: body})
		if err != nil || r.Status != 200 {
			b.Fatal(r, err)
		}
	}
}
