package sluice.authz_test

import data.sluice.authz

tiers := {
	"standard": {
		"rpm": 60,
		"daily_tokens": 1000000,
		"models": ["gpt-4o-mini", "mock-*"],
		"pii_detection": true,
		"content_filter": true,
		"redact": [],
	},
	"premium": {
		"rpm": 600,
		"daily_tokens": 0,
		"models": ["*"],
		"pii_detection": true,
		"content_filter": false,
		"redact": ["PHONE", "EMAIL"],
	},
	"bare": {"models": ["*"]},
}

# request builds an input for a client of the given tier asking for model,
# with the given findings.
request(tier, model, findings) := {
	"client": {"id": "billing-bot", "department": "finance", "tier": tier, "labels": {"env": "prod"}},
	"request": {
		"method": "POST",
		"path": "/v1/chat/completions",
		"model": model,
		"stream": false,
		"max_tokens": 256,
		"prompt_tokens": 42,
		"message_count": 2,
	},
	"findings": findings,
	"time": {"unix": 1796000000},
}

finding(plugin, type) := {"plugin": plugin, "type": type, "count": 1, "score": 0.9, "messages": [0]}

standard_limits := {"rpm": 60, "daily_tokens": 1000000}

test_standard_allowed_without_findings if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as tiers
	d == {
		"allowed": true,
		"http_status": 200,
		"code": "",
		"type": "",
		"message": "",
		"headers": {},
		"limits": standard_limits,
		"redact": [],
		"plugins": ["content_filter", "pii"],
	}
}

test_unknown_tier_denied if {
	d := authz.decision with input as request("gold", "gpt-4o-mini", [])
		with data.sluice.tiers as tiers
	d == {
		"allowed": false,
		"http_status": 403,
		"code": "tier_unknown",
		"type": "permission_error",
		"message": "client tier \"gold\" is not configured",
		"headers": {},
		"limits": {"rpm": 0, "daily_tokens": 0},
		"redact": [],
		"plugins": [],
	}
}

test_missing_tier_data_denied if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
	d.code == "tier_unknown"
	d.allowed == false
}

test_non_object_tier_denied if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as {"standard": "everything"}
	d.code == "tier_unknown"
}

test_empty_input_denied if {
	d := authz.decision with input as {}
		with data.sluice.tiers as tiers
	d.code == "tier_unknown"
	d.message == "client tier \"\" is not configured"
}

test_model_not_allowed if {
	d := authz.decision with input as request("standard", "gpt-4o", [])
		with data.sluice.tiers as tiers
	d == {
		"allowed": false,
		"http_status": 403,
		"code": "model_not_allowed",
		"type": "permission_error",
		"message": "model \"gpt-4o\" is not allowed for this client",
		"headers": {},
		"limits": standard_limits,
		"redact": [],
		"plugins": [],
	}
}

test_tier_without_models_allows_none if {
	d := authz.decision with input as request("empty", "gpt-4o-mini", [])
		with data.sluice.tiers as {"empty": {}}
	d.code == "model_not_allowed"
}

test_model_patterns if {
	every c in [
		{"tier": "standard", "model": "gpt-4o-mini", "allowed": true},
		{"tier": "standard", "model": "mock-echo", "allowed": true},
		{"tier": "standard", "model": "mock-", "allowed": true},
		{"tier": "standard", "model": "gpt-4o-mini-2024", "allowed": false},
		{"tier": "standard", "model": "MOCK-echo", "allowed": false},
		{"tier": "premium", "model": "gpt-3.5-turbo", "allowed": true},
		{"tier": "premium", "model": "meta-llama/Llama-3-8B", "allowed": true},
	] {
		d := authz.decision with input as request(c.tier, c.model, [])
			with data.sluice.tiers as tiers
		d.allowed == c.allowed
	}
}

test_request_without_model_skips_model_check if {
	d := authz.decision with input as request("standard", "", [])
		with data.sluice.tiers as tiers
	d.allowed
}

listing(model) := object.union(request("standard", model, []), {"request": {"method": "GET", "path": "/v1/models"}})

test_model_listing_is_asked_per_model if {
	allowed := authz.decision with input as listing("mock-echo") with data.sluice.tiers as tiers
	hidden := authz.decision with input as listing("gpt-4o") with data.sluice.tiers as tiers
	allowed.allowed
	hidden.code == "model_not_allowed"
}

test_content_filter_finding_blocks if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [
		finding("content_filter", "VIOLENCE"),
		finding("content_filter", "HATE"),
	])
		with data.sluice.tiers as tiers
	d == {
		"allowed": false,
		"http_status": 400,
		"code": "content_policy_violation",
		"type": "invalid_request_error",
		"message": "request blocked by content policy (HATE, VIOLENCE)",
		"headers": {},
		"limits": standard_limits,
		"redact": [],
		"plugins": [],
	}
}

test_pii_not_redacted_blocks if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [
		finding("pii", "US_SSN"),
		finding("pii", "EMAIL"),
	])
		with data.sluice.tiers as tiers
	d == {
		"allowed": false,
		"http_status": 400,
		"code": "pii_detected",
		"type": "invalid_request_error",
		"message": "request blocked: personal data detected (EMAIL, US_SSN)",
		"headers": {},
		"limits": standard_limits,
		"redact": [],
		"plugins": [],
	}
}

test_pii_in_redact_list_is_redacted if {
	d := authz.decision with input as request("premium", "gpt-4o", [
		finding("pii", "PHONE"),
		finding("pii", "EMAIL"),
	])
		with data.sluice.tiers as tiers
	d == {
		"allowed": true,
		"http_status": 200,
		"code": "",
		"type": "",
		"message": "",
		"headers": {},
		"limits": {"rpm": 600, "daily_tokens": 0},
		"redact": ["EMAIL", "PHONE"],
		"plugins": ["pii"],
	}
}

test_pii_blocked_names_only_types_not_redacted if {
	d := authz.decision with input as request("premium", "gpt-4o", [
		finding("pii", "EMAIL"),
		finding("pii", "US_SSN"),
		finding("pii", "AWS_ACCESS_KEY"),
	])
		with data.sluice.tiers as tiers
	d.code == "pii_detected"
	d.message == "request blocked: personal data detected (AWS_ACCESS_KEY, US_SSN)"
}

test_findings_of_other_plugins_are_ignored if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [finding("toxicity", "HATE")])
		with data.sluice.tiers as tiers
	d.allowed
	d.redact == []
}

test_precedence if {
	everything := [finding("pii", "EMAIL"), finding("content_filter", "HATE")]
	every c in [
		{"tier": "gold", "model": "gpt-4o", "findings": everything, "code": "tier_unknown"},
		{"tier": "standard", "model": "gpt-4o", "findings": everything, "code": "model_not_allowed"},
		{"tier": "standard", "model": "gpt-4o-mini", "findings": everything, "code": "content_policy_violation"},
		{"tier": "standard", "model": "gpt-4o-mini", "findings": [finding("pii", "EMAIL")], "code": "pii_detected"},
	] {
		d := authz.decision with input as request(c.tier, c.model, c.findings)
			with data.sluice.tiers as tiers
		d.code == c.code
		d.allowed == false
	}
}

test_plugins_follow_tier_switches if {
	every c in [
		{"tier": "standard", "plugins": ["content_filter", "pii"]},
		{"tier": "premium", "plugins": ["pii"]},
		{"tier": "bare", "plugins": []},
		{"tier": "filtered", "plugins": ["content_filter"]},
	] {
		d := authz.decision with input as request(c.tier, "gpt-4o-mini", [])
			with data.sluice.tiers as object.union(tiers, {"filtered": {"models": ["*"], "content_filter": true, "pii_detection": false}})
		d.plugins == c.plugins
	}
}

test_absent_limits_are_unlimited if {
	d := authz.decision with input as request("bare", "any-model", [])
		with data.sluice.tiers as tiers
	d.limits == {"rpm": 0, "daily_tokens": 0}
}

test_malformed_findings_treated_as_none if {
	d := authz.decision with input as object.union(request("standard", "gpt-4o-mini", []), {"findings": "none"})
		with data.sluice.tiers as tiers
	d.allowed
}

test_input_without_request_is_not_model_checked if {
	d := authz.decision with input as {"client": {"tier": "standard"}}
		with data.sluice.tiers as tiers
	d.allowed
	d.plugins == ["content_filter", "pii"]
}

# The allowed first pass is answered from data.sluice.derived when it is
# there. These tests check that it changes no decision, and that it is used.

derived := d if {
	d := authz.derived with data.sluice.tiers as tiers
}

test_derived_data_changes_no_decision if {
	every c in [
		["standard", "gpt-4o-mini", []],
		["standard", "mock-echo", []],
		["standard", "mock-", []],
		["standard", "", []],
		["standard", "gpt-4o", []],
		["standard", "MOCK-echo", []],
		["standard", "gpt-4o-mini-2024", []],
		["premium", "meta-llama/Llama-3-8B", []],
		["premium", "gpt-4o", [finding("pii", "EMAIL")]],
		["standard", "gpt-4o-mini", [finding("content_filter", "HATE")]],
		["bare", "any-model", []],
		["gold", "gpt-4o-mini", []],
	] {
		[tier, model, findings] := c
		computed := authz.decision with input as request(tier, model, findings)
			with data.sluice.tiers as tiers
		looked_up := authz.decision with input as request(tier, model, findings)
			with data.sluice.tiers as tiers
			with data.sluice.derived as derived
		looked_up == computed
	}
}

test_derived_splits_names_from_patterns if {
	derived.tiers.standard.models == {"": true, "gpt-4o-mini": true}
	derived.tiers.standard.model_patterns == ["mock-*"]
	derived.tiers.premium.models == {"": true}
	derived.tiers.premium.model_patterns == ["*"]
	derived.tiers.standard.allowed == {
		"allowed": true,
		"http_status": 200,
		"code": "",
		"type": "",
		"message": "",
		"headers": {},
		"limits": standard_limits,
		"redact": [],
		"plugins": ["content_filter", "pii"],
	}
}

test_derived_treats_every_glob_character_as_a_pattern if {
	d := authz.derived with data.sluice.tiers as {"t": {"models": ["a*", "b?", "[cd]", "{e,f}", "g\\h", "plain.name/x-1"]}}
	d.tiers.t.models == {"": true, "plain.name/x-1": true}
	d.tiers.t.model_patterns == ["a*", "b?", "[cd]", "{e,f}", "g\\h"]
}

test_derived_skips_tiers_that_are_not_objects if {
	d := authz.derived with data.sluice.tiers as {"standard": "everything"}
	d == {"tiers": {}}
}

# A marked decision in the derived data shows which branch answered.
marked := {"tiers": {"standard": object.union(derived.tiers.standard, {"allowed": {"headers": {"x-derived": "yes"}}})}}

test_derived_answers_the_allowed_first_pass if {
	every model in ["gpt-4o-mini", "mock-echo", ""] {
		d := authz.decision with input as request("standard", model, [])
			with data.sluice.tiers as tiers
			with data.sluice.derived as marked
		d.headers == {"x-derived": "yes"}
	}
}

test_derived_does_not_answer_denials_or_findings if {
	every c in [["gpt-4o", []], ["gpt-4o-mini", [finding("pii", "EMAIL")]]] {
		[model, findings] := c
		d := authz.decision with input as request("standard", model, findings)
			with data.sluice.tiers as tiers
			with data.sluice.derived as marked
		d.headers == {}
	}
}
