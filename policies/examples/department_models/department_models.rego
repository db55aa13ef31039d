# Per-department model access: a department listed here may use only the
# models its patterns match, on top of what the client's tier allows.
# Departments not listed keep their tier's models.
package sluice.authz

# _department_models maps a department to glob.match patterns, with the tier
# models' syntax ("*" matches across "." and "/").
_department_models := {
	"research": ["gpt-4o-mini", "mock-*"],
	"interns": ["gpt-4o-mini"],
}

# Requests that name no model are left alone, as the default policy does.
# /v1/models asks once per model, so a department sees only its own models.
deny contains {
	"http_status": 403,
	"code": "model_not_allowed",
	"type": "permission_error",
	"message": sprintf("model %q is not allowed for department %q", [input.request.model, input.client.department]),
} if {
	patterns := _department_models[input.client.department]
	input.request.model != ""
	not _department_allows(patterns, input.request.model)
}

_department_allows(patterns, model) if {
	some pattern in patterns
	glob.match(pattern, null, model)
}
