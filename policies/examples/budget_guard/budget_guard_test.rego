package sluice.examples.budget_guard_test

import data.sluice.authz

tiers := {"standard": {"rpm": 60, "models": ["*"]}}

departments := {"labs": {"monthly_spend_usd": 500}, "ops": {"rpm": 100}}

derived := d if {
	d := authz.derived with data.sluice.tiers as tiers
		with data.sluice.departments as departments
}

request(department, model, spent) := {
	"client": {"id": "lab-bot", "department": department, "tier": "standard", "labels": {}},
	"request": {"method": "POST", "path": "/v1/chat/completions", "model": model, "max_tokens": 256, "prompt_tokens": 40, "message_count": 1},
	"usage": {
		"client": {"requests_minute": 1, "tokens_minute": 100, "tokens_today": 1000, "tokens_month": 10000, "spend_month_usd": 1.5},
		"department": {"requests_minute": 3, "tokens_minute": 900, "tokens_today": 70000, "tokens_month": 900000, "spend_month_usd": spent},
	},
	"findings": [],
	"time": {"unix": 1795000000, "zone": "UTC", "weekday": "Tuesday", "hour": 10, "minute": 0},
}

# decide gives the decision for req, and only if the gateway's way (with the
# derived data) and opa test's way (without it) agree.
decide(req) := d if {
	d := authz.decision with input as req
		with data.sluice.tiers as tiers
		with data.sluice.departments as departments
	fast := authz.decision with input as req
		with data.sluice.tiers as tiers
		with data.sluice.departments as departments
		with data.sluice.derived as derived
	fast == d
}

test_expensive_models_held_back_near_budget if {
	every c in [
		["labs", "o1", 399.99, true],
		["labs", "o1", 400, false],
		["labs", "o1-mini", 450, false],
		["labs", "gpt-4.1", 499, false],
		["labs", "gpt-4o-mini", 499, true],
		["ops", "o1", 100000, true],
		["legal", "o1", 100000, true],
	] {
		[department, model, spent, allowed] := c
		decide(request(department, model, spent)).allowed == allowed
	}
}

test_denial_says_how_much_is_spent if {
	d := decide(request("labs", "o1", 450))
	[d.http_status, d.code, d.type] == [429, "budget_nearly_exhausted", "insufficient_quota"]
	d.message == "department \"labs\" has spent 90% of its monthly budget; model \"o1\" is held back until next month, cheaper models remain available"
	d.department_limits.monthly_spend_usd == 500
}

test_without_usage_nothing_is_held_back if {
	d := decide(object.union(request("labs", "o1", 0), {"usage": {}}))
	d.allowed
}
