package proxy

import "testing"

func TestStoredResponseRoute(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/v1/responses/resp_1", true},
		{"DELETE", "/v1/responses/resp_1", true},
		{"GET", "/v1/responses/resp_1/input_items", true},
		{"POST", "/v1/responses/resp_1/cancel", true},
		{"POST", "/v1/responses/resp_1", false},
		{"POST", "/v1/responses/input_tokens", false},
		{"POST", "/v1/responses/compact", false},
		{"GET", "/v1/responses/", false},
		{"GET", "/v1/responses/resp_1/other", false},
		{"GET", "/v1/responsesx/resp_1", false},
	} {
		if got := storedResponseRoute(c.method, c.path); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.method, c.path, got, c.want)
		}
	}
}
