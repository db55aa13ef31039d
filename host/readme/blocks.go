package readme

import (
	"fmt"
	"regexp"
	"strings"
)

// Block is one fenced block of a Markdown file.
type Block struct {
	Line   int    // the line of its opening fence, from 1
	Lang   string // the fence's info string ("sh", "yaml"), "" when none
	Text   string // its lines, each ending with "\n"
	Marker Marker
}

// Marker is what a `<!-- doctest: … -->` line right before a block says.
type Marker struct {
	Skip  string // the reason the block is not run; "" to run it
	Setup string // the prepared session it runs in; "" for the default one
}

// Kind says what the doc test does with a block of lang.
type Kind int

const (
	Unknown Kind = iota // a language the test does not know: an error, so nothing escapes unseen
	Shell               // run
	Config              // checked with `sluice config check`
	Listing             // shown, not run: source code, JSON, a program's output
)

var kinds = map[string]Kind{
	"sh": Shell, "bash": Shell, "shell": Shell, "console": Shell,
	"yaml": Config, "yml": Config,
	"go": Listing, "python": Listing, "json": Listing, "rego": Listing, "text": Listing,
}

// KindOf is the kind of a block of lang.
func KindOf(lang string) Kind { return kinds[lang] }

var markerLine = regexp.MustCompile(`^<!--\s*doctest:\s*(.*?)\s*-->$`)

// Blocks returns the fenced blocks of markdown, each with the marker of the
// non-blank line before it, if that line is one.
func Blocks(markdown string) ([]Block, error) {
	var blocks []Block
	var open *Block
	var fence string
	prev := "" // the last non-blank line outside a block
	for i, line := range strings.Split(markdown, "\n") {
		trimmed := strings.TrimSpace(line)
		if open != nil {
			if trimmed == fence {
				blocks = append(blocks, *open)
				open, prev = nil, ""
				continue
			}
			open.Text += line + "\n"
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			fence = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, "`"))]
			open = &Block{Line: i + 1, Lang: strings.TrimSpace(strings.TrimPrefix(trimmed, fence))}
			m, err := parseMarker(prev)
			if err != nil {
				return nil, fmt.Errorf("README.md:%d: %w", i+1, err)
			}
			open.Marker = m
			continue
		}
		if trimmed != "" {
			prev = trimmed
		}
	}
	if open != nil {
		return nil, fmt.Errorf("README.md:%d: the block is never closed", open.Line)
	}
	return blocks, nil
}

func parseMarker(line string) (Marker, error) {
	m := markerLine.FindStringSubmatch(line)
	if m == nil {
		return Marker{}, nil
	}
	switch word, rest, _ := strings.Cut(m[1], " "); word {
	case "skip:":
		if strings.TrimSpace(rest) == "" {
			return Marker{}, fmt.Errorf("%q gives no reason", line)
		}
		return Marker{Skip: strings.TrimSpace(rest)}, nil
	case "setup":
		if !regexp.MustCompile(`^[a-z0-9-]+$`).MatchString(rest) {
			return Marker{}, fmt.Errorf("%q: a setup is named by lower-case letters, digits and dashes", line)
		}
		return Marker{Setup: rest}, nil
	}
	return Marker{}, fmt.Errorf("%q: want <!-- doctest: skip: REASON --> or <!-- doctest: setup NAME -->", line)
}

// Step is one command of a shell block and the output shown after it.
type Step struct {
	Line    int      // the line of the command in the Markdown file
	Command string   // as written, over as many lines as it takes
	Expect  []string // the comment lines after it, without their "# "
}

// Steps splits a shell block into its commands. A command goes on over a
// line that ends with a backslash or inside an open quote; a line that
// starts with "#" outside a command shows the output of the command before it.
func Steps(b Block) ([]Step, error) {
	var steps []Step
	var cmd strings.Builder
	cmdLine := 0
	quote := byte(0)
	for i, line := range strings.Split(strings.TrimSuffix(b.Text, "\n"), "\n") {
		n := b.Line + 1 + i
		if cmd.Len() == 0 {
			trimmed := strings.TrimSpace(line)
			if trimmed == "" {
				continue
			}
			output, shown := "", false
			if b.Lang == "console" {
				// A transcript: commands after a prompt, their output as it is.
				if command, ok := strings.CutPrefix(trimmed, "$ "); ok {
					line = command
				} else {
					output, shown = line, true
				}
			} else if strings.HasPrefix(trimmed, "#") {
				output, shown = strings.TrimPrefix(strings.TrimPrefix(trimmed, "#"), " "), true
			}
			if shown {
				if len(steps) == 0 {
					return nil, fmt.Errorf("README.md:%d: output shown before any command", n)
				}
				last := &steps[len(steps)-1]
				last.Expect = append(last.Expect, output)
				continue
			}
			cmdLine = n
		}
		cmd.WriteString(line + "\n")
		var continued bool
		quote, continued = scanLine(line, quote)
		if quote == 0 && !continued {
			steps = append(steps, Step{Line: cmdLine, Command: cmd.String()})
			cmd.Reset()
		}
	}
	if cmd.Len() > 0 {
		return nil, fmt.Errorf("README.md:%d: the command never ends (an open quote or a trailing backslash)", cmdLine)
	}
	return steps, nil
}

// scanLine follows bash's quoting over one line, starting inside quote (0,
// or the single or double quote left open by the line before), and returns
// the quote open at its end and whether the line ends with a backslash that
// continues it.
func scanLine(line string, quote byte) (byte, bool) {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '\\':
			if i == len(line)-1 {
				return quote, quote == 0
			}
			i++
		case quote == '"':
			if c == '"' {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return 0, false // a comment runs to the end of the line
		}
	}
	return quote, false
}

var exportComment = regexp.MustCompile(`//\s*(export [A-Za-z_][A-Za-z0-9_]*=.*)$`)

// Program is a Go block that is a whole program, and the shell lines its
// comments ask a reader to run first (`// export SLUICE_KEY=…`); ok is false
// for a fragment.
func Program(b Block) (exports []string, ok bool) {
	if b.Lang != "go" || !strings.HasPrefix(b.Text, "package main\n") || !strings.Contains(b.Text, "\nfunc main() {") {
		return nil, false
	}
	for _, line := range strings.Split(b.Text, "\n") {
		if m := exportComment.FindStringSubmatch(line); m != nil {
			exports = append(exports, m[1])
		}
	}
	return exports, true
}
