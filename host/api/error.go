// Package api holds Sluice's side of the OpenAI wire format: the error body every
// failure is reported with, and the parts of requests and replies the gateway reads.
package api

import (
	"encoding/json"
	"net/http"
)

// Error is a failure reported to the caller in OpenAI's shape:
//
//	{"error":{"message":…,"type":…,"param":null,"code":…}}
//
// The codes and types are a contract (see DESIGN.md); SDKs and dashboards match on them.
type Error struct {
	Status  int
	Type    string
	Code    string
	Message string
	Param   string // the offending request parameter, if any
}

// Error implements error so an *Error can travel up a call stack unchanged.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Body is the JSON body of e.
func (e *Error) Body() []byte {
	var body struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	body.Error.Message = e.Message
	body.Error.Type = e.Type
	body.Error.Code = e.Code
	if e.Param != "" {
		body.Error.Param = &e.Param
	}
	b, _ := json.Marshal(body) // strings only: cannot fail
	return b
}

// Error types used by OpenAI and by Sluice.
const (
	TypeInvalidRequest    = "invalid_request_error"
	TypeAuthentication    = "authentication_error"
	TypePermission        = "permission_error"
	TypeRateLimit         = "rate_limit_error"
	TypeInsufficientQuota = "insufficient_quota"
	TypeServer            = "server_error"
	TypeUnavailable       = "service_unavailable_error"
	TypeNotFound          = "not_found_error"
)

// ErrorTypes are the error types above: the ones an upstream's error may
// keep when Sluice answers with it.
var ErrorTypes = []string{TypeInvalidRequest, TypeAuthentication, TypePermission, TypeRateLimit, TypeInsufficientQuota,
	TypeServer, TypeUnavailable, TypeNotFound}

// TypeForStatus is the error type used when a policy names a status but no type.
func TypeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return TypeAuthentication
	case status == http.StatusForbidden:
		return TypePermission
	case status == http.StatusNotFound:
		return TypeNotFound
	case status == http.StatusTooManyRequests:
		return TypeRateLimit
	case status == http.StatusServiceUnavailable:
		return TypeUnavailable
	case status >= 500:
		return TypeServer
	default:
		return TypeInvalidRequest
	}
}

// InvalidRequest is a 400 for a request Sluice cannot read.
func InvalidRequest(code, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Code: code, Message: msg}
}

// InvalidAPIKey is the 401 for a missing, unknown or revoked key. The message is
// the same in every case so that it tells an attacker nothing.
func InvalidAPIKey() *Error {
	return &Error{Status: http.StatusUnauthorized, Type: TypeAuthentication, Code: "invalid_api_key",
		Message: "Incorrect or missing API key. Pass it as 'Authorization: Bearer <key>'."}
}

// KeyExpired is the 401 for a key past its expiry: distinct from
// InvalidAPIKey, since only the key's holder can get it, and it tells them
// to use the key that replaced it.
func KeyExpired() *Error {
	return &Error{Status: http.StatusUnauthorized, Type: TypeAuthentication, Code: "key_expired",
		Message: "This API key has expired. Use the key that replaced it, or ask for a new one."}
}

// RateLimited is the 429 for a requests- or tokens-per-minute limit.
func RateLimited(msg string) *Error {
	return &Error{Status: http.StatusTooManyRequests, Type: TypeRateLimit, Code: "rate_limit_exceeded", Message: msg}
}

// BudgetExceeded is the 429 for an exhausted token or money budget. It is distinct
// from a rate limit: waiting a few seconds does not help.
func BudgetExceeded(msg string) *Error {
	return &Error{Status: http.StatusTooManyRequests, Type: TypeInsufficientQuota, Code: "budget_exceeded", Message: msg}
}

// GuardrailUnavailable is the 503 when a fail-closed plugin could not scan.
func GuardrailUnavailable(msg string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: TypeUnavailable, Code: "guardrail_unavailable", Message: msg}
}

// PolicyError is the fail-closed answer when the policy could not decide.
func PolicyError(msg string) *Error {
	return &Error{Status: http.StatusInternalServerError, Type: TypeServer, Code: "policy_error", Message: msg}
}

// UpstreamError is the 502 for an upstream that failed or sent something unreadable.
func UpstreamError(msg string) *Error {
	return &Error{Status: http.StatusBadGateway, Type: TypeServer, Code: "upstream_error", Message: msg}
}

// UpstreamTimeout is the 504 for an upstream that did not answer in time.
func UpstreamTimeout(msg string) *Error {
	return &Error{Status: http.StatusGatewayTimeout, Type: TypeServer, Code: "upstream_timeout", Message: msg}
}

// NotFound is the 404 for a path Sluice does not serve.
func NotFound(msg string) *Error {
	return &Error{Status: http.StatusNotFound, Type: TypeInvalidRequest, Code: "not_found", Message: msg}
}

// Internal is the 500 for a fault inside Sluice. The message must not leak details.
func Internal(msg string) *Error {
	return &Error{Status: http.StatusInternalServerError, Type: TypeServer, Code: "internal_error", Message: msg}
}
