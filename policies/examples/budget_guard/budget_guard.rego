# Budget guard: once a department has spent 80% of its monthly budget
# (data.sluice.departments[d].monthly_spend_usd), its clients may no longer
# call the expensive models, so that the rest of the budget lasts the month
# on cheaper ones. The budget itself is enforced by the gateway from
# department_limits; this rule only steers what is left of it.
#
# This policy reads input.usage, so with it loaded the gateway looks up the
# client's and the department's counters for every request (without it,
# input.usage is {} and costs nothing).
package sluice.authz

_budget_guard_share := 0.8

# _expensive_models are glob.match patterns, with the tier models' syntax.
_expensive_models := ["o1*", "gpt-4.1", "gpt-4.5*"]

deny contains {
	"http_status": 429,
	"code": "budget_nearly_exhausted",
	"type": "insufficient_quota",
	"message": sprintf("department %q has spent %v%% of its monthly budget; model %q is held back until next month, cheaper models remain available", [input.client.department, round((100 * spent) / budget), input.request.model]),
} if {
	_expensive_model
	budget := data.sluice.departments[input.client.department].monthly_spend_usd
	budget > 0
	spent := input.usage.department.spend_month_usd
	spent >= _budget_guard_share * budget
}

_expensive_model if {
	some pattern in _expensive_models
	glob.match(pattern, null, input.request.model)
}
