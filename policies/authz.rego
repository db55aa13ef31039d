# Package sluice.authz is Sluice's default admission policy.
#
# The gateway evaluates data.sluice.authz.decision once per request with no
# findings, and a second time with the plugins' findings if they found
# anything. README.md describes the input document, the data, the decision
# object and the extension points below.
package sluice.authz

# Extension points. Any file of package sluice.authz placed next to this one
# may add to these sets, and this file reads them, so that a rule of your own
# is a file of its own instead of an edit of this one (examples/ has some).
#
# The rules here only declare the sets, so that a policy without extensions
# compiles. Their condition is on an input field that never exists, which
# OPA's rule index rules out without evaluating a body: the declarations cost
# next to nothing on every request, where a body of false would be evaluated.

# deny: denials, as objects {"http_status", "code", "type", "message",
# "reason"} or as message strings. When several apply, decision shows the
# first of them in the order of _denial's [code, http_status, message,
# type, reason].
deny contains "" if input.never_set == true

# redact: finding types of the pii plugin to redact instead of block, in
# addition to the tier's redact list.
redact contains "" if input.never_set == true

# block: finding types of the pii plugin that block even where the tier or
# redact would redact them.
block contains "" if input.never_set == true

# cap: limits lowered for this request, as {"limit": "tpm", "value": 20000}.
# The lowest of the tier's value and every cap on the same limit applies.
# A cap on "max_tokens" lowers the reply limit the upstream receives.
cap contains {"limit": "", "value": 0} if input.never_set == true

# plugin: request-phase plugins to run in addition to the tier's.
plugin contains "" if input.never_set == true

# allow: models to allow beyond the tier's, as patterns like the tier's
# models (for example from data: a grant to one client).
allow contains "" if input.never_set == true

# decision is the only rule the gateway reads. It is one else chain, so that
# exactly one branch yields the whole object.
#
# The first two branches answer the common case, the first pass of an
# allowed request, from data.sluice.derived: the tier's allowed decision per
# department and its model names, precomputed by the derived rule below
# whenever the gateway writes data. They yield a value straight from data,
# which the evaluator neither builds nor copies. They stand aside when a file
# adds a denial, a cap or a plugin for the request, since the derived data
# knows nothing of those (redact and block rules matter only with findings,
# which these branches never see). Comparing a set with set() is the
# cheapest way to ask whether it is empty: about 8 allocations each. When
# data.sluice.derived is absent (opa eval, opa test, another embedder) or
# does not apply, evaluation falls through to the rules that compute the
# same answer per request: the first denial that applies, in order of
# precedence, or else the allow at the end. Each of those branches is a full
# literal object rather than a merge of parts, because building the decision
# is a large share of the cost of an evaluation.
#
# data.sluice.derived is read whole into a variable and indexed from there:
# OPA caches every document it reads from the store, one entry per path
# segment, so a short read is the cheaper one.
decision := d if {
	input.findings == []
	derived := data.sluice.derived
	tier := derived.tiers[input.client.tier]
	tier.models[input.request.model]
	deny == set()
	cap == set()
	plugin == set()
	d := object.get(tier.departments, input.client.department, tier.allowed)
} else := d if {
	input.findings == []
	derived := data.sluice.derived
	tier := derived.tiers[input.client.tier]
	some pattern in tier.model_patterns
	glob.match(pattern, null, input.request.model)
	deny == set()
	cap == set()
	plugin == set()
	d := object.get(tier.departments, input.client.department, tier.allowed)
} else := {
	"allowed": false,
	"http_status": 403,
	"code": "tier_unknown",
	"type": "permission_error",
	"message": sprintf("client tier %q is not configured", [_tier_name]),
	"reason": "",
	"headers": {},
	"limits": _unlimited,
	"department_limits": _unlimited,
	"redact": [],
	"plugins": [],
	"response_plugins": [],
	"restore": false,
} if {
	not _tier_known
} else := {
	"allowed": false,
	"http_status": 403,
	"code": "model_not_allowed",
	"type": "permission_error",
	"message": sprintf("model %q is not allowed for this client", [_model]),
	"reason": "",
	"headers": {},
	"limits": _limits,
	"department_limits": _department_limits,
	"redact": [],
	"plugins": [],
	"response_plugins": [],
	"restore": false,
} if {
	not _model_allowed
} else := {
	"allowed": false,
	"http_status": 500,
	"code": "policy_error",
	"type": "server_error",
	"message": "the policy lowers a limit it cannot apply",
	"reason": "",
	"headers": {},
	"limits": _tier_limits,
	"department_limits": _department_limits,
	"redact": [],
	"plugins": [],
	"response_plugins": [],
	"restore": false,
} if {
	# A cap the policy cannot apply refuses the request: ignoring it would
	# leave a limit higher than its author meant.
	some c in cap
	not _valid_cap(c)
} else := {
	"allowed": false,
	"http_status": status,
	"code": code,
	"type": kind,
	"message": message,
	"reason": reason,
	"headers": {},
	"limits": _limits,
	"department_limits": _department_limits,
	"redact": [],
	"plugins": [],
	"response_plugins": [],
	"restore": false,
} if {
	[code, status, message, kind, reason] := _first_denial
} else := {
	"allowed": false,
	"http_status": 400,
	"code": "content_policy_violation",
	"type": "invalid_request_error",
	"message": sprintf("request blocked by content policy (%s)", [concat(", ", sort(categories))]),
	"reason": "",
	"headers": {},
	"limits": _limits,
	"department_limits": _department_limits,
	"redact": [],
	"plugins": [],
	"response_plugins": [],
	"restore": false,
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
	"reason": "",
	"headers": {},
	"limits": _limits,
	"department_limits": _department_limits,
	"redact": [],
	"plugins": [],
	"response_plugins": [],
	"restore": false,
} if {
	# Personal data blocks unless it is redacted, by the tier or a redact
	# rule, and no block rule claims it.
	blocked := {f.type | some f in input.findings; f.plugin == "pii"; _blocks(f.type)}
	count(blocked) > 0
} else := {
	"allowed": true,
	"http_status": 200,
	"code": "",
	"type": "",
	"message": "",
	"headers": {},
	"limits": _limits,
	"department_limits": _department_limits,
	# Reaching here, every personal-data type found is one to redact.
	"redact": sort({f.type | some f in input.findings; f.plugin == "pii"}),
	"plugins": sort(_tier_plugins(_tier) | plugin),
	"response_plugins": object.get(_tier, "response_plugins", []),
	"restore": object.get(_tier, "restore", false),
	"max_tokens": _max_tokens,
	"regions": object.get(_tier, "regions", []),
	"fallbacks": object.get(_tier, "fallbacks", null),
	"cache": _cache(_tier),
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

# A model an allow rule grants is allowed too. The derived first-pass
# answers need not stand aside for it: they answer only models the tier
# allows.
_model_allowed if {
	some pattern in allow
	glob.match(pattern, null, _model)
}

# _limit_names are the limits of the decision, in both limits and
# department_limits.
_limit_names := {"rpm", "tpm", "daily_tokens", "monthly_tokens", "monthly_spend_usd"}

_unlimited := {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0}

# _limits_of reads the limits of a tier or department; an absent limit is 0,
# unlimited. A value that is not a number, or an entry that is not an
# object, is passed through so that the gateway rejects the decision and
# fails closed, rather than reading a typo as "unlimited".
_limits_of(doc) := {
	"rpm": object.get(doc, "rpm", 0),
	"tpm": object.get(doc, "tpm", 0),
	"daily_tokens": object.get(doc, "daily_tokens", 0),
	"monthly_tokens": object.get(doc, "monthly_tokens", 0),
	"monthly_spend_usd": object.get(doc, "monthly_spend_usd", 0),
} if {
	is_object(doc)
} else := doc

_tier_limits := _limits_of(_tier)

# _limits are the tier's limits, lowered by the caps that apply.
_limits := _tier_limits if {
	cap == set()
} else := {name: _lowered(value, object.get(_caps, name, set())) | some name, value in _tier_limits}

# _caps maps a limit's name to the values its caps give it.
_caps[name] contains c.value if {
	some c in cap
	name := c.limit
}

# _lowered gives the lowest of a limit and its caps, where the limit's 0 is
# unlimited rather than lowest.
_lowered(value, caps) := value if {
	count(caps) == 0
} else := min(caps) if {
	value == 0
} else := min(caps | {value}) if {
	is_number(value)
} else := value

# _valid_cap holds for a cap on a known limit, or max_tokens, to a positive
# number: a cap of 0 would read as unlimited.
_valid_cap(c) if {
	c.limit in (_limit_names | {"max_tokens"})
	is_number(c.value)
	c.value > 0
}

# _max_tokens is the lowest max_tokens cap, 0 (no cap) when there is none:
# the gateway lowers the request's max_tokens to it, never raises it.
default _max_tokens := 0

_max_tokens := min(_caps.max_tokens)

# _department_limits are the limits shared by the client's department, from
# data.sluice.departments; none when the department has no entry.
default _department_limits := {"rpm": 0, "tpm": 0, "daily_tokens": 0, "monthly_tokens": 0, "monthly_spend_usd": 0}

_department_limits := _limits_of(data.sluice.departments[input.client.department])

# _first_denial is the denial decision shows when deny has several: the first
# in sort order, so that the choice does not depend on evaluation order.
_first_denial := sort([_denial(d) | some d in deny])[0]

# _denial normalizes a deny element to [code, http_status, message, type,
# reason]. A field left out takes the value of a generic denial, so that a
# denial written in haste still denies; the reason defaults to "".
_denial(d) := [
	object.get(d, "code", "policy_denied"),
	object.get(d, "http_status", 403),
	object.get(d, "message", "request denied by policy"),
	object.get(d, "type", "permission_error"),
	object.get(d, "reason", ""),
] if {
	is_object(d)
} else := ["policy_denied", 403, d, "permission_error", ""] if {
	is_string(d)
} else := ["policy_denied", 403, "request denied by policy", "permission_error", ""]

# _blocks holds for a pii finding type that must block the request.
_blocks(t) if t in block

_blocks(t) if {
	not t in _tier.redact
	not t in redact
}

# derived is what the allowed first pass needs to know of each tier. It
# depends on data only: Sluice's engine evaluates it once whenever data is
# written and stores the result at data.sluice.derived, in the same
# transaction, so it is never stale. It must not read input (the extension
# sets read input) or data.sluice.derived.
derived := {"tiers": {name: _derive(tier) | some name, tier in data.sluice.tiers; is_object(tier)}}

# _derive gives a tier's allowed first-pass decision for clients of a
# department without an entry, the same per department that has one, its
# model patterns that are plain names (as an object, for a lookup instead of
# a glob.match per pattern; "" stands for requests that name no model), and
# the rest. The decisions per department make the department's limits a
# lookup too, at the price of tiers times departments objects in the store.
_derive(tier) := {
	"allowed": _allowed(tier, _unlimited),
	"departments": {name: _allowed(tier, _limits_of(dept)) | some name, dept in data.sluice.departments},
	"models": object.union({"": true}, {m: true | some m in tier.models; not _glob_syntax(m)}),
	"model_patterns": [m | some m in tier.models; _glob_syntax(m)],
}

# _allowed is the allowed first-pass decision of a tier with the given
# department limits, the same object as the last branch of decision builds.
_allowed(tier, department_limits) := {
	"allowed": true,
	"http_status": 200,
	"code": "",
	"type": "",
	"message": "",
	"headers": {},
	"limits": _limits_of(tier),
	"department_limits": department_limits,
	"redact": [],
	"plugins": sort(_tier_plugins(tier)),
	"response_plugins": object.get(tier, "response_plugins", []),
	"restore": object.get(tier, "restore", false),
	"max_tokens": 0,
	"regions": object.get(tier, "regions", []),
	"fallbacks": object.get(tier, "fallbacks", null),
	"cache": _cache(tier),
}

# _cache is the reply cache a tier opts into: its cache_ttl (a duration such
# as "10m"; "" is off) and its cache_scope (client, department or shared;
# "" is client).
_cache(tier) := {
	"ttl": object.get(tier, "cache_ttl", ""),
	"scope": object.get(tier, "cache_scope", ""),
}

# _glob_syntax holds for a pattern that glob.match reads as more than its
# own text. Without any of these characters a pattern matches only itself.
_glob_syntax(pattern) if regex.match(`[*?\[\]{}\\]`, pattern)

# _tier_plugins is the set of request-phase plugins the tier switches on.
_tier_plugins(tier) := {"content_filter", "pii"} if {
	tier.content_filter == true
	tier.pii_detection == true
} else := {"content_filter"} if {
	tier.content_filter == true
} else := {"pii"} if {
	tier.pii_detection == true
} else := set()
