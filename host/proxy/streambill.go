package proxy

import (
	"strings"

	"github.com/sluicehq/sluice/host/api"
	"github.com/sluicehq/sluice/host/limits"
	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/tokens"
	"github.com/sluicehq/sluice/host/upstream"
)

// maxDrain bounds what is read of a stream after its caller went away, in
// bytes of events; the upstream's timeout bounds it in time.
const maxDrain = 4 << 20

// drainForUsage keeps reading a stream whose caller went away, relaying
// nothing, until the provider's usage chunk: the provider bills the whole
// reply whether or not the caller read it, and so does Sluice. The text read
// is added to generated, for an estimate when no usage comes.
func drainForUsage(events upstream.Events, generated *strings.Builder) (api.Usage, bool) {
	for read := 0; read < maxDrain; {
		data, err := events.Next()
		if err != nil {
			return api.Usage{}, false
		}
		read += len(data)
		chunk, ok := api.ParseStreamChunk(data)
		if !ok {
			continue
		}
		generated.WriteString(chunk.Generated)
		if chunk.HasUsage {
			return chunk.Usage, true
		}
	}
	return api.Usage{}, false
}

// unreportedUsage is what a stream is billed when the provider said nothing
// of its usage: the tokens of everything generated (content, refusals,
// reasoning, tool calls); and, when the caller left before the end so the
// provider may have generated more than was read, the reservation, never
// less than what was read.
func unreportedUsage(prompt int64, generated string, res limits.Reservation, callerLeft bool) (api.Usage, string) {
	c := tokens.Count(generated)
	source := store.UsageEstimated
	if callerLeft {
		if reserved := res.Cost().Tokens - prompt; reserved > c {
			c = reserved
		}
		source = store.UsageReserved
	}
	return api.Usage{PromptTokens: prompt, CompletionTokens: c, TotalTokens: prompt + c}, source
}
