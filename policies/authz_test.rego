package sluice.authz_test

import data.sluice.authz

tiers := {
	"standard": {
		"rpm": 60,
		"tpm": 100000,
		"daily_tokens": 1000000,
		"models": ["gpt-4o-mini", "mock-*"],
		"pii_detection": true,
		"content_filter": true,
		"redact": [],
	},
	"premium": {
		"rpm": 600,
		"daily_tokens": 0,
		"monthly_spend_usd": 250.5,
		"models": ["*"],
		"pii_detection": true,
		"content_filter": false,
		"redact": ["PHONE", "EMAIL"],
		"response_plugins": ["pii"],
		"restore": true,
	},
	"bare": {"models": ["*"]},
}

departments := {
	"finance": {"monthly_spend_usd": 500},
	"research": {"rpm": 100, "tpm": 50000, "daily_tokens": 2000000, "monthly_tokens": 30000000, "monthly_spend_usd": 1200},
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
		"headers": {"user-agent": "openai-python/1.0"},
	},
	"usage": {},
	"findings": findings,
	"time": {
		"unix": 1795000000,
		"rfc3339": "2026-11-17T09:26:40Z",
		"zone": "UTC",
		"weekday": "Tuesday",
		"hour": 9,
		"minute": 26,
	},
}

# in_department moves a request's client to department.
in_department(req, department) := object.union(req, {"client": {"department": department}})

finding(plugin, type) := {"plugin": plugin, "type": type, "count": 1, "score": 0.9, "messages": [0]}

unlimited := {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0}

standard_limits := {"rpm": 60, "tpm": 100000, "daily_tokens": 1000000, "monthly_tokens": 0, "monthly_spend_usd": 0}

finance_limits := {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 500}

# denied is a denial of the tier and department limits above.
denied(status, code, type, message) := {
	"allowed": false,
	"http_status": status,
	"code": code,
	"type": type,
	"message": message,
	"reason": "",
	"headers": {},
	"limits": standard_limits,
	"department_limits": finance_limits,
	"redact": [],
	"plugins": [],
	"response_plugins": [],
	"restore": false,
}

test_standard_allowed_without_findings if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as tiers
		with data.sluice.departments as departments
	d == {
		"allowed": true,
		"http_status": 200,
		"code": "",
		"type": "",
		"message": "",
		"headers": {},
		"limits": standard_limits,
		"department_limits": finance_limits,
		"redact": [],
		"plugins": ["content_filter", "pii"],
		"response_plugins": [],
		"restore": false,
		"max_tokens": 0,
		"regions": [],
		"fallbacks": null,
		"cache": {"ttl": "", "scope": ""},
	}
}

test_unknown_tier_denied if {
	d := authz.decision with input as request("gold", "gpt-4o-mini", [])
		with data.sluice.tiers as tiers
		with data.sluice.departments as departments
	d == {
		"allowed": false,
		"http_status": 403,
		"code": "tier_unknown",
		"type": "permission_error",
		"message": "client tier \"gold\" is not configured",
		"reason": "",
		"headers": {},
		"limits": unlimited,
		"department_limits": unlimited,
		"redact": [],
		"plugins": [],
		"response_plugins": [],
		"restore": false,
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
		with data.sluice.departments as departments
	d == denied(403, "model_not_allowed", "permission_error", "model \"gpt-4o\" is not allowed for this client")
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
		with data.sluice.departments as departments
	d == denied(400, "content_policy_violation", "invalid_request_error", "request blocked by content policy (HATE, VIOLENCE)")
}

test_pii_not_redacted_blocks if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [
		finding("pii", "US_SSN"),
		finding("pii", "EMAIL"),
	])
		with data.sluice.tiers as tiers
		with data.sluice.departments as departments
	d == denied(400, "pii_detected", "invalid_request_error", "request blocked: personal data detected (EMAIL, US_SSN)")
}

test_pii_in_redact_list_is_redacted if {
	d := authz.decision with input as request("premium", "gpt-4o", [
		finding("pii", "PHONE"),
		finding("pii", "EMAIL"),
	])
		with data.sluice.tiers as tiers
		with data.sluice.departments as departments
	d == {
		"allowed": true,
		"http_status": 200,
		"code": "",
		"type": "",
		"message": "",
		"headers": {},
		"limits": {"rpm": 600, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 250.5},
		"department_limits": finance_limits,
		"redact": ["EMAIL", "PHONE"],
		"plugins": ["pii"],
		"response_plugins": ["pii"],
		"restore": true,
		"max_tokens": 0,
		"regions": [],
		"fallbacks": null,
		"cache": {"ttl": "", "scope": ""},
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
		{"tier": "truthy", "plugins": []},
	] {
		d := authz.decision with input as request(c.tier, "gpt-4o-mini", [])
			with data.sluice.tiers as object.union(tiers, {
				"filtered": {"models": ["*"], "content_filter": true, "pii_detection": false},
				"truthy": {"models": ["*"], "content_filter": "yes", "pii_detection": 1},
			})
		d.plugins == c.plugins
	}
}

test_absent_limits_are_unlimited if {
	d := authz.decision with input as request("bare", "any-model", [])
		with data.sluice.tiers as tiers
	d.limits == unlimited
	d.department_limits == unlimited
	d.response_plugins == []
	d.restore == false
}

# A limit the gateway cannot read must reach it as it is, so that it refuses
# the decision instead of reading the typo as unlimited.
test_malformed_limits_are_passed_through if {
	d := authz.decision with input as in_department(request("odd", "gpt-4o-mini", []), "broken")
		with data.sluice.tiers as {"odd": {"models": ["*"], "rpm": "sixty"}}
		with data.sluice.departments as {"broken": "lots"}
	d.limits.rpm == "sixty"
	d.department_limits == "lots"
}

test_department_limits_come_from_department_data if {
	every c in [
		{"department": "finance", "limits": finance_limits},
		{"department": "research", "limits": departments.research},
		{"department": "legal", "limits": unlimited},
		{"department": "", "limits": unlimited},
	] {
		d := authz.decision with input as in_department(request("standard", "gpt-4o-mini", []), c.department)
			with data.sluice.tiers as tiers
			with data.sluice.departments as departments
		d.department_limits == c.limits
		d.limits == standard_limits
	}
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
	d.department_limits == unlimited
}

# Extension points: what files of package sluice.authz add to deny, redact,
# block, cap and plugin. The tests replace the sets with "with"; the
# examples' tests add them with real rules.

test_deny_extension_denies if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as tiers
		with data.sluice.departments as departments
		with authz.deny as {{"http_status": 451, "code": "embargoed", "type": "permission_error", "message": "not here"}}
	d == denied(451, "embargoed", "permission_error", "not here")
}

test_deny_extension_fills_missing_fields if {
	every c in [
		{"deny": {"outside business hours"}, "want": [403, "policy_denied", "permission_error", "outside business hours"]},
		{"deny": {{"code": "too_big", "http_status": 413}}, "want": [413, "too_big", "permission_error", "request denied by policy"]},
		{"deny": {true}, "want": [403, "policy_denied", "permission_error", "request denied by policy"]},
	] {
		d := authz.decision with input as request("standard", "gpt-4o-mini", [])
			with data.sluice.tiers as tiers
			with authz.deny as c.deny
		[d.http_status, d.code, d.type, d.message] == c.want
		d.allowed == false
	}
}

test_deny_extension_picks_first_in_sort_order if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as tiers
		with authz.deny as {
			{"http_status": 403, "code": "b_rule", "type": "permission_error", "message": "b"},
			{"http_status": 429, "code": "a_rule", "type": "rate_limit_error", "message": "a2"},
			{"http_status": 429, "code": "a_rule", "type": "rate_limit_error", "message": "a1"},
			"plain",
		}
	[d.http_status, d.code, d.message] == [429, "a_rule", "a1"]
}

test_deny_extension_precedence if {
	ext := {{"http_status": 403, "code": "embargoed", "type": "permission_error", "message": "not here"}}
	every c in [
		{"tier": "gold", "model": "gpt-4o-mini", "findings": [], "code": "tier_unknown"},
		{"tier": "standard", "model": "gpt-4o", "findings": [], "code": "model_not_allowed"},
		{"tier": "standard", "model": "gpt-4o-mini", "findings": [finding("content_filter", "HATE")], "code": "embargoed"},
		{"tier": "standard", "model": "gpt-4o-mini", "findings": [finding("pii", "EMAIL")], "code": "embargoed"},
	] {
		d := authz.decision with input as request(c.tier, c.model, c.findings)
			with data.sluice.tiers as tiers
			with authz.deny as ext
		d.code == c.code
	}
}

test_redact_extension_adds_types if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [finding("pii", "EMAIL"), finding("pii", "PHONE")])
		with data.sluice.tiers as tiers
		with authz.redact as {"EMAIL", "PHONE"}
	d.allowed
	d.redact == ["EMAIL", "PHONE"]
}

test_block_extension_overrides_redaction if {
	every c in [
		{"redact": set(), "findings": [finding("pii", "EMAIL"), finding("pii", "AWS_ACCESS_KEY")], "message": "request blocked: personal data detected (AWS_ACCESS_KEY)"},
		{"redact": {"AWS_ACCESS_KEY"}, "findings": [finding("pii", "AWS_ACCESS_KEY")], "message": "request blocked: personal data detected (AWS_ACCESS_KEY)"},
		{"redact": set(), "findings": [finding("pii", "PHONE"), finding("pii", "EMAIL")], "message": "request blocked: personal data detected (PHONE)"},
	] {
		d := authz.decision with input as request("premium", "gpt-4o", c.findings)
			with data.sluice.tiers as object.union(tiers, {"premium": {"redact": ["EMAIL", "AWS_ACCESS_KEY"]}})
			with authz.redact as c.redact
			with authz.block as {"AWS_ACCESS_KEY", "PHONE"}
		d.code == "pii_detected"
		d.message == c.message
	}
}

test_block_extension_leaves_other_types_alone if {
	d := authz.decision with input as request("premium", "gpt-4o", [finding("pii", "EMAIL")])
		with data.sluice.tiers as tiers
		with authz.block as {"AWS_ACCESS_KEY"}
	d.allowed
	d.redact == ["EMAIL"]
}

test_cap_extension_lowers_limits if {
	every c in [
		{"cap": {{"limit": "tpm", "value": 20000}}, "limits": object.union(standard_limits, {"tpm": 20000})},
		{"cap": {{"limit": "tpm", "value": 500000}}, "limits": standard_limits},
		{"cap": {{"limit": "tpm", "value": 30000}, {"limit": "tpm", "value": 20000}}, "limits": object.union(standard_limits, {"tpm": 20000})},
		{"cap": {{"limit": "monthly_tokens", "value": 5000000}}, "limits": object.union(standard_limits, {"monthly_tokens": 5000000})},
		{"cap": {{"limit": "monthly_spend_usd", "value": 12.5}, {"limit": "rpm", "value": 10}}, "limits": object.union(standard_limits, {"rpm": 10, "monthly_spend_usd": 12.5})},
	] {
		d := authz.decision with input as request("standard", "gpt-4o-mini", [])
			with data.sluice.tiers as tiers
			with data.sluice.departments as departments
			with authz.cap as c.cap
		d.allowed
		d.limits == c.limits
		d.department_limits == finance_limits
	}
}

test_max_tokens_cap_is_the_lowest_and_leaves_limits_alone if {
	every c in [
		{"cap": {{"limit": "max_tokens", "value": 256}}, "max_tokens": 256},
		{"cap": {{"limit": "max_tokens", "value": 512}, {"limit": "max_tokens", "value": 128}}, "max_tokens": 128},
		{"cap": {{"limit": "tpm", "value": 20000}}, "max_tokens": 0},
	] {
		d := authz.decision with input as request("standard", "gpt-4o-mini", [])
			with data.sluice.tiers as tiers
			with authz.cap as c.cap
		d.allowed
		d.max_tokens == c.max_tokens
		d.limits.rpm == standard_limits.rpm
	}
}

test_max_tokens_cap_of_zero_is_a_policy_error if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as tiers
		with authz.cap as {{"limit": "max_tokens", "value": 0}}
	d.code == "policy_error"
}

test_denial_reason_reaches_the_decision if {
	every c in [
		{"deny": {{"code": "ticket_required", "message": "send x-ticket-id", "reason": "ticket OPS-1 is closed"}}, "reason": "ticket OPS-1 is closed"},
		{"deny": {{"code": "ticket_required", "message": "send x-ticket-id"}}, "reason": ""},
		{"deny": {"plain message"}, "reason": ""},
	] {
		d := authz.decision with input as request("standard", "gpt-4o-mini", [])
			with data.sluice.tiers as tiers
			with authz.deny as c.deny
		d.allowed == false
		d.reason == c.reason
	}
}

test_allow_extension_grants_models_beyond_the_tier if {
	every c in [
		{"allow": {"gpt-4o"}, "model": "gpt-4o", "allowed": true},
		{"allow": {"gpt-4*"}, "model": "gpt-4.1", "allowed": true},
		{"allow": {"gpt-4o"}, "model": "o3", "allowed": false},
		{"allow": set(), "model": "gpt-4o", "allowed": false},
	] {
		d := authz.decision with input as request("standard", c.model, [])
			with data.sluice.tiers as tiers
			with data.sluice.derived as authz.derived with data.sluice.tiers as tiers
			with authz.allow as c.allow
		d.allowed == c.allowed
	}
}

test_cap_extension_applies_to_denials_too if {
	d := authz.decision with input as request("standard", "gpt-4o", [])
		with data.sluice.tiers as tiers
		with authz.cap as {{"limit": "rpm", "value": 5}}
	d.code == "model_not_allowed"
	d.limits.rpm == 5
}

test_cap_that_cannot_apply_is_a_policy_error if {
	every cap in [
		{{"limit": "rpm", "value": 0}},
		{{"limit": "rpm", "value": -1}},
		{{"limit": "rpm", "value": "ten"}},
		{{"limit": "tmp", "value": 10}},
		{{"value": 10}},
		{"rpm"},
	] {
		d := authz.decision with input as request("standard", "gpt-4o-mini", [])
			with data.sluice.tiers as tiers
			with authz.cap as cap
		d.allowed == false
		[d.http_status, d.code, d.type] == [500, "policy_error", "server_error"]
		d.limits == standard_limits
	}
}

test_cap_keeps_a_malformed_limit_malformed if {
	d := authz.decision with input as request("odd", "gpt-4o-mini", [])
		with data.sluice.tiers as {"odd": {"models": ["*"], "rpm": "sixty"}}
		with authz.cap as {{"limit": "rpm", "value": 10}}
	d.limits.rpm == "sixty"
}

test_plugin_extension_adds_plugins if {
	every c in [
		{"tier": "bare", "plugin": {"pii"}, "plugins": ["pii"]},
		{"tier": "standard", "plugin": {"pii", "toxicity"}, "plugins": ["content_filter", "pii", "toxicity"]},
	] {
		d := authz.decision with input as request(c.tier, "gpt-4o-mini", [])
			with data.sluice.tiers as tiers
			with authz.plugin as c.plugin
		d.plugins == c.plugins
	}
}

# The allowed first pass is answered from data.sluice.derived when it is
# there. These tests check that it changes no decision, that it is used, and
# that it stands aside when an extension applies.

derived := d if {
	d := authz.derived with data.sluice.tiers as tiers
		with data.sluice.departments as departments
}

test_derived_data_changes_no_decision if {
	every c in [
		["standard", "gpt-4o-mini", [], "finance"],
		["standard", "gpt-4o-mini", [], "research"],
		["standard", "gpt-4o-mini", [], "legal"],
		["standard", "mock-echo", [], "research"],
		["standard", "mock-echo", [], "legal"],
		["standard", "mock-", [], "finance"],
		["standard", "", [], "finance"],
		["standard", "gpt-4o", [], "finance"],
		["standard", "MOCK-echo", [], "finance"],
		["standard", "gpt-4o-mini-2024", [], "finance"],
		["premium", "meta-llama/Llama-3-8B", [], "research"],
		["premium", "gpt-4o", [finding("pii", "EMAIL")], "finance"],
		["standard", "gpt-4o-mini", [finding("content_filter", "HATE")], "finance"],
		["bare", "any-model", [], "finance"],
		["gold", "gpt-4o-mini", [], "finance"],
	] {
		[tier, model, findings, department] := c
		req := in_department(request(tier, model, findings), department)
		computed := authz.decision with input as req
			with data.sluice.tiers as tiers
			with data.sluice.departments as departments
		looked_up := authz.decision with input as req
			with data.sluice.tiers as tiers
			with data.sluice.departments as departments
			with data.sluice.derived as derived
		looked_up == computed
	}
}

test_derived_splits_names_from_patterns if {
	derived.tiers.standard.models == {"": true, "gpt-4o-mini": true}
	derived.tiers.standard.model_patterns == ["mock-*"]
	derived.tiers.premium.models == {"": true}
	derived.tiers.premium.model_patterns == ["*"]
}

test_derived_holds_a_decision_per_department if {
	allowed := {
		"allowed": true,
		"http_status": 200,
		"code": "",
		"type": "",
		"message": "",
		"headers": {},
		"limits": standard_limits,
		"department_limits": unlimited,
		"redact": [],
		"plugins": ["content_filter", "pii"],
		"response_plugins": [],
		"restore": false,
		"max_tokens": 0,
		"regions": [],
		"fallbacks": null,
		"cache": {"ttl": "", "scope": ""},
	}
	derived.tiers.standard.allowed == allowed
	derived.tiers.standard.departments == {
		"finance": object.union(allowed, {"department_limits": finance_limits}),
		"research": object.union(allowed, {"department_limits": departments.research}),
	}
}

test_derived_without_departments if {
	d := authz.derived with data.sluice.tiers as tiers
	d.tiers.standard.departments == {}
	d.tiers.standard.allowed.department_limits == unlimited
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
marked := {"tiers": {"standard": object.union(derived.tiers.standard, {
	"allowed": {"headers": {"x-derived": "yes"}},
	"departments": {"finance": {"headers": {"x-derived": "finance"}}},
})}}

test_derived_answers_the_allowed_first_pass if {
	every c in [
		["gpt-4o-mini", "finance", "finance"],
		["mock-echo", "finance", "finance"],
		["", "finance", "finance"],
		["gpt-4o-mini", "legal", "yes"],
		["mock-echo", "legal", "yes"],
	] {
		[model, department, mark] := c
		d := authz.decision with input as in_department(request("standard", model, []), department)
			with data.sluice.tiers as tiers
			with data.sluice.departments as departments
			with data.sluice.derived as marked
		d.headers == {"x-derived": mark}
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

# The derived answers know nothing of extension rules, so any deny, cap or
# plugin that applies must send evaluation to the rules that read them, for
# a model named outright as for one a pattern matches.
test_derived_stands_aside_for_extensions if {
	every model in ["gpt-4o-mini", "mock-echo"] {
		req := request("standard", model, [])
		denial := authz.decision with input as req
			with data.sluice.tiers as tiers
			with data.sluice.derived as marked
			with authz.deny as {"closed today"}
		capped := authz.decision with input as req
			with data.sluice.tiers as tiers
			with data.sluice.derived as marked
			with authz.cap as {{"limit": "rpm", "value": 6}}
		plugged := authz.decision with input as req
			with data.sluice.tiers as tiers
			with data.sluice.derived as marked
			with authz.plugin as {"toxicity"}
		[denial.allowed, denial.message] == [false, "closed today"]
		[capped.headers, capped.limits.rpm] == [{}, 6]
		[plugged.headers, plugged.plugins] == [{}, ["content_filter", "pii", "toxicity"]]
	}
}

# Redact and block rules need no such care: they matter only with findings,
# which the derived answers never see.
test_derived_ignores_redact_and_block_rules if {
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as tiers
		with data.sluice.derived as marked
		with authz.redact as {"EMAIL"}
		with authz.block as {"PHONE"}
	d.headers == {"x-derived": "finance"}
}

test_tier_cache_settings_reach_the_decision if {
	cached := object.union(tiers, {"standard": object.union(tiers.standard, {"cache_ttl": "10m", "cache_scope": "department"})})
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as cached
		with data.sluice.departments as departments
	d.allowed
	d.cache == {"ttl": "10m", "scope": "department"}
	d2 := authz.derived with data.sluice.tiers as cached
		with data.sluice.departments as departments
	d2.tiers.standard.allowed.cache == {"ttl": "10m", "scope": "department"}
}

test_tier_fallbacks_reach_the_decision if {
	cheap := object.union(tiers, {"standard": object.union(tiers.standard, {"fallbacks": ["gpt-4o-mini"]})})
	d := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as cheap
		with data.sluice.departments as departments
	d.allowed
	d.fallbacks == ["gpt-4o-mini"]
	d2 := authz.derived with data.sluice.tiers as cheap
		with data.sluice.departments as departments
	d2.tiers.standard.allowed.fallbacks == ["gpt-4o-mini"]

	# [] takes every fallback away; a tier without the key keeps the model's own (null).
	none := object.union(tiers, {"standard": object.union(tiers.standard, {"fallbacks": []})})
	d3 := authz.decision with input as request("standard", "gpt-4o-mini", [])
		with data.sluice.tiers as none
		with data.sluice.departments as departments
	d3.fallbacks == []
}
