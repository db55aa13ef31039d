package readme

import (
	"strings"
	"testing"
)

const ssnReply = `{"error":{"message":"request blocked: personal data detected (US_SSN)","type":"invalid_request_error","param":null,"code":"pii_detected"}}`

// TestCheckFailsAWrongExample is the guarantee the doc test exists for: a
// README whose example is wrong in any way a reader would notice fails.
func TestCheckFailsAWrongExample(t *testing.T) {
	blocked := Ran{Output: ssnReply, Statuses: []int{400}}
	for _, c := range []struct {
		name   string
		expect []string
		ran    Ran
	}{
		{"another status", []string{"403 " + ssnReply}, blocked},
		{"another code", []string{`400 {"error":{…"code":"content_policy_violation"}}`}, blocked},
		{"another message", []string{`400 {"error":{"message":"request blocked: personal data detected (EMAIL)",…}}`}, blocked},
		{"a member that is not there", []string{`400 {"error":{…,"code":"pii_detected","details":…}}`}, blocked},
		{"only the start of the output, without …", []string{`400 {"error":{"message":"request blocked`}, blocked},
		{"an error shown as success", []string{`{"error":…}`}, blocked},
		{"an error where none is shown", nil, blocked},
		{"a command that failed", nil, Ran{Exit: 1}},
		{"a failed command with other output", []string{"sluice: sluice.yaml:14: server.lisen: …"}, Ran{Output: "sluice: sluice.yaml:2: server.lisen: unknown key", Exit: 1}},
		{"a curl call that failed before an answer", nil, Ran{Statuses: []int{0}}},
		{"one line of a listing wrong", []string{"sluice …", "built-in plugins:", "  builtin:pii  sha256:…", "  builtin:promptguard  sha256:…"},
			Ran{Output: "sluice v1 (go1.26)\nbuilt-in plugins:\n  builtin:pii  sha256:fa6a\n  builtin:contentfilter  sha256:c27b"}},
		{"a word cut short", []string{"Mock reply. You said: Hello"}, Ran{Output: "Mock reply. You said: Hell"}},
	} {
		if err := Check(c.expect, c.ran); err == nil {
			t.Errorf("%s: README %q passes for output %q (status %v, exit %d)", c.name, c.expect, c.ran.Output, c.ran.Statuses, c.ran.Exit)
		}
	}
}

func TestCheckPassesWhatTheReadmeShows(t *testing.T) {
	for _, c := range []struct {
		name   string
		expect []string
		ran    Ran
	}{
		{"a status and the whole body", []string{"400 " + ssnReply}, Ran{Output: ssnReply, Statuses: []int{400}}},
		{"a reply cut over lines, elided", []string{
			`{"id":"resp_…","object":"response",`,
			` "output":[{"type":"message","content":[{"text":"Mock reply. You said: Hello, Sluice!",…}],…}],`,
			` "usage":{"input_tokens":…},…}`,
		}, Ran{Output: `{"id":"resp_0a1b","object":"response","output":[{"type":"message","content":[{"text":"Mock reply. You said: Hello, Sluice!","annotations":[]}],"role":"assistant"}],"usage":{"input_tokens":12},"store":false}`,
			Statuses: []int{200}}},
		{"columns spaced otherwise", []string{"builtin:pii   sha256:…", "builtin:contentfilter sha256:…"},
			Ran{Output: "builtin:pii            sha256:fa6a\nbuiltin:contentfilter  sha256:c27b"}},
		{"no output shown, a command that worked", nil, Ran{Output: "anything", Statuses: []int{200, 201}}},
		{"an error the README shows", []string{"sluice: sluice.yaml:14: server.lisen: unknown key …"},
			Ran{Output: "sluice: sluice.yaml:14: server.lisen: unknown key (expected one of: listen)", Exit: 1}},
		{"a line of text", []string{"x-sluice-cache: miss"}, Ran{Output: "x-sluice-cache: miss\n", Statuses: []int{200}}},
	} {
		if err := Check(c.expect, c.ran); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestStepsFollowCommandsAndTheirOutput(t *testing.T) {
	b := Block{Line: 10, Lang: "sh", Text: `curl http://127.0.0.1:8080/v1/messages \
  -H "x-api-key: $(cat data/demo.key)" \
  -d '{"model":"gpt-4o-mini",
       "messages":[{"role":"user","content":"it's #1"}]}'
# {"id":"msg_…",
#  "type":"message"}

make build && cp bin/sluice /usr/local/bin/   # a comment, not output
sluice --version
# sluice …
# built-in plugins:
`}
	steps, err := Steps(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 {
		t.Fatalf("%d steps, want 3: %+v", len(steps), steps)
	}
	if !strings.HasSuffix(steps[0].Command, `"it's #1"}]}'`+"\n") || steps[0].Line != 11 ||
		strings.Join(steps[0].Expect, "|") != `{"id":"msg_…",| "type":"message"}` {
		t.Errorf("a command over four lines, with a quote and a # inside the data: %+v", steps[0])
	}
	if steps[1].Expect != nil || steps[1].Line != 18 {
		t.Errorf("a comment after a command is not its output: %+v", steps[1])
	}
	if strings.Join(steps[2].Expect, "|") != "sluice …|built-in plugins:" {
		t.Errorf("output over two lines: %+v", steps[2])
	}

	if _, err := Steps(Block{Line: 1, Lang: "sh", Text: "curl -d '{\n"}); err == nil {
		t.Error("a command whose quote is never closed must be refused, not run")
	}
}

func TestConsoleTranscripts(t *testing.T) {
	steps, err := Steps(Block{Line: 1, Lang: "console", Text: "$ sluice config check a.yaml\nsluice: a.yaml:\npolicy: …\n"})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 || steps[0].Command != "sluice config check a.yaml\n" ||
		strings.Join(steps[0].Expect, "|") != "sluice: a.yaml:|policy: …" {
		t.Errorf("a transcript is its prompt lines' commands and their output: %+v", steps)
	}
}

func TestMarkers(t *testing.T) {
	blocks, err := Blocks("# T\n\n<!-- doctest: skip: needs podman -->\n\n```sh\npodman run sluice\n```\n\n" +
		"<!-- doctest: setup cache -->\n```bash\ncurl x\n```\n\ntext\n\n```sh\nls\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 || blocks[0].Marker.Skip != "needs podman" || blocks[1].Marker.Setup != "cache" ||
		blocks[2].Marker != (Marker{}) || blocks[0].Line != 5 || blocks[0].Text != "podman run sluice\n" {
		t.Errorf("blocks: %+v", blocks)
	}
	for _, bad := range []string{"<!-- doctest: skip: -->", "<!-- doctest: run later -->", "<!-- doctest: setup Two Words -->"} {
		if _, err := Blocks(bad + "\n```sh\nls\n```\n"); err == nil {
			t.Errorf("%s is accepted; a marker the test does not understand must fail", bad)
		}
	}
}
