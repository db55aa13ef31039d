# Package sluice.authz is Sluice's default admission policy.
#
# The gateway evaluates data.sluice.authz.decision once per request with no
# findings, and a second time with the plugins' findings if they found
# anything. The input document and the decision object are described in
# README.md. Every path through this file yields exactly one complete decision.
package sluice.authz

# decision is the only rule the gateway reads. A denial, when one applies,
# wins; otherwise the request is allowed with the tier's limits, the plugins to
# run, and the finding types to redact.
decision := _denied(reason) if {
	reason := denial
} else := {
	"allowed": true,
	"http_status": 200,
	"code": "",
	"type": "",
	"message": "",
	"headers": {},
	"limits": limits,
	"redact": redact,
	"plugins": plugins,
}

# denial is the first reason to refuse the request, in order of precedence:
# an unknown tier, a model outside the tier, a content-policy finding, then
# personal data the tier does not redact. The else chain keeps it single-valued
# when several reasons apply at once.
denial := {
	"http_status": 403,
	"type": "permission_error",
	"code": "tier_unknown",
	"message": sprintf("client tier %q is not configured", [tier_name]),
} if {
	not tier_known
} else := {
	"http_status": 403,
	"type": "permission_error",
	"code": "model_not_allowed",
	"message": sprintf("model %q is not allowed for this client", [model]),
} if {
	# Requests without a model (for example, listing files) are not subject
	# to model authorization; /v1/models is asked once per listed model.
	model != ""
	not model_allowed
} else := {
	"http_status": 400,
	"type": "invalid_request_error",
	"code": "content_policy_violation",
	"message": sprintf("request blocked by content policy (%s)", [concat(", ", sort(content_categories))]),
} if {
	count(content_categories) > 0
} else := {
	"http_status": 400,
	"type": "invalid_request_error",
	"code": "pii_detected",
	"message": sprintf("request blocked: personal data detected (%s)", [concat(", ", sort(blocked_pii))]),
} if {
	count(blocked_pii) > 0
}

# _denied turns a denial into a full decision. A refused request runs no
# plugins and redacts nothing; the limits are still reported for audit.
_denied(reason) := {
	"allowed": false,
	"http_status": reason.http_status,
	"code": reason.code,
	"type": reason.type,
	"message": reason.message,
	"headers": {},
	"limits": limits,
	"redact": [],
	"plugins": [],
}

# tier_name and model default to "" so that a partial input still yields a
# decision (a denial) rather than an undefined one.
default tier_name := ""

tier_name := input.client.tier if is_string(input.client.tier)

default model := ""

model := input.request.model if is_string(input.request.model)

default findings := []

findings := input.findings if is_array(input.findings)

tier_known if is_object(data.sluice.tiers[tier_name])

# tier is the client's tier settings; {} for an unknown tier so that every
# lookup below has a value (and denies) instead of being undefined.
default tier := {}

tier := data.sluice.tiers[tier_name] if tier_known

# model_allowed holds if one of the tier's glob patterns matches the model.
# The null delimiter lets "*" match across "." and "/", which model names use
# ("gpt-3.5-turbo", "meta-llama/Llama-3-8B").
model_allowed if {
	some pattern in object.get(tier, "models", [])
	glob.match(pattern, null, model)
}

# limits are the tier's; 0 (or absent) means unlimited. A value that is not a
# number is passed through so that the gateway rejects the decision (and fails
# closed) instead of treating a typo as "unlimited".
limits := {
	"rpm": object.get(tier, "rpm", 0),
	"daily_tokens": object.get(tier, "daily_tokens", 0),
}

# plugins lists the request-phase plugins the tier turns on, sorted.
plugins := sort(_enabled_plugins)

_enabled_plugins contains "pii" if tier.pii_detection == true

_enabled_plugins contains "content_filter" if tier.content_filter == true

# content_categories are the categories the content filter flagged; any one
# of them blocks the request.
content_categories := {f.type | some f in findings; f.plugin == "content_filter"}

# pii_types are the personal-data types found; those in the tier's redact list
# are masked before forwarding, the others block the request.
pii_types := {f.type | some f in findings; f.plugin == "pii"}

_redactable := {t | some t in object.get(tier, "redact", [])}

blocked_pii := pii_types - _redactable

redact := sort(pii_types & _redactable)
