package proxy

import (
	"io"
	"net/http"
	"testing"

	"github.com/sluicehq/sluice/host/upstream"
)

// chunks is a stream of the given events, for contentRefusal to read.
func chunks(events ...string) *upstream.Reply {
	r := &replayEvents{}
	for _, e := range events {
		r.chunks = append(r.chunks, []byte(e))
	}
	return &upstream.Reply{Status: http.StatusOK, Events: r}
}

// TestContentRefusalReadsEveryShape: what counts as a content-filter
// refusal, and what does not; a stream read ahead is relayed whole.
func TestContentRefusalReadsEveryShape(t *testing.T) {
	role := `{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`
	filtered := `{"choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]}`
	text := `{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`
	for _, tt := range []struct {
		name string
		up   *upstream.Reply
		want bool
	}{
		{"azure 400", &upstream.Reply{Status: 400, Body: []byte(`{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400}}`)}, true},
		{"openai 400", &upstream.Reply{Status: 400, Body: []byte(`{"error":{"message":"no","type":"invalid_request_error","code":"content_policy_violation"}}`)}, true},
		{"other 400", &upstream.Reply{Status: 400, Body: []byte(`{"error":{"message":"bad","type":"invalid_request_error","code":"invalid_value"}}`)}, false},
		{"null code", &upstream.Reply{Status: 400, Body: []byte(`{"error":{"message":"bad","code":null}}`)}, false},
		{"500", &upstream.Reply{Status: 500, Body: []byte(`{"error":{"code":"content_filter"}}`)}, false},
		{"whole reply filtered", &upstream.Reply{Status: 200, Body: []byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}]}`)}, true},
		{"whole reply partly filtered", &upstream.Reply{Status: 200, Body: []byte(`{"choices":[{"finish_reason":"content_filter"},{"finish_reason":"stop"}]}`)}, false},
		{"whole reply", &upstream.Reply{Status: 200, Body: []byte(`{"choices":[{"finish_reason":"stop"}]}`)}, false},
		{"stream filtered first", chunks(role, filtered), true},
		{"stream with text first", chunks(role, text, filtered), false},
		{"not chat chunks", chunks(`{"type":"response.created"}`, filtered), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var before [][]byte
			if tt.up.Events != nil {
				before = tt.up.Events.(*replayEvents).chunks
			}
			if got := contentRefusal(tt.up); got != tt.want {
				t.Fatalf("contentRefusal = %v, want %v", got, tt.want)
			}
			if before == nil {
				return
			}
			var relayed [][]byte
			for {
				data, err := tt.up.Events.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				relayed = append(relayed, data)
			}
			if len(relayed) != len(before) {
				t.Fatalf("relayed %d events after reading ahead, want all %d", len(relayed), len(before))
			}
			for i := range before {
				if string(relayed[i]) != string(before[i]) {
					t.Errorf("event %d relayed as %s, want %s", i, relayed[i], before[i])
				}
			}
		})
	}
}
