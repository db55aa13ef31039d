# Package sluice.authz is Sluice's default admission policy.
#
# The gateway evaluates data.sluice.authz.decision once per request with no
# findings, and a second time with the plugins' findings if they found
# anything. README.md describes the input document, the data and the decision
# object.
package sluice.authz

# decision is the only rule the gateway reads. It is one else chain, so that
# exactly one branch yields the whole object.
#
# The first two branches answer the common case, the first pass of an
# allowed request, from data.sluice.derived: the tier's allowed decision
# and model names, precomputed by the derived rule below whenever the
# gateway writes data. They yield a value straight from data, which the
# evaluator neither builds nor copies. When data.sluice.derived is absent
# (opa eval, opa test, another embedder) or does not apply, evaluation falls
# through to the rules that compute the same answer per request: the first
# denial that applies, in order of precedence, or else the allow at the end.
# Each of those branches is a full literal object rather than a merge of
# parts, because building the decision is a large share of the cost of an
# evaluation.
#
# data.sluice.derived is read whole into a variable and indexed from there:
# OPA caches every document it reads from the store, one entry per path
# segment, so a short read is the cheaper one.
decision := d if {
	input.findings == []
	derived := data.sluice.derived
	tier := derived.tiers[input.client.tier]
	tier.models[input.request.model]
	d := tier.allowed
} else := d if {
	input.findings == []
	derived := data.sluice.derived
	tier := derived.tiers[input.client.tier]
	some pattern in tier.model_patterns
	glob.match(pattern, null, input.request.model)
	d := tier.allowed
} else := {
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
	"plugins": _plugins(_tier),
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

# derived is what the allowed first pass needs to know of each tier. It
# depends on data only: Sluice's engine evaluates it once whenever data is
# written and stores the result at data.sluice.derived, in the same
# transaction, so it is never stale. It must not read data.sluice.derived.
derived := {"tiers": {name: _derive(tier) | some name, tier in data.sluice.tiers; is_object(tier)}}

# _derive gives a tier's allowed first-pass decision, its model patterns
# that are plain names (as an object, for a lookup instead of a glob.match
# per pattern; "" stands for requests that name no model), and the rest.
_derive(tier) := {
	"allowed": {
		"allowed": true,
		"http_status": 200,
		"code": "",
		"type": "",
		"message": "",
		"headers": {},
		"limits": {
			"rpm": object.get(tier, "rpm", 0),
			"daily_tokens": object.get(tier, "daily_tokens", 0),
		},
		"redact": [],
		"plugins": _plugins(tier),
	},
	"models": object.union({"": true}, {m: true | some m in tier.models; not _glob_syntax(m)}),
	"model_patterns": [m | some m in tier.models; _glob_syntax(m)],
}

# _glob_syntax holds for a pattern that glob.match reads as more than its
# own text. Without any of these characters a pattern matches only itself.
_glob_syntax(pattern) if regex.match(`[*?\[\]{}\\]`, pattern)

# _plugins lists the request-phase plugins the tier switches on, sorted.
_plugins(tier) := ["content_filter", "pii"] if {
	tier.content_filter == true
	tier.pii_detection == true
} else := ["content_filter"] if {
	tier.content_filter == true
} else := ["pii"] if {
	tier.pii_detection == true
} else := []
