package policy

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Decision is the policy's answer for one request.
type Decision struct {
	Allowed bool `json:"allowed"`
	// HTTPStatus is 200 when allowed, otherwise the status to answer with
	// (always 4xx or 5xx).
	HTTPStatus int `json:"http_status"`
	// Code, Type and Message fill the OpenAI-shaped error body of a denial;
	// all three are "" when allowed.
	Code    string `json:"code"`
	Type    string `json:"type"`
	Message string `json:"message"`
	// Headers are added to the response.
	Headers map[string]string `json:"headers"`
	Limits  Limits            `json:"limits"`
	// Redact lists the finding types to mask before forwarding, sorted.
	Redact []string `json:"redact"`
	// Plugins lists the request-phase plugins to run, sorted.
	Plugins []string `json:"plugins"`
}

// Limits are the rate and budget limits the policy assigns; 0 means
// unlimited.
type Limits struct {
	RPM         int64 `json:"rpm"`
	DailyTokens int64 `json:"daily_tokens"`
}

var (
	keyAllowed     = ast.StringTerm("allowed")
	keyHTTPStatus  = ast.StringTerm("http_status")
	keyMessage     = ast.StringTerm("message")
	keyCode        = ast.StringTerm("code")
	keyHeaders     = ast.StringTerm("headers")
	keyLimits      = ast.StringTerm("limits")
	keyRedact      = ast.StringTerm("redact")
	keyPlugins     = ast.StringTerm("plugins")
	keyRPM         = ast.StringTerm("rpm")
	keyDailyTokens = ast.StringTerm("daily_tokens")
)

// decodeDecision reads the decision object field by field. A missing or
// mistyped field is an error rather than a zero value: a zero Decision would
// read as "denied with status 0", or worse, a policy bug could read as
// "unlimited".
func decodeDecision(v ast.Value) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, want object", ast.ValueName(v))
	}
	var (
		d   Decision
		err error
	)
	if d.Allowed, err = boolField(obj, keyAllowed); err != nil {
		return Decision{}, err
	}
	status, err := intField(obj, keyHTTPStatus)
	if err != nil {
		return Decision{}, err
	}
	d.HTTPStatus = int(status)
	if !d.Allowed && (d.HTTPStatus < 400 || d.HTTPStatus > 599) {
		return Decision{}, fmt.Errorf("denial with http_status %d, want 4xx or 5xx", d.HTTPStatus)
	}
	if d.Code, err = stringField(obj, keyCode); err != nil {
		return Decision{}, err
	}
	if d.Type, err = stringField(obj, keyType); err != nil {
		return Decision{}, err
	}
	if d.Message, err = stringField(obj, keyMessage); err != nil {
		return Decision{}, err
	}
	if d.Headers, err = headersField(obj); err != nil {
		return Decision{}, err
	}
	if d.Limits, err = limitsField(obj); err != nil {
		return Decision{}, err
	}
	if d.Redact, err = stringsField(obj, keyRedact); err != nil {
		return Decision{}, err
	}
	if d.Plugins, err = stringsField(obj, keyPlugins); err != nil {
		return Decision{}, err
	}
	return d, nil
}

func field(obj ast.Object, key *ast.Term) (ast.Value, error) {
	t := obj.Get(key)
	if t == nil {
		return nil, fmt.Errorf("field %s is missing", key)
	}
	return t.Value, nil
}

func boolField(obj ast.Object, key *ast.Term) (bool, error) {
	v, err := field(obj, key)
	if err != nil {
		return false, err
	}
	b, ok := v.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("field %s is %s, want boolean", key, ast.ValueName(v))
	}
	return bool(b), nil
}

func stringField(obj ast.Object, key *ast.Term) (string, error) {
	v, err := field(obj, key)
	if err != nil {
		return "", err
	}
	s, ok := v.(ast.String)
	if !ok {
		return "", fmt.Errorf("field %s is %s, want string", key, ast.ValueName(v))
	}
	return string(s), nil
}

// intField reads a non-negative integer.
func intField(obj ast.Object, key *ast.Term) (int64, error) {
	v, err := field(obj, key)
	if err != nil {
		return 0, err
	}
	n, ok := v.(ast.Number)
	if !ok {
		return 0, fmt.Errorf("field %s is %s, want number", key, ast.ValueName(v))
	}
	i, ok := n.Int64()
	if !ok || i < 0 {
		return 0, fmt.Errorf("field %s is %s, want a non-negative integer", key, n)
	}
	return i, nil
}

// stringsField reads an array of strings; an empty array gives nil.
func stringsField(obj ast.Object, key *ast.Term) ([]string, error) {
	v, err := field(obj, key)
	if err != nil {
		return nil, err
	}
	arr, ok := v.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("field %s is %s, want array", key, ast.ValueName(v))
	}
	if arr.Len() == 0 {
		return nil, nil
	}
	out := make([]string, arr.Len())
	for i := range arr.Len() {
		s, ok := arr.Elem(i).Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("field %s[%d] is %s, want string", key, i, ast.ValueName(arr.Elem(i).Value))
		}
		out[i] = string(s)
	}
	return out, nil
}

// headersField reads an object of string values; an empty object gives nil.
func headersField(obj ast.Object) (map[string]string, error) {
	v, err := field(obj, keyHeaders)
	if err != nil {
		return nil, err
	}
	h, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("field %s is %s, want object", keyHeaders, ast.ValueName(v))
	}
	if h.Len() == 0 {
		return nil, nil
	}
	out := make(map[string]string, h.Len())
	err = h.Iter(func(k, v *ast.Term) error {
		ks, kok := k.Value.(ast.String)
		vs, vok := v.Value.(ast.String)
		if !kok || !vok {
			return fmt.Errorf("field %s has entry %s: %s, want string: string", keyHeaders, k, v)
		}
		out[string(ks)] = string(vs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func limitsField(obj ast.Object) (Limits, error) {
	v, err := field(obj, keyLimits)
	if err != nil {
		return Limits{}, err
	}
	l, ok := v.(ast.Object)
	if !ok {
		return Limits{}, fmt.Errorf("field %s is %s, want object", keyLimits, ast.ValueName(v))
	}
	var out Limits
	if out.RPM, err = intField(l, keyRPM); err != nil {
		return Limits{}, fmt.Errorf("limits: %w", err)
	}
	if out.DailyTokens, err = intField(l, keyDailyTokens); err != nil {
		return Limits{}, fmt.Errorf("limits: %w", err)
	}
	return out, nil
}
