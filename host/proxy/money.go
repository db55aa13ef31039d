package proxy

import "math"

// nanosPerMicro converts between the policy's unit of money (micro-dollars,
// what monthly_spend_usd and input.usage speak in) and the ledger's and the
// limiter's (nano-dollars, fine enough that no request is billed $0).
const nanosPerMicro = 1000

// microsToNanos is a policy's spend limit in nano-dollars; a limit too large
// to count in nano-dollars is as good as none and saturates.
func microsToNanos(m int64) int64 {
	if m > math.MaxInt64/nanosPerMicro {
		return math.MaxInt64
	}
	return m * nanosPerMicro
}
