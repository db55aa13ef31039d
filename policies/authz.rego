# Package sluice.authz is Sluice's default admission policy.
#
# The gateway evaluates data.sluice.authz.decision once per request with no
# findings, and a second time with the plugins' findings if they found
# anything. README.md describes the input document, the data and the decision
# object.
package sluice.authz

# decision is the only rule the gateway reads. It is one else chain, so that
# exactly one branch yields the whole object: the first denial that applies,
# in order of precedence, or else the allow at the end. Each branch is a full
# literal object rather than a merge of parts, because building the decision
# is the largest share of the cost of an evaluation.
decision := {
	"allowed": false,
	"http_status": 403,
	"code": "tier_unknown",
	"type": "permission_error",
	"message": sprintf("client tier %q is not configured", [_tier_name]),
	"headers": {},
	"limits": {"rpm": 0, "daily_tokens": 0},
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
	"limits": _limits,
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
	"limits": _limits,
	"redact": [],
	"plugins": [],
} if {
	# Any content-filter finding blocks; the message names categories only.
	categories := {f.type | some f in input.findings; f.plugin == "content_filter"}
	count(categories) > 0
} else := {
	"allowed": false,
	"http_status": 400,
	"code": "pii_detected",
	"type": "invalid_request_error",
	"message": sprintf("request blocked: personal data detected (%s)", [concat(", ", sort(blocked))]),
	"headers": {},
	"limits": _limits,
	"redact": [],
	"plugins": [],
} if {
	# Personal data blocks unless the tier redacts that type.
	blocked := {f.type | some f in input.findings; f.plugin == "pii"; not f.type in _tier.redact}
	count(blocked) > 0
} else := {
	"allowed": true,
	"http_status": 200,
	"code": "",
	"type": "",
	"message": "",
	"headers": {},
	"limits": _limits,
	# Reaching here, every personal-data type found is one the tier redacts.
	"redact": sort({f.type | some f in input.findings; f.plugin == "pii"}),
	# Iterating the object's keys yields them sorted.
	"plugins": [plugin |
		some plugin, switch in {"content_filter": "content_filter", "pii": "pii_detection"}
		_tier[switch] == true
	],
}

# _tier is the client's tier settings, from the data the gateway loads from
# its configuration.
_tier := data.sluice.tiers[input.client.tier]

_tier_known if is_object(_tier)

# _tier_name and _model default to "" so that a partial input still yields a
# complete decision (a denial) instead of an undefined one.
default _tier_name := ""

_tier_name := input.client.tier if is_string(input.client.tier)

default _model := ""

_model := input.request.model

# Requests without a model (for example, listing files) are not subject to
# model authorization; /v1/models is asked once per listed model.
_model_allowed if _model == ""

# The null delimiter lets "*" match across "." and "/", which model names
# use ("gpt-3.5-turbo", "meta-llama/Llama-3-8B").
_model_allowed if {
	some pattern in _tier.models
	glob.match(pattern, null, _model)
}

# A limit that is 0 or absent is unlimited. A value that is not a number is
# passed through so that the gateway rejects the decision and fails closed,
# rather than reading a typo as "unlimited".
_limits := {
	"rpm": object.get(_tier, "rpm", 0),
	"daily_tokens": object.get(_tier, "daily_tokens", 0),
}
