package plugin

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/sdk/abi"
)

// What a plugin writes reaches operators' logs only bounded and escaped: a
// module that logs in a loop, or puts a prompt, terminal escapes or a fake
// log line into a message, an error or its function names, must not flood the
// log, forge a record or smuggle the text of one request into the record of
// another. Nothing a plugin writes reaches a caller: the gateway's errors name
// the plugin only, and finding types come from the manifest (result.go).
const (
	maxLogMessageBytes = 1024 // one sluice.log message
	maxLogCallMessages = 8    // sluice.log messages kept per call
	maxLogCallBytes    = 4096 // sluice.log bytes kept per call
	logRate            = 20   // sluice.log messages per second per plugin, sustained,
	logBurst           = 40   // and in a burst
	maxErrorBytes      = 512  // a plugin's error message, as put in a Go error
	maxTraceBytes      = 2048 // the wasm stack trace of a trap, as logged
)

// guestText returns b as one line of printable text for a log or an error:
// at most max bytes of it, invalid UTF-8 replaced, control and other
// non-graphic characters (newlines, terminal escapes, bidirectional
// overrides) escaped as in a Go literal, and "…" if cut.
func guestText(b []byte, max int) string {
	cut := len(b) > max
	if cut {
		b = b[:max]
	}
	var sb strings.Builder
	sb.Grow(len(b) + 3)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n == 1 && cut && len(b) < utf8.UTFMax:
			// Half a character at the cut: leave it out.
			n = len(b)
		case r == utf8.RuneError && n == 1:
			sb.WriteRune(utf8.RuneError)
		case r == ' ' || unicode.IsGraphic(r):
			sb.Write(b[:n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			sb.WriteString(q[1 : len(q)-1])
		}
		b = b[n:]
	}
	if cut {
		sb.WriteString("…")
	}
	return sb.String()
}

// logLimiter is the per-plugin token bucket of sluice.log messages.
type logLimiter struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (l *logLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = logBurst
	} else {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds()*logRate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// hostLog implements sluice.log(level, ptr, len). It forwards what the guest
// chose to log, truncated and escaped, within the per-call and per-plugin
// limits; what it drops is counted in Status.LogsDropped.
func (p *Plugin) hostLog(ctx context.Context, m api.Module, stack []uint64) {
	level := slog.LevelInfo
	switch int32(uint32(stack[0])) {
	case abi.LevelDebug:
		level = slog.LevelDebug
	case abi.LevelWarn:
		level = slog.LevelWarn
	case abi.LevelError:
		level = slog.LevelError
	}
	if !p.opts.Logger.Enabled(ctx, level) {
		return
	}
	inst, _ := p.byModule.Load(m)
	if in, ok := inst.(*instance); ok {
		if in.logMessages >= maxLogCallMessages || in.logBytes >= maxLogCallBytes {
			p.logsDropped.Add(1)
			return
		}
		in.logMessages++
		defer func() { in.logBytes += int(min(uint32(stack[2]), maxLogMessageBytes)) }()
	}
	if !p.logLimit.allow(time.Now()) {
		p.logsDropped.Add(1)
		return
	}
	ptr, n := uint32(stack[1]), uint32(stack[2])
	b, ok := m.Memory().Read(ptr, min(n, maxLogMessageBytes+1))
	if !ok {
		p.logsDropped.Add(1)
		return
	}
	p.opts.Logger.LogAttrs(ctx, level, "plugin log",
		slog.String("plugin", p.name), slog.String("message", guestText(b, maxLogMessageBytes)))
}
