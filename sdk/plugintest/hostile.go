package plugintest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/host/plugin"
	"github.com/sluicehq/sluice/sdk/abi"
)

// The checks of this file hold a module to what the gateway's sandbox
// enforces on it, so that a vendor learns of a violation from the suite,
// named, rather than from a gateway that fails its calls.

// maxResultBytes is the largest result document the host reads (sdk/ABI.md
// section 7.3).
const maxResultBytes = 16 << 20

// deadlineTries is how many times the deadline check scans a sample before
// it counts it as too slow: one late scan on a busy machine is not a
// verdict, a scan late every time is.
const deadlineTries = 3

// deadline scans every sample through the host under the gateway's
// per-scan deadline: a scan past it is stopped and fails its request.
func (s *suite) deadline() (string, bool) {
	p, err := s.loadWith(1, s.opts.Deadline)
	if err != nil {
		return fmt.Sprintf("loading under the %v deadline: %v", s.opts.Deadline, err), false
	}
	defer p.Close(s.ctx)
	var late []string
	for _, sample := range s.opts.Corpus {
		for try := 1; ; try++ {
			_, err := p.Scan(s.ctx, sample.Texts)
			if !errors.Is(err, plugin.ErrTimeout) {
				break // in time; an error other than the deadline is scan-corpus's concern
			}
			if try == deadlineTries {
				late = append(late, sample.Name)
				break
			}
		}
	}
	if len(late) > 0 {
		return fmt.Sprintf("sample %s did not finish within the %v deadline in %d tries: the gateway stops such a scan, fails its request and discards the instance",
			strings.Join(late, ", "), s.opts.Deadline, deadlineTries), false
	}
	return fmt.Sprintf("every sample scanned within the %v deadline", s.opts.Deadline), true
}

// configuredRaw returns a fresh instance driven by hand, configured, and the
// types its manifest declares.
func (s *suite) configuredRaw() (*rawInstance, []string, error) {
	inst, err := s.raw.instantiate(s.ctx)
	if err != nil {
		return nil, nil, err
	}
	if _, err := inst.call(s.ctx, abi.ExportVersion); err != nil {
		inst.close(s.ctx)
		return nil, nil, err
	}
	status, manifest, err := inst.invoke(s.ctx, abi.ExportConfigure, s.config)
	if err == nil && status != abi.StatusOK {
		err = fmt.Errorf("configure returned status %d", status)
	}
	var types []string
	if err == nil {
		types, err = abi.ParseManifest(manifest)
	}
	if err != nil {
		inst.close(s.ctx)
		return nil, nil, err
	}
	return inst, types, nil
}

// rawScan scans texts on inst and returns the result document, or nil when
// the scan failed (a failure other checks report); after a trap inst is
// replaced by a fresh configured one.
func (s *suite) rawScan(inst **rawInstance, texts []string) []byte {
	status, out, err := (*inst).invoke(s.ctx, abi.ExportScan, abi.AppendTexts(nil, texts))
	if err != nil {
		(*inst).close(s.ctx)
		fresh, _, ferr := s.configuredRaw()
		if ferr != nil {
			*inst = nil
			return nil
		}
		*inst = fresh
		return nil
	}
	if status != abi.StatusOK {
		return nil
	}
	return out
}

// outputLimits checks every result against the limits of section 7.3: the
// result's size, the number of findings, and types declared in the manifest.
func (s *suite) outputLimits() (string, bool) {
	inst, types, err := s.configuredRaw()
	if err != nil {
		return err.Error(), false
	}
	defer func() {
		if inst != nil {
			inst.close(s.ctx)
		}
	}()
	var problems []string
	for _, sample := range s.opts.Corpus {
		if inst == nil {
			break
		}
		out := s.rawScan(&inst, sample.Texts)
		if out == nil {
			continue
		}
		if len(out) > maxResultBytes {
			problems = append(problems, fmt.Sprintf("sample %s: a result of %d bytes, over the %d-byte limit", sample.Name, len(out), maxResultBytes))
			continue
		}
		var res struct{ Findings []abi.Finding }
		if json.Unmarshal(out, &res) != nil {
			continue // findings-well-formed's concern
		}
		if len(res.Findings) > abi.MaxFindings {
			problems = append(problems, fmt.Sprintf("sample %s: %d findings, over the %d allowed", sample.Name, len(res.Findings), abi.MaxFindings))
			continue
		}
		for _, f := range res.Findings {
			if !slices.Contains(types, f.Type) {
				problems = append(problems, fmt.Sprintf("sample %s: finding type %s is not declared in the manifest %v", sample.Name, quote(truncate(f.Type, 64)), types))
				break
			}
		}
	}
	if len(problems) > 0 {
		return strings.Join(problems, "; ") + "; the gateway fails such a call and discards the instance", false
	}
	return fmt.Sprintf("every result within %d findings and %d bytes, of the %d declared types", abi.MaxFindings, maxResultBytes, len(types)), true
}

// stateless scans the corpus twice on one instance that nothing resets, as
// the host would, and compares each sample's findings: a module whose answer
// depends on its earlier calls keeps state across them. The host resets
// every instance before each call (section 3.1), so in the gateway such a
// module sees nothing of other requests; but its verdicts would depend on
// them without the reset, which section 5.3 forbids.
func (s *suite) stateless() (string, bool) {
	inst, _, err := s.configuredRaw()
	if err != nil {
		return err.Error(), false
	}
	defer func() {
		if inst != nil {
			inst.close(s.ctx)
		}
	}()
	first := make([][]byte, len(s.opts.Corpus))
	for round := range 2 {
		for i, sample := range s.opts.Corpus {
			if inst == nil {
				return "a fresh instance after a failed scan could not be made", false
			}
			out := s.rawScan(&inst, sample.Texts)
			if round == 0 {
				first[i] = out
				continue
			}
			if out == nil || first[i] == nil {
				continue
			}
			a, errA := findingsOf(first[i])
			b, errB := findingsOf(out)
			if errA == nil && errB == nil && !sameFindings(a, b) {
				return fmt.Sprintf("the module keeps state across calls: sample %s found %s on its first scan and %s after %d more calls on the same instance",
					sample.Name, describe(a), describe(b), len(s.opts.Corpus)), false
			}
		}
	}
	return fmt.Sprintf("%d samples found the same twice on one instance that nothing reset", len(s.opts.Corpus)), true
}

func findingsOf(doc []byte) ([]plugin.Finding, error) {
	var res struct{ Findings []abi.Finding }
	err := json.Unmarshal(doc, &res)
	return res.Findings, err
}
