package upstream

// How Bedrock and the Gemini API name their errors: the adapters read
// them, and the mocks answer with them.

// bedrockErrorStatus is the HTTP status Bedrock answers an error of this
// type with.
func bedrockErrorStatus(errType string) int {
	switch errType {
	case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "MissingAuthenticationTokenException", "IncompleteSignatureException":
		return 403
	case "ResourceNotFoundException", "UnknownOperationException":
		return 404
	case "ModelTimeoutException":
		return 408
	case "ThrottlingException", "ModelNotReadyException":
		return 429
	case "InternalServerException", "ModelStreamErrorException":
		return 500
	case "ServiceUnavailableException":
		return 503
	}
	return 400
}

// bedrockErrorType is the error Bedrock names for an HTTP status.
func bedrockErrorType(status int) string {
	switch status {
	case 403:
		return "AccessDeniedException"
	case 404:
		return "ResourceNotFoundException"
	case 408:
		return "ModelTimeoutException"
	case 429:
		return "ThrottlingException"
	case 503:
		return "ServiceUnavailableException"
	}
	if status >= 500 {
		return "InternalServerException"
	}
	return "ValidationException"
}

type geminiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"` // INVALID_ARGUMENT, RESOURCE_EXHAUSTED…
	} `json:"error"`
}

// geminiStatus is the Google RPC status name of an HTTP status.
func geminiStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}
