package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestStartupSaysWhereItsTimeWent: the serving line tells an operator how
// long each part of the start took, so a replica slow to come up can be
// read from its log.
func TestStartupSaysWhereItsTimeWent(t *testing.T) {
	h := start(t, testConfig(t, t.TempDir(), open))
	for line := range strings.Lines(h.logText()) {
		var l struct {
			Msg     string           `json:"msg"`
			Startup map[string]int64 `json:"startup_ms"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "sluice serving" {
			continue
		}
		s := l.Startup
		for _, part := range []string{"store", "policy", "plugins", "token_vocabulary", "total"} {
			if _, ok := s[part]; !ok {
				t.Fatalf("startup_ms has no %s: %s", part, line)
			}
		}
		if s["total"] < s["store"]+s["policy"]+s["plugins"] || s["total"] < s["token_vocabulary"] || s["total"] <= 0 {
			t.Fatalf("startup parts do not add up: %s", line)
		}
		return
	}
	t.Fatalf("no serving line in %s", h.logText())
}
