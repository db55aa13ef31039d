package sluice.authz

# Embeddings input sent as token ids is decoded with the model's encoding and
# scanned like text. A tier with refuse_token_input refuses it outright: ids
# are a form of text that no reviewer reads, and a team that never sends them
# loses nothing by refusing them.
deny contains {
	"http_status": 400,
	"code": "token_input_not_allowed",
	"type": "invalid_request_error",
	"message": "this client may send embeddings input as text only, not as token ids",
} if {
	input.request.token_arrays > 0
	data.sluice.tiers[input.client.tier].refuse_token_input == true
}
