package readme

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Elision is what the README writes for a part of an output it leaves out.
const Elision = "…"

var (
	statusPrefix = regexp.MustCompile(`^([1-5][0-9][0-9]) `)
	space        = regexp.MustCompile(`\s+`)
)

// Ran is what running one command gave.
type Ran struct {
	Output   string // standard output and error, interleaved as a terminal shows them
	Exit     int
	Statuses []int // the HTTP status of each curl call, in order
}

// Check says whether ran is what the README shows for a command whose output
// lines are expect (nil when it shows none).
//
// The lines are joined into one text and compared with the whole output,
// loosely: "…" stands for any text (newlines included), and a run of
// whitespace for any run, none included, so that a JSON reply cut over
// several lines, or a table's columns, need not be spaced as printed. A text
// that begins with an HTTP status ("400 {…}") is compared, status apart, with
// the body, and the status with the command's last curl call's. Without a
// status shown, every curl call must have answered below 400. A command
// shown without output must exit 0; one shown with its output may fail, when
// what it printed is the error the README shows.
func Check(expect []string, ran Ran) error {
	if ran.Exit != 0 && expect == nil {
		return fmt.Errorf("exit status %d, and the README shows no error", ran.Exit)
	}
	text := strings.Join(expect, "\n")
	wantStatus := 0
	if m := statusPrefix.FindStringSubmatch(text); m != nil && len(ran.Statuses) > 0 {
		wantStatus, _ = strconv.Atoi(m[1])
		text = text[len(m[0]):]
	}
	switch last := lastStatus(ran.Statuses); {
	case wantStatus != 0 && last != wantStatus:
		return fmt.Errorf("HTTP status %d, the README shows %d", last, wantStatus)
	case wantStatus == 0:
		for _, s := range ran.Statuses {
			if s >= 400 || s == 0 {
				return fmt.Errorf("HTTP status %d, and the README shows no error", s)
			}
		}
	}
	if expect == nil {
		return nil
	}
	if !Pattern(text).MatchString(ran.Output) {
		return fmt.Errorf("the output differs from the README's\nREADME: %s\noutput: %s", text, strings.TrimSpace(ran.Output))
	}
	return nil
}

// Pattern is the expression an output must match to be the text the README
// shows: the whole output, "…" for any text, whitespace for any whitespace.
func Pattern(text string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)^\s*`)
	for i, piece := range strings.Split(strings.TrimSpace(text), Elision) {
		if i > 0 {
			b.WriteString(`.*?`)
		}
		for j, word := range space.Split(piece, -1) {
			if j > 0 {
				b.WriteString(`\s*`)
			}
			b.WriteString(regexp.QuoteMeta(word))
		}
	}
	b.WriteString(`\s*$`)
	return regexp.MustCompile(b.String())
}

func lastStatus(statuses []int) int {
	if len(statuses) == 0 {
		return 0
	}
	return statuses[len(statuses)-1]
}
