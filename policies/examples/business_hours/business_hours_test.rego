package sluice.examples.business_hours_test

import data.sluice.authz

tiers := {"standard": {"rpm": 60, "models": ["*"], "pii_detection": true}}

derived := d if {
	d := authz.derived with data.sluice.tiers as tiers
}

# at is a request of a client of department at a weekday and hour.
at(department, weekday, hour) := {
	"client": {"id": "agent-7", "department": department, "tier": "standard", "labels": {}},
	"request": {"method": "POST", "path": "/v1/chat/completions", "model": "gpt-4o-mini", "max_tokens": 256, "prompt_tokens": 40, "message_count": 1},
	"usage": {},
	"findings": [],
	"time": {"unix": 1795000000, "zone": "Europe/Berlin", "weekday": weekday, "hour": hour, "minute": 0},
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

test_support_within_business_hours_allowed if {
	every c in [["Monday", 8], ["Wednesday", 12], ["Friday", 17]] {
		[weekday, hour] := c
		decide(at("support", weekday, hour)).allowed
	}
}

test_support_outside_business_hours_denied if {
	every c in [["Monday", 7], ["Tuesday", 18], ["Thursday", 23], ["Saturday", 10], ["Sunday", 12]] {
		[weekday, hour] := c
		d := decide(at("support", weekday, hour))
		[d.allowed, d.http_status, d.code, d.type] == [false, 403, "outside_business_hours", "permission_error"]
		d.message == "this department may use models on weekdays from 08:00 to 18:00 only"
	}
}

test_other_departments_any_time if {
	every department in ["research", "finance", ""] {
		decide(at(department, "Sunday", 3)).allowed
	}
}

test_support_without_time_denied if {
	req := object.remove(at("support", "Monday", 9), ["time"])
	decide(req).code == "outside_business_hours"
}

test_tier_rules_come_first if {
	d := decide(object.union(at("support", "Sunday", 3), {"client": {"tier": "gold"}}))
	d.code == "tier_unknown"
}
