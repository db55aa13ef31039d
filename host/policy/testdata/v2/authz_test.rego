package sluice.authz_test

import data.sluice.authz

tiers := {"standard": {"rpm": 60, "models": ["gpt-4o-mini"], "pii_detection": true}}

test_model_allowed if {
	d := authz.decision with input as {"client": {"tier": "standard", "department": ""}, "request": {"model": "gpt-4o-mini"}, "findings": []}
		with data.sluice.tiers as tiers
	d.allowed
	d.limits.rpm == 60
	d.plugins == ["pii"]
}

test_model_denied if {
	d := authz.decision with input as {"client": {"tier": "standard", "department": ""}, "request": {"model": "gpt-4o"}, "findings": []}
		with data.sluice.tiers as tiers
	d.code == "model_not_allowed"
}
