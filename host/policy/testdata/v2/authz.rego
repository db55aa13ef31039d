# Package sluice.authz is the tier policy of policies/authz.rego written for
# contract v2, kept here so that the engine's tests and benchmarks do not
# depend on the shipped policy's wording.
package sluice.authz

decision := d if {
	input.findings == []
	derived := data.sluice.derived
	tier := derived.tiers[input.client.tier]
	tier.models[input.request.model]
	d := tier.allowed[_department_key]
} else := d if {
	input.findings == []
	derived := data.sluice.derived
	tier := derived.tiers[input.client.tier]
	some pattern in tier.model_patterns
	glob.match(pattern, null, input.request.model)
	d := tier.allowed[_department_key]
} else := {
	"allowed": false,
	"http_status": 403,
	"code": "tier_unknown",
	"type": "permission_error",
	"message": sprintf("client tier %q is not configured", [_tier_name]),
	"headers": {},
	"limits": _no_limits,
	"department_limits": _no_limits,
	"redact": [],
	"plugins": [],
} if {
	not _tier_known
} else := {
	"allowed": false,
	"http_status": 403,
	"code": "model_not_allowed",
	"type": "permission_error",
	"message": sprintf("model %q is not allowed for this client", [_model]),
	"headers": {},
	"limits": _limits(_tier),
	"department_limits": _department_limits(input.client.department),
	"redact": [],
	"plugins": [],
} if {
	not _model_allowed
} else := {
	"allowed": false,
	"http_status": 400,
	"code": "content_policy_violation",
	"type": "invalid_request_error",
	"message": sprintf("request blocked by content policy (%s)", [concat(", ", sort(categories))]),
	"headers": {},
	"limits": _limits(_tier),
	"department_limits": _department_limits(input.client.department),
	"redact": [],
	"plugins": [],
} if {
	categories := {f.type | some f in input.findings; f.plugin == "content_filter"}
	count(categories) > 0
} else := {
	"allowed": false,
	"http_status": 400,
	"code": "pii_detected",
	"type": "invalid_request_error",
	"message": sprintf("request blocked: personal data detected (%s)", [concat(", ", sort(blocked))]),
	"headers": {},
	"limits": _limits(_tier),
	"department_limits": _department_limits(input.client.department),
	"redact": [],
	"plugins": [],
} if {
	blocked := {f.type | some f in input.findings; f.plugin == "pii"; not f.type in _tier.redact}
	count(blocked) > 0
} else := {
	"allowed": true,
	"http_status": 200,
	"code": "",
	"type": "",
	"message": "",
	"headers": {},
	"limits": _limits(_tier),
	"department_limits": _department_limits(input.client.department),
	"redact": sort({f.type | some f in input.findings; f.plugin == "pii"}),
	"plugins": _plugins(_tier),
	"response_plugins": object.get(_tier, "response_plugins", []),
	"restore": object.get(_tier, "restore", false),
}

_tier := data.sluice.tiers[input.client.tier]

_tier_known if is_object(_tier)

default _tier_name := ""

_tier_name := input.client.tier if is_string(input.client.tier)

default _model := ""

_model := input.request.model

_model_allowed if _model == ""

_model_allowed if {
	some pattern in _tier.models
	glob.match(pattern, null, _model)
}

# _department_key is the client's department when data has limits for it,
# else "", the key of the decision without department limits.
default _department_key := ""

_department_key := input.client.department if data.sluice.departments[input.client.department]

_no_limits := {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0}

_limits(x) := {
	"rpm": object.get(x, "rpm", 0),
	"tpm": object.get(x, "tpm", 0),
	"daily_tokens": object.get(x, "daily_tokens", 0),
	"monthly_tokens": object.get(x, "monthly_tokens", 0),
	"monthly_spend_usd": object.get(x, "monthly_spend_usd", 0),
}

default _department_limits(_) := {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0}

_department_limits(name) := _limits(data.sluice.departments[name])

# derived holds, per tier, the allowed first-pass decision for each
# department with limits ("" for the others), and the model names.
derived := {"tiers": {name: _derive(tier) | some name, tier in data.sluice.tiers; is_object(tier)}}

_derive(tier) := {
	"allowed": {dept: _allowed(tier, dept) | some dept in _department_names},
	"models": object.union({"": true}, {m: true | some m in tier.models; not _glob_syntax(m)}),
	"model_patterns": [m | some m in tier.models; _glob_syntax(m)],
}

_department_names contains ""

_department_names contains name if some name, _ in data.sluice.departments

_allowed(tier, dept) := {
	"allowed": true,
	"http_status": 200,
	"code": "",
	"type": "",
	"message": "",
	"headers": {},
	"limits": _limits(tier),
	"department_limits": _department_limits(dept),
	"redact": [],
	"plugins": _plugins(tier),
	"response_plugins": object.get(tier, "response_plugins", []),
	"restore": object.get(tier, "restore", false),
}

_glob_syntax(pattern) if regex.match(`[*?\[\]{}\\]`, pattern)

_plugins(tier) := ["content_filter", "pii"] if {
	tier.content_filter == true
	tier.pii_detection == true
} else := ["content_filter"] if {
	tier.content_filter == true
} else := ["pii"] if {
	tier.pii_detection == true
} else := []
