package server

import "testing"

func TestRedactHTTPLog(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`error when serving connection "127.0.0.1:8080"<->"[::1]:5555": error when reading request headers: invalid header value "Bearer sk-abc\x00": buffer size=135`,
			`error when serving connection "127.0.0.1:8080"<->"[::1]:5555": error when reading request headers: invalid header value "[redacted]": buffer size=135`},
		{`cannot parse sk-sluice-0123456789abcdefghij now`, `cannot parse [redacted] now`},
		{`unterminated "sk-sluice-0123`, `unterminated "[redacted]"`},
		{"control \x01byte", `control [redacted]`},
	} {
		if got := redactHTTPLog(tc.in); got != tc.want {
			t.Errorf("redactHTTPLog(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}
