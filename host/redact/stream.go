package redact

import (
	"maps"
	"slices"
)

// ReplyStream is the response path of one streamed reply: for each choice,
// a StreamScanner when the reply is scanned, feeding a StreamRestorer when
// values are restored. Choices of a reply with n > 1 interleave in a stream;
// each index gets its own pair, created on first use.
type ReplyStream struct {
	v       *Vault
	scan    *ScanOptions
	restore bool
	choices map[int]*choiceStream
}

type choiceStream struct {
	scanner  *StreamScanner
	restorer *StreamRestorer
	finished bool
}

// NewReplyStream returns the response path for a reply to the request v
// redacted. scan nil means no response-phase scanning; restore false means
// placeholders reach the caller as the model wrote them.
func NewReplyStream(v *Vault, scan *ScanOptions, restore bool) *ReplyStream {
	if v == nil {
		v = &Vault{} // masked values of all choices are numbered together
	}
	r := &ReplyStream{v: v, restore: restore, choices: map[int]*choiceStream{}}
	if scan != nil {
		o := *scan
		r.scan = &o
	}
	return r
}

func (r *ReplyStream) choice(i int) *choiceStream {
	c := r.choices[i]
	if c == nil {
		c = &choiceStream{}
		if r.scan != nil {
			c.scanner = NewStreamScanner(*r.scan, r.v)
		}
		if r.restore {
			c.restorer = r.v.NewStreamRestorer()
		}
		r.choices[i] = c
	}
	return c
}

// Next takes the next content delta of choice and returns the text to send
// for it now. An error (a *Blocked, or a failed scan) ends the reply: the
// caller sends an error event and stops.
func (r *ReplyStream) Next(choice int, delta string) (string, error) {
	c := r.choice(choice)
	text := delta
	if c.scanner != nil {
		var err error
		if text, err = c.scanner.Next(text); err != nil {
			return "", err
		}
	}
	if c.restorer != nil {
		text = c.restorer.Next(text)
	}
	return text, nil
}

// Finish ends choice, at the chunk that carries its finish_reason, and
// returns the text still held for it, to send in that chunk.
func (r *ReplyStream) Finish(choice int) (string, error) {
	c := r.choice(choice)
	if c.finished {
		return "", nil
	}
	c.finished = true
	var text string
	if c.scanner != nil {
		var err error
		if text, err = c.scanner.Flush(); err != nil {
			return "", err
		}
	}
	if c.restorer != nil {
		text = c.restorer.Next(text) + c.restorer.Flush()
	}
	return text, nil
}

// Unfinished lists, in order, the choices that have not been finished: at
// the end of a stream that carried no finish_reason for them, their held
// text is still to be sent.
func (r *ReplyStream) Unfinished() []int {
	var out []int
	for _, i := range slices.Sorted(maps.Keys(r.choices)) {
		if !r.choices[i].finished {
			out = append(out, i)
		}
	}
	return out
}

// Findings are the distinct findings in the reply so far, Text being the
// choice index and offsets into that choice's text as the model wrote it.
func (r *ReplyStream) Findings() []Finding {
	var out []Finding
	for _, i := range slices.Sorted(maps.Keys(r.choices)) {
		if s := r.choices[i].scanner; s != nil {
			for _, f := range s.Findings() {
				f.Text = i
				out = append(out, f)
			}
		}
	}
	return out
}
