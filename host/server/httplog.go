package server

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"
)

// fasthttpLogger takes fasthttp's own error log into Sluice's. fasthttp
// quotes what it failed to parse, and SecureErrorLogMessage does not cover
// every path: a header value with a control byte in it, such as
// "Bearer <key>\x00", is quoted whole in "invalid header value". So every
// line is passed through redactHTTPLog first.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn(redactHTTPLog(fmt.Sprintf(format, args...)), "component", "http")
}

// maxHTTPLog bounds one line of fasthttp's log.
const maxHTTPLog = 300

// longToken is the length from which a bare word of fasthttp's log is taken
// for something a caller sent (a key is longer) and redacted.
const longToken = 24

// redactHTTPLog keeps what fasthttp says went wrong and nothing a caller
// sent: a quoted string stays only when it is a connection's address, a bare
// word only when it is short, and the line is bounded and printable.
func redactHTTPLog(msg string) string {
	var b strings.Builder
	for len(msg) > 0 && b.Len() < maxHTTPLog {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			i = len(msg)
		}
		writeWords(&b, msg[:i])
		msg = msg[i:]
		if msg == "" {
			break
		}
		q, err := strconv.QuotedPrefix(msg)
		if err != nil {
			b.WriteString(`"[redacted]"`)
			break
		}
		msg = msg[len(q):]
		if s, err := strconv.Unquote(q); err == nil && isAddress(s) {
			b.WriteString(q)
		} else {
			b.WriteString(`"[redacted]"`)
		}
	}
	out := b.String()
	if len(out) > maxHTTPLog {
		out = out[:maxHTTPLog] + "…"
	}
	return out
}

// writeWords writes text, with every word of longToken bytes or more, or
// with a byte that is not printable ASCII, replaced.
func writeWords(b *strings.Builder, text string) {
	for i, w := range strings.Split(text, " ") {
		if i > 0 {
			b.WriteByte(' ')
		}
		if len(w) >= longToken || !printableASCII(w) {
			b.WriteString("[redacted]")
			continue
		}
		b.WriteString(w)
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isAddress reports whether s is an IP address and port, as fasthttp quotes
// the two ends of a connection.
func isAddress(s string) bool {
	host, _, err := net.SplitHostPort(s)
	return err == nil && net.ParseIP(host) != nil
}
