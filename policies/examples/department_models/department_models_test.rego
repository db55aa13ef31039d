package sluice.examples.department_models_test

import data.sluice.authz

tiers := {"premium": {"rpm": 600, "models": ["*"], "pii_detection": true}}

derived := d if {
	d := authz.derived with data.sluice.tiers as tiers
}

request(department, model) := {
	"client": {"id": "lab-bot", "department": department, "tier": "premium", "labels": {}},
	"request": {"method": "POST", "path": "/v1/chat/completions", "model": model, "max_tokens": 256, "prompt_tokens": 40, "message_count": 1},
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

test_department_models if {
	every c in [
		["research", "gpt-4o-mini", true],
		["research", "mock-echo", true],
		["research", "gpt-4o", false],
		["research", "meta-llama/Llama-3-8B", false],
		["interns", "gpt-4o-mini", true],
		["interns", "mock-echo", false],
		["finance", "gpt-4o", true],
		["", "meta-llama/Llama-3-8B", true],
	] {
		[department, model, allowed] := c
		decide(request(department, model)).allowed == allowed
	}
}

test_denial_names_model_and_department if {
	d := decide(request("research", "gpt-4o"))
	[d.http_status, d.code, d.type] == [403, "model_not_allowed", "permission_error"]
	d.message == "model \"gpt-4o\" is not allowed for department \"research\""
}

test_requests_without_model_left_alone if {
	decide(request("interns", "")).allowed
}

test_model_listing_hides_other_models if {
	listing := object.union(request("research", "gpt-4o"), {"request": {"method": "GET", "path": "/v1/models"}})
	decide(listing).allowed == false
}
