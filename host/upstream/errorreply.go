package upstream

import (
	"encoding/json"
	"strings"
)

// openAIErrorReply is an error reply in OpenAI's shape.
func openAIErrorReply(status int, typ, code, param, msg string) *Reply {
	e := map[string]any{"message": msg, "type": typ, "code": code, "param": nil}
	if param != "" {
		e["param"] = param
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return &Reply{Status: status, Body: b}
}

// errorTypeFor is OpenAI's error type for an HTTP status.
func errorTypeFor(status int) string {
	switch {
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_error"
	case status == 404:
		return "not_found_error"
	case status == 429:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// snakeCase turns a provider's error name (ThrottlingException,
// RESOURCE_EXHAUSTED) into an OpenAI-style code (throttling_exception,
// resource_exhausted); anything else becomes "upstream_error".
func snakeCase(name string) string {
	var b strings.Builder
	for i, c := range name {
		switch {
		case c >= 'A' && c <= 'Z':
			if i > 0 && !(name[i-1] >= 'A' && name[i-1] <= 'Z') && name[i-1] != '_' {
				b.WriteByte('_')
			}
			b.WriteRune(c + 'a' - 'A')
		case c >= 'a' && c <= 'z', c == '_':
			b.WriteRune(c)
		default:
			return "upstream_error"
		}
	}
	if b.Len() == 0 || b.Len() > 64 {
		return "upstream_error"
	}
	return b.String()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
