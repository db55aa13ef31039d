# Business hours: clients of the support department may use models on
# weekdays from 08:00 to 18:00 only.
#
# input.time is in the gateway's policy.time_zone (UTC unless configured),
# so set it to the zone the department works in, e.g. Europe/Berlin. The
# rule holds on both passes; the first already refuses the request before
# any plugin runs.
package sluice.authz

# _business_hours_departments are the departments the hours apply to.
_business_hours_departments := {"support"}

_business_days := {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}

# The message names no input field: a denial built from a field the input
# lacks would be undefined, and an undefined denial does not deny.
deny contains {
	"http_status": 403,
	"code": "outside_business_hours",
	"type": "permission_error",
	"message": "this department may use models on weekdays from 08:00 to 18:00 only",
} if {
	input.client.department in _business_hours_departments
	not _within_business_hours
}

# _within_business_hours fails for an input without the time, so that a
# request the policy cannot place in time is refused rather than let through.
_within_business_hours if {
	input.time.weekday in _business_days
	input.time.hour >= 8
	input.time.hour < 18
}
