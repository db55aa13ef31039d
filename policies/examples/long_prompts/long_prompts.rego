# A stricter rule for long prompts: a prompt above 8,000 tokens needs the
# client label long_prompts: allowed or the premium tier, else it is
# refused. Where it is allowed, the pii plugin always scans it and any
# personal data found blocks it, whatever the tier would redact: whole
# documents pasted in are where personal data comes in bulk.
package sluice.authz

_long_prompt_tokens := 8000

_long_prompt_tiers := {"premium"}

_long_prompt if input.request.prompt_tokens > _long_prompt_tokens

_long_prompts_allowed if input.client.labels.long_prompts == "allowed"

_long_prompts_allowed if input.client.tier in _long_prompt_tiers

deny contains {
	"http_status": 400,
	"code": "prompt_too_long",
	"type": "invalid_request_error",
	"message": sprintf("prompts above %d tokens need the long_prompts label; ask your administrator", [_long_prompt_tokens]),
} if {
	_long_prompt
	not _long_prompts_allowed
}

plugin contains "pii" if _long_prompt

block contains finding.type if {
	_long_prompt
	some finding in input.findings
	finding.plugin == "pii"
}
