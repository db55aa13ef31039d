package sluice.examples.secrets_and_emails_test

import data.sluice.authz

tiers := {
	"standard": {"rpm": 60, "models": ["*"], "pii_detection": true, "redact": []},
	"lenient": {"rpm": 60, "models": ["*"], "pii_detection": true, "redact": ["EMAIL", "PHONE", "JWT", "PRIVATE_KEY"]},
}

derived := d if {
	d := authz.derived with data.sluice.tiers as tiers
}

request(tier, department, types) := {
	"client": {"id": "crm-sync", "department": department, "tier": tier, "labels": {}},
	"request": {"method": "POST", "path": "/v1/chat/completions", "model": "gpt-4o-mini", "max_tokens": 256, "prompt_tokens": 40, "message_count": 1},
	"usage": {},
	"findings": [{"plugin": "pii", "type": type, "count": 1, "score": 0.9, "messages": [0]} | some type in types],
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

test_emails_redacted_for_mail_departments if {
	d := decide(request("standard", "sales", ["EMAIL"]))
	d.allowed
	d.redact == ["EMAIL"]
}

test_emails_block_elsewhere if {
	d := decide(request("standard", "finance", ["EMAIL"]))
	d.code == "pii_detected"
}

test_secrets_block_even_where_redacted if {
	every c in [
		["standard", "sales", ["EMAIL", "AWS_ACCESS_KEY"], "request blocked: personal data detected (AWS_ACCESS_KEY)"],
		["lenient", "finance", ["JWT", "PRIVATE_KEY", "PHONE"], "request blocked: personal data detected (JWT, PRIVATE_KEY)"],
	] {
		[tier, department, types, message] := c
		d := decide(request(tier, department, types))
		[d.allowed, d.code, d.message] == [false, "pii_detected", message]
	}
}

test_tier_redaction_still_applies_to_other_types if {
	d := decide(request("lenient", "finance", ["EMAIL", "PHONE"]))
	d.allowed
	d.redact == ["EMAIL", "PHONE"]
}

test_first_pass_unchanged if {
	d := decide(request("standard", "sales", []))
	d.allowed
	d.plugins == ["pii"]
}
