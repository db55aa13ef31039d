package sluice.examples.long_prompts_test

import data.sluice.authz

tiers := {
	"standard": {"rpm": 60, "models": ["*"], "pii_detection": false, "redact": ["EMAIL"]},
	"premium": {"rpm": 600, "models": ["*"], "pii_detection": true, "redact": ["EMAIL"]},
}

derived := d if {
	d := authz.derived with data.sluice.tiers as tiers
}

request(tier, labels, prompt_tokens, findings) := {
	"client": {"id": "summarizer", "department": "finance", "tier": tier, "labels": labels},
	"request": {"method": "POST", "path": "/v1/chat/completions", "model": "gpt-4o-mini", "max_tokens": 256, "prompt_tokens": prompt_tokens, "message_count": 1},
	"usage": {},
	"findings": findings,
	"time": {"unix": 1795000000, "zone": "UTC", "weekday": "Tuesday", "hour": 10, "minute": 0},
}

email := [{"plugin": "pii", "type": "EMAIL", "count": 1, "score": 0.9, "messages": [0]}]

# decide gives the decision for req, and only if the gateway's way (with the
# derived data) and opa test's way (without it) agree.
decide(req) := d if {
	d := authz.decision with input as req with data.sluice.tiers as tiers
	fast := authz.decision with input as req
		with data.sluice.tiers as tiers
		with data.sluice.derived as derived
	fast == d
}

test_long_prompt_needs_label_or_tier if {
	every c in [
		["standard", {}, 8000, true],
		["standard", {}, 8001, false],
		["standard", {"long_prompts": "allowed"}, 8001, true],
		["standard", {"long_prompts": "yes"}, 8001, false],
		["premium", {}, 120000, true],
	] {
		[tier, labels, tokens, allowed] := c
		decide(request(tier, labels, tokens, [])).allowed == allowed
	}
}

test_denial_says_why if {
	d := decide(request("standard", {}, 9000, []))
	[d.http_status, d.code, d.type] == [400, "prompt_too_long", "invalid_request_error"]
	d.message == "prompts above 8000 tokens need the long_prompts label; ask your administrator"
}

test_long_prompt_is_always_scanned if {
	every c in [
		["standard", {"long_prompts": "allowed"}, 9000, ["pii"]],
		["standard", {"long_prompts": "allowed"}, 100, []],
		["premium", {}, 9000, ["pii"]],
	] {
		[tier, labels, tokens, plugins] := c
		decide(request(tier, labels, tokens, [])).plugins == plugins
	}
}

test_personal_data_in_long_prompt_blocks if {
	long := decide(request("premium", {}, 9000, email))
	short := decide(request("premium", {}, 100, email))
	[long.allowed, long.code] == [false, "pii_detected"]
	[short.allowed, short.redact] == [true, ["EMAIL"]]
}
