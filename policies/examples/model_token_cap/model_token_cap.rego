# Per-model token caps: requests to an expensive model may not ask for more
# than a set max_tokens, and a client's tokens per minute are lowered while
# it calls that model.
package sluice.authz

# _model_max_tokens caps max_tokens per model name (exact names: a lookup,
# not a pattern match per request).
_model_max_tokens := {"o1": 8192, "gpt-4.1": 4096}

# _model_tpm lowers the client's tokens-per-minute limit for requests to a
# model. The tier's limit applies where it is lower.
_model_tpm := {"o1": 20000}

# A request that sets no max_tokens reaches the policy as 0 and is let
# through: the gateway reserves limits.default_max_tokens for its reply.
# Add input.request.max_tokens == 0 to the body below to require one.
deny contains {
	"http_status": 400,
	"code": "max_tokens_too_large",
	"type": "invalid_request_error",
	"message": sprintf("max_tokens %v is above %v, the most allowed for model %q", [input.request.max_tokens, most, input.request.model]),
} if {
	most := _model_max_tokens[input.request.model]
	input.request.max_tokens > most
}

cap contains {"limit": "tpm", "value": tpm} if {
	tpm := _model_tpm[input.request.model]
}
