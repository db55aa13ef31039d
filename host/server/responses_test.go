package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/sluicehq/sluice/host/config"
)

// responsesFields are the places of a Responses request where a value can
// ride along to the model other than the input string: every one must be
// scanned. body has %s where the value goes.
var responsesFields = []requestField{
	{"instructions", `{"model":"gpt-4o-mini","instructions":"Reply to %s","input":"hi"}`},
	{"input_text part", `{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_text","text":"%s"}]}]}`},
	{"function_call_output", `{"model":"gpt-4o-mini","input":[{"role":"user","content":"look it up"},
		{"type":"function_call","call_id":"call_1","name":"lookup","arguments":"{}"},
		{"type":"function_call_output","call_id":"call_1","output":"found %s"}]}`},
	{"function_call_output parts", `{"model":"gpt-4o-mini","input":[{"type":"function_call","call_id":"call_1","name":"lookup","arguments":"{}"},
		{"type":"function_call_output","call_id":"call_1","output":[{"type":"input_text","text":"found %s"}]}]}`},
	{"function_call arguments", `{"model":"gpt-4o-mini","input":[{"role":"user","content":"go"},
		{"type":"function_call","call_id":"call_1","name":"lookup","arguments":"{\"q\":\"%s\"}"},
		{"type":"function_call_output","call_id":"call_1","output":"ok"}]}`},
	{"tool description", `{"model":"gpt-4o-mini","input":"go","tools":[{"type":"function","name":"f","description":"mail %s","parameters":{"type":"object"}}]}`},
	{"tool parameter enum", `{"model":"gpt-4o-mini","input":"go","tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"x":{"type":"string","enum":["%s"]}}}}]}`},
	{"text.format schema", `{"model":"gpt-4o-mini","input":"go","text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object","description":"%s"}}}}`},
	{"metadata value", `{"model":"gpt-4o-mini","input":"go","metadata":{"who":"%s"}}`},
	{"metadata key", `{"model":"gpt-4o-mini","input":"go","metadata":{"%s":"x"}}`},
	{"user", `{"model":"gpt-4o-mini","input":"go","user":"%s"}`},
	{"image url", `{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_text","text":"see"},{"type":"input_image","image_url":"https://img.example.net/a.png?who=%s"}]}]}`},
	{"assistant output_text", `{"model":"gpt-4o-mini","input":[{"role":"assistant","content":[{"type":"output_text","text":"%s"}]},{"role":"user","content":"go"}]}`},
	{"unknown top-level member", `{"model":"gpt-4o-mini","input":"go","memo":{"note":"%s"}}`},
	{"unknown item member", `{"model":"gpt-4o-mini","input":[{"role":"user","content":"go","context":"%s"}]}`},
	{"key in another case", `{"model":"gpt-4o-mini","input":[{"role":"user","content":"go","Content":"%s"}]}`},
}

func sendResponses(c openai.Client, body string) (*responses.Response, error) {
	return c.Responses.New(context.Background(), responses.ResponseNewParams{}, option.WithRequestBody("application/json", []byte(body)))
}

// The attacker's test: a value hidden anywhere in a Responses request is
// found, the request is refused, and nothing of it reaches the upstream.
func TestResponsesEveryRequestFieldIsScanned(t *testing.T) {
	h, rec := startBehindRecorder(t, config.Tier{Models: []string{"*"}, PIIDetection: true, ContentFilter: true})
	c := h.client(h.key)
	for _, f := range responsesFields {
		for _, v := range []string{leakSSN, leakEmail, leakKey} {
			t.Run(f.name+"/"+v, func(t *testing.T) {
				_, err := sendResponses(c, fmt.Sprintf(f.body, v))
				e := apiError(t, err, 400, "pii_detected")
				if strings.Contains(e.Message, v) {
					t.Fatalf("the error names the value: %s", e.Message)
				}
			})
		}
	}
	if seen := rec.seen(); strings.Contains(seen, leakSSN) || strings.Contains(seen, leakEmail) || strings.Contains(seen, leakKey) {
		t.Fatalf("a value reached the upstream: %s", seen)
	}
}

// Where the policy redacts, the value is replaced where it was, and the
// upstream gets a chat completion with the placeholder instead.
func TestResponsesFieldsAreRedacted(t *testing.T) {
	h, rec := startBehindRecorder(t, config.Tier{Models: []string{"*"}, PIIDetection: true, Redact: []string{"EMAIL"}})
	c := h.client(h.key)
	for _, f := range responsesFields {
		if strings.Contains(f.name, "unknown") || strings.Contains(f.name, "metadata") || f.name == "key in another case" {
			continue // scanned, and not sent: nothing to see upstream
		}
		t.Run(f.name, func(t *testing.T) {
			before := len(rec.bodies)
			if _, err := sendResponses(c, fmt.Sprintf(f.body, leakEmail)); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			sent := rec.bodies[before:]
			rec.mu.Unlock()
			if len(sent) != 1 || strings.Contains(sent[0], leakEmail) || !strings.Contains(sent[0], "[EMAIL_1]") {
				t.Fatalf("forwarded %q", sent)
			}
			var chat struct{ Messages []json.RawMessage }
			if err := json.Unmarshal([]byte(sent[0]), &chat); err != nil || len(chat.Messages) == 0 {
				t.Fatalf("the upstream got no chat completion: %s", sent[0])
			}
		})
	}
}

// ledgerRow is the ledger's row of one request, read from the SQLite file.
type ledgerRow struct {
	Endpoint                  string
	Stream                    bool
	Prompt, Completion, Total int64
	CostNanos                 int64
	Status                    int
	Code, UsageSource         string
}

func (h *harness) ledgerRow(requestID string) ledgerRow {
	h.t.Helper()
	if err := h.srv.Ledger().Flush(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dataDir, "sluice.db")+"?mode=ro")
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	var r ledgerRow
	err = db.QueryRow(`SELECT endpoint, stream, prompt_tokens, completion_tokens, total_tokens, cost_nanos, status, code, usage_source
		FROM usage_events WHERE request_id = ?`, requestID).
		Scan(&r.Endpoint, &r.Stream, &r.Prompt, &r.Completion, &r.Total, &r.CostNanos, &r.Status, &r.Code, &r.UsageSource)
	if err != nil {
		h.t.Fatalf("ledger row of %s: %v", requestID, err)
	}
	return r
}

// gpt-4o-mini's price: $0.15 and $0.60 a million tokens, in nano-dollars a token.
func miniCost(prompt, completion int64) int64 { return prompt*150 + completion*600 }

func TestResponsesAPI(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	var hr *http.Response
	resp, err := c.Responses.New(context.Background(), responses.ResponseNewParams{
		Model:           "gpt-4o-mini",
		Instructions:    openai.String("You are terse."),
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("What is a sluice?")},
		MaxOutputTokens: openai.Int(200),
	}, option.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.OutputText(); got != "Mock reply. You said: What is a sluice?" {
		t.Fatalf("output %q", got)
	}
	if !strings.HasPrefix(resp.ID, "resp_") || resp.Status != responses.ResponseStatusCompleted || resp.Model != "gpt-4o-mini" {
		t.Fatalf("response %s %s %s", resp.ID, resp.Status, resp.Model)
	}
	u := resp.Usage
	if u.InputTokens == 0 || u.OutputTokens == 0 || u.TotalTokens != u.InputTokens+u.OutputTokens {
		t.Fatalf("usage %+v", u)
	}
	row := h.ledgerRow(hr.Header.Get("x-request-id"))
	want := ledgerRow{Endpoint: "/v1/responses", Prompt: u.InputTokens, Completion: u.OutputTokens, Total: u.TotalTokens,
		CostNanos: miniCost(u.InputTokens, u.OutputTokens), Status: 200, UsageSource: "upstream"}
	if row != want {
		t.Fatalf("ledger %+v, want %+v", row, want)
	}
}

func TestResponsesAPIStreamed(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	var hr *http.Response
	s := c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage("Stream me a sluice", responses.EasyInputMessageRoleUser)}},
	}, option.WithResponseInto(&hr))
	var types []string
	var text strings.Builder
	var done *responses.Response
	for s.Next() {
		ev := s.Current()
		types = append(types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			r := ev.AsResponseCompleted().Response
			done = &r
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	want := "Mock reply. You said: Stream me a sluice"
	if text.String() != want || done == nil || done.OutputText() != want {
		t.Fatalf("streamed %q, completed %v; events %v", text.String(), done, types)
	}
	if types[0] != "response.created" || types[1] != "response.in_progress" || types[len(types)-1] != "response.completed" {
		t.Fatalf("events %v", types)
	}
	u := done.Usage
	if u.InputTokens == 0 || u.OutputTokens == 0 || u.TotalTokens != u.InputTokens+u.OutputTokens {
		t.Fatalf("usage %+v", u)
	}
	row := h.ledgerRow(hr.Header.Get("x-request-id"))
	wantRow := ledgerRow{Endpoint: "/v1/responses", Stream: true, Prompt: u.InputTokens, Completion: u.OutputTokens, Total: u.TotalTokens,
		CostNanos: miniCost(u.InputTokens, u.OutputTokens), Status: 200, UsageSource: "upstream"}
	if row != wantRow {
		t.Fatalf("ledger %+v, want %+v", row, wantRow)
	}
}

func weatherTool() responses.ToolUnionParam {
	return responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{
		Name:        "get_weather",
		Description: openai.String("The weather in a city now"),
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}},
			"required": []string{"city"}},
	}}
}

// A function tool round trip: the model calls the tool, the application
// sends the result back as a function_call_output, the model answers.
func TestResponsesAPITools(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	ctx := context.Background()
	ask := responses.ResponseInputItemParamOfMessage("Use get_weather for Paris", responses.EasyInputMessageRoleUser)
	resp, err := c.Responses.New(ctx, responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{ask}},
		Tools: []responses.ToolUnionParam{weatherTool()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Output) != 1 || resp.Output[0].Type != "function_call" {
		t.Fatalf("output %+v", resp.Output)
	}
	call := resp.Output[0].AsFunctionCall()
	var args map[string]any
	if call.Name != "get_weather" || call.CallID == "" || json.Unmarshal([]byte(call.Arguments), &args) != nil {
		t.Fatalf("call %+v", call)
	}
	result := responses.ResponseInputItemParamOfFunctionCallOutput("sunny, 21 C")
	result.OfFunctionCallOutput.CallID = openai.String(call.CallID)
	resp, err = c.Responses.New(ctx, responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			ask, responses.ResponseInputItemParamOfFunctionCall(call.Arguments, call.CallID, call.Name), result}},
		Tools: []responses.ToolUnionParam{weatherTool()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.OutputText(); got != "Mock reply. Tool result: sunny, 21 C" {
		t.Fatalf("answer %q", got)
	}

	// Streamed, the call comes as an item with its arguments in deltas.
	s := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{ask}},
		Tools: []responses.ToolUnionParam{weatherTool()},
	})
	var streamedArgs, doneArgs string
	var added, completed bool
	for s.Next() {
		ev := s.Current()
		switch ev.Type {
		case "response.output_item.added":
			added = added || ev.Item.Type == "function_call" && ev.Item.Name == "get_weather"
		case "response.function_call_arguments.delta":
			streamedArgs += ev.Delta
		case "response.function_call_arguments.done":
			doneArgs = ev.Arguments
		case "response.completed":
			r := ev.AsResponseCompleted().Response
			completed = len(r.Output) == 1 && r.Output[0].AsFunctionCall().Arguments == doneArgs && r.Usage.TotalTokens > 0
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if !added || !completed || streamedArgs != doneArgs || json.Unmarshal([]byte(doneArgs), &args) != nil {
		t.Fatalf("streamed call: added %v completed %v, deltas %q, done %q", added, completed, streamedArgs, doneArgs)
	}
}

// What the model writes passes the reply guardrails before it becomes a
// Response: whole, the reply is refused; streamed, the stream ends with an
// error event and the value is in no event.
func TestResponsesRepliesAreScanned(t *testing.T) {
	tier := config.Tier{Models: []string{"*"}, ResponsePlugins: []string{"pii"}}
	h := startScripted(t, tier, &scriptedUpstream{
		reply: completion(`{"role":"assistant","content":"the key is ` + leakKey + `"}`),
		events: []string{
			chunk(`{"role":"assistant","content":"the key "}`, ""),
			chunk(`{"content":"is `+leakKey[:8]+`"}`, ""),
			chunk(`{"content":"`+leakKey[8:]+`"}`, "stop"),
		},
	})
	c := h.client(h.key)
	params := responses.ResponseNewParams{Model: "scripted", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}}
	_, err := c.Responses.New(context.Background(), params)
	apiError(t, err, 400, "pii_detected")

	var hr *http.Response
	s := c.Responses.NewStreaming(context.Background(), params, option.WithResponseInto(&hr))
	var all strings.Builder
	var errCode string
	for s.Next() {
		ev := s.Current()
		all.WriteString(ev.RawJSON())
		if ev.Type == "error" {
			errCode = ev.Code
		}
		if ev.Type == "response.completed" {
			t.Fatal("a blocked stream completed")
		}
	}
	if strings.Contains(all.String(), leakKey[:8]) || strings.Contains(all.String(), leakKey[8:]) {
		t.Fatalf("part of the value reached the caller: %s", all.String())
	}
	if errCode != "pii_detected" {
		t.Fatalf("stream ended with %q (%v), want an error event pii_detected", errCode, s.Err())
	}
}

func TestResponsesAPIBudget(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"*"}, Budget: config.Budget{DailyTokens: 150}})
	c := h.client(h.key)
	params := responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		MaxOutputTokens: openai.Int(100)}
	admitted := 0
	var last error
	for range 5 {
		if _, last = c.Responses.New(context.Background(), params); last == nil {
			admitted++
		}
	}
	e := apiError(t, last, 429, "budget_exceeded")
	if e.Type != "insufficient_quota" || e.Response.Header.Get("x-sluice-budget-limit-tokens-day") != "150" ||
		e.Response.Header.Get("x-ratelimit-limit-tokens") != "" || e.Response.Header.Get("x-should-retry") != "false" || admitted == 0 || admitted == 5 {
		t.Fatalf("budget 429: %s after %d admitted, headers %v", e.Type, admitted, e.Response.Header)
	}
}

// What Sluice does not serve is refused with the parameter named, in
// OpenAI's error shape, before anything reaches the upstream.
func TestResponsesAPIRefusals(t *testing.T) {
	h, rec := startBehindRecorder(t, open)
	c := h.client(h.key)
	cases := []struct{ body, param string }{
		{`{"model":"gpt-4o-mini","input":"hi","previous_response_id":"resp_123"}`, "previous_response_id"},
		{`{"model":"gpt-4o-mini","previous_response_id":"resp_123"}`, "previous_response_id"},
		{`{"model":"gpt-4o-mini","prompt":{"id":"pmpt_1"}}`, "prompt"},
		{`{"model":"gpt-4o-mini","input":"hi","background":true}`, "background"},
		{`{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{`{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"file_search","vector_store_ids":["vs_1"]}]}`, "tools[0].type"},
		{`{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"computer_use_preview","display_width":1024,"display_height":768,"environment":"browser"}]}`, "tools[0].type"},
		{`{"model":"gpt-4o-mini","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0].type"},
	}
	for _, tc := range cases {
		t.Run(tc.param, func(t *testing.T) {
			_, err := sendResponses(c, tc.body)
			e := apiError(t, err, 400, "unsupported_parameter")
			if e.Param != tc.param || e.Type != "invalid_request_error" {
				t.Fatalf("param %q type %q: %s", e.Param, e.Type, e.Message)
			}
		})
	}
	_, err := sendResponses(c, `{"model":"gpt-4o-mini","input":"hi","store":true}`)
	if err != nil {
		t.Fatalf("store true (the API's default) is served, not stored: %v", err)
	}
	if n := strings.Count(rec.seen(), `"messages"`); n != 1 {
		t.Fatalf("%d requests reached the upstream, want only the one with store", n)
	}

	// Stored responses: there are none, and the SDK is told so.
	_, err = c.Responses.Get(context.Background(), "resp_123", responses.ResponseGetParams{})
	e := apiError(t, err, 404, "not_found")
	if !strings.Contains(e.Message, "does not store responses") {
		t.Fatalf("message %q", e.Message)
	}
	err = c.Responses.Delete(context.Background(), "resp_123")
	apiError(t, err, 404, "not_found")
	if resp, _ := h.raw("GET", "/v1/responses/resp_123", "", ""); resp.StatusCode != 401 {
		t.Fatalf("without a key: %d, want 401", resp.StatusCode)
	}
}

// The policy sees a Responses request under its own path, with the
// findings of every part of it: a dry run shows both.
func TestResponsesPolicyInputNamesTheAPI(t *testing.T) {
	h := newHarness(t, open)
	req := `{"model":"gpt-4o-mini","instructions":"Mail ` + leakEmail + `","input":[{"role":"user","content":"hi"},
		{"type":"function_call_output","call_id":"c1","output":"SSN ` + leakSSN + `"}]}`
	status, answer := h.admin("POST", "/admin/decide", `{"client_id":"app","path":"/v1/responses","request":`+req+`}`)
	if status != http.StatusOK {
		t.Fatalf("decide: %d %s", status, answer)
	}
	var ex struct {
		Input    map[string]any
		Decision map[string]any
	}
	if err := json.Unmarshal(answer, &ex); err != nil {
		t.Fatal(err)
	}
	if got := jsonAt(ex.Input, "request", "path"); got != "/v1/responses" {
		t.Fatalf("request.path %v", got)
	}
	if ex.Decision["allowed"] != false || ex.Decision["code"] != "pii_detected" {
		t.Fatalf("decision %v", ex.Decision)
	}
	findings, _ := json.Marshal(ex.Input["findings"])
	for _, want := range []string{`"EMAIL"`, `"US_SSN"`} {
		if !strings.Contains(string(findings), want) {
			t.Fatalf("findings %s lack %s", findings, want)
		}
	}
	if strings.Contains(string(answer), leakEmail) || strings.Contains(string(answer), leakSSN) {
		t.Fatalf("the dry run repeats a value: %s", answer)
	}
}

// GET /v1/models/{id} answers a model the caller may use in OpenAI's shape;
// one it may not use is as absent as one that does not exist.
func TestRetrieveModel(t *testing.T) {
	h := newHarness(t, config.Tier{Models: []string{"gpt-4o-mini"}})
	c := h.client(h.key)
	m, err := c.Models.Get(context.Background(), "gpt-4o-mini")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "gpt-4o-mini" || m.Object != "model" || m.OwnedBy != "sluice" {
		t.Fatalf("model %+v", m)
	}
	for _, id := range []string{"gpt-4o", "no-such-model", "org/model"} {
		_, err := c.Models.Get(context.Background(), id)
		e := apiError(t, err, 404, "model_not_found")
		if strings.Contains(e.Message, id) {
			t.Fatalf("the error names the model: %s", e.Message)
		}
	}
	if resp, _ := h.raw("GET", "/v1/models/gpt-4o-mini", "", ""); resp.StatusCode != 401 {
		t.Fatalf("without a key: %d, want 401", resp.StatusCode)
	}
}

// A policy can single the Responses API out by its path; its max_tokens
// cap lowers a Responses request's max_output_tokens, or sets one, in the
// chat completion the upstream gets, and the Response says what applied.
func TestResponsesPolicyCapsMaxOutputTokens(t *testing.T) {
	dir := defaultPolicyFolder(t)
	putFile(t, dir, "cap.rego", "package sluice.authz\n\ncap contains {\"limit\": \"max_tokens\", \"value\": 32} if input.request.path == \"/v1/responses\"\n")
	cfg := policyConfig(t, open, dir, false)
	rec := startRecordingUpstream(t)
	rec.serve(cfg)
	h := start(t, cfg)
	c := h.client(h.createClient("app", "research"))
	for _, asked := range []int64{0, 500, 20} {
		before := len(rec.bodies)
		params := responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}}
		want := int64(32)
		if asked > 0 {
			params.MaxOutputTokens = openai.Int(asked)
			want = min(asked, 32)
		}
		resp, err := c.Responses.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		sent := rec.bodies[before:]
		rec.mu.Unlock()
		var up struct {
			MaxCompletionTokens int64 `json:"max_completion_tokens"`
		}
		if len(sent) != 1 || json.Unmarshal([]byte(sent[0]), &up) != nil || up.MaxCompletionTokens != want {
			t.Fatalf("asked %d: the upstream got %q, want max_completion_tokens %d", asked, sent, want)
		}
		if resp.MaxOutputTokens != want {
			t.Fatalf("asked %d: the Response says max_output_tokens %d, want %d", asked, resp.MaxOutputTokens, want)
		}
	}
}

// Values redacted on the way up are put back in the Response, whole and
// streamed, when the policy says restore: the model never saw them.
func TestResponsesRestoreRedactedValues(t *testing.T) {
	h, rec := startBehindRecorder(t, config.Tier{Models: []string{"*"}, PIIDetection: true, Redact: []string{"EMAIL"}, Restore: true})
	c := h.client(h.key)
	params := responses.ResponseNewParams{Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Write to " + leakEmail + " today")}}
	want := "Mock reply. You said: Write to " + leakEmail + " today"
	resp, err := c.Responses.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.OutputText(); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	s := c.Responses.NewStreaming(context.Background(), params)
	var text strings.Builder
	var final string
	for s.Next() {
		ev := s.Current()
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			final = ev.AsResponseCompleted().Response.OutputText()
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != want || final != want {
		t.Fatalf("streamed %q, completed %q, want %q", text.String(), final, want)
	}
	if strings.Contains(rec.seen(), leakEmail) {
		t.Fatal("the value reached the upstream")
	}
}

// The usage report groups by the API called, so an operator sees what the
// Responses API costs beside chat completions.
func TestUsageReportByAPI(t *testing.T) {
	h := newHarness(t, open)
	c := h.client(h.key)
	ctx := context.Background()
	cr, err := c.Chat.Completions.New(ctx, chat("gpt-4o-mini", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	rr, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello there")}})
	if err != nil {
		t.Fatal(err)
	}
	status, body := h.admin("GET", "/admin/usage?group_by=endpoint&format=json", "")
	if status != 200 {
		t.Fatalf("usage report %d %s", status, body)
	}
	var rows []struct {
		Endpoint    string `json:"endpoint"`
		Requests    int64  `json:"requests"`
		TotalTokens int64  `json:"total_tokens"`
	}
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	got := map[string][2]int64{}
	for _, r := range rows {
		got[r.Endpoint] = [2]int64{r.Requests, r.TotalTokens}
	}
	want := map[string][2]int64{"/v1/chat/completions": {1, cr.Usage.TotalTokens}, "/v1/responses": {1, rr.Usage.TotalTokens}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("report %s, want %v", body, want)
	}
}
