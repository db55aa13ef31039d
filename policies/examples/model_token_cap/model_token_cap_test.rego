package sluice.examples.model_token_cap_test

import data.sluice.authz

tiers := {
	"standard": {"rpm": 60, "tpm": 100000, "models": ["*"]},
	"slow": {"rpm": 10, "tpm": 5000, "models": ["*"]},
}

derived := d if {
	d := authz.derived with data.sluice.tiers as tiers
}

request(tier, model, max_tokens) := {
	"client": {"id": "analyst", "department": "finance", "tier": tier, "labels": {}},
	"request": {"method": "POST", "path": "/v1/chat/completions", "model": model, "max_tokens": max_tokens, "prompt_tokens": 40, "message_count": 1},
	"usage": {},
	"findings": [],
	"time": {"unix": 1795000000, "zone": "UTC", "weekday": "Tuesday", "hour": 10, "minute": 0},
}

# decide gives the decision for req, and only if the gateway's way (with the
# derived data) and opa test's way (without it) agree.
decide(req) := d if {
	d := authz.decision with input as req with data.sluice.tiers as tiers
	fast := authz.decision with input as req
		with data.sluice.tiers as tiers
		with data.sluice.derived as derived
	fast == d
}

test_max_tokens_cap if {
	every c in [
		["o1", 8192, true],
		["o1", 8193, false],
		["gpt-4.1", 4096, true],
		["gpt-4.1", 100000, false],
		["gpt-4.1", 0, true],
		["gpt-4o-mini", 100000, true],
	] {
		[model, max_tokens, allowed] := c
		decide(request("standard", model, max_tokens)).allowed == allowed
	}
}

test_denial_says_what_is_allowed if {
	d := decide(request("standard", "gpt-4.1", 5000))
	[d.http_status, d.code, d.type] == [400, "max_tokens_too_large", "invalid_request_error"]
	d.message == "max_tokens 5000 is above 4096, the most allowed for model \"gpt-4.1\""
}

test_tpm_lowered_for_model if {
	every c in [
		["standard", "o1", 20000],
		["standard", "gpt-4.1", 100000],
		["slow", "o1", 5000],
	] {
		[tier, model, tpm] := c
		d := decide(request(tier, model, 1000))
		d.allowed
		d.limits.tpm == tpm
		d.limits.rpm == tiers[tier].rpm
	}
}
