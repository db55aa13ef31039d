package bench

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/plugin/wasmbuild"
	"github.com/sluicehq/sluice/plugins/contentfilter"
	"github.com/sluicehq/sluice/plugins/pii"
)

// TestMeasurePlugins runs the plugin section briefly on the real modules and
// checks that every figure is there and plausible.
func TestMeasurePlugins(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles four plugin modules from scratch")
	}
	paths := map[string]string{}
	for name, path := range map[string]func() (string, error){
		"pii":           func() (string, error) { return wasmbuild.Path("pii") },
		"contentfilter": func() (string, error) { return wasmbuild.Path("contentfilter") },
		"empty":         func() (string, error) { return wasmbuild.TestdataPath("empty") },
		"minimal":       wasmbuild.MinimalPath,
	} {
		p, err := path()
		if err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	r, err := MeasurePlugins(context.Background(), PluginSettings{
		PII: paths["pii"], ContentFilter: paths["contentfilter"], Empty: paths["empty"], Minimal: paths["minimal"],
		Rounds: 1, Duration: 5 * time.Millisecond, LoadRounds: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Calls) != 2 || len(r.Throughput) != 8 || len(r.Loads) != 2 {
		t.Fatalf("report has %d calls, %d throughput and %d load figures; want 2, 8 and 2", len(r.Calls), len(r.Throughput), len(r.Loads))
	}
	for _, c := range r.Calls {
		// Sanity only (a unit gone wrong is off by a thousand): a loaded
		// machine can hold one call back for several time slices.
		if c.PerCall <= 0 || c.PerCall > 100*time.Millisecond || c.Spaced <= 0 || c.Spaced > 100*time.Millisecond {
			t.Errorf("%s: %s per call back to back, %s apart", c.Module, c.PerCall, c.Spaced)
		}
	}
	for _, f := range r.Throughput {
		if f.WASMMBps <= 0 || f.NativeMBps <= 0 || f.Ratio <= 0 {
			t.Errorf("%s on %s: %+v", f.Plugin, f.Input, f)
		}
	}
	for _, l := range r.Loads {
		if l.Cold <= 0 || l.Cached <= 0 {
			t.Errorf("%s: %+v", l.Plugin, l)
		}
	}
}

// TestProseHasNothingToFind holds the prose input to its promise: the
// throughput figure on it measures reading, not reporting.
func TestProseHasNothingToFind(t *testing.T) {
	text := []byte(prose(64 << 10))
	p, _ := pii.New(nil)
	f, _ := contentfilter.New(nil)
	if found := p.Scan(nil, text); len(found) != 0 {
		t.Errorf("the PII scanner finds %d things in the prose", len(found))
	}
	if found := f.Scan(nil, text); len(found) != 0 {
		t.Errorf("the content filter finds %d things in the prose", len(found))
	}
	if found := p.Scan(nil, []byte(piiDense(1<<10))); len(found) < 5 {
		t.Errorf("the PII scanner finds only %d things in 1 KB of the dense input", len(found))
	}
}
