package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host/bench"
)

// runProfile starts the mock upstream and one Sluice with everything on,
// loads it at the highest -concurrency, and meanwhile takes a CPU profile
// and an allocation profile of it through its admin listener
// (/debug/pprof). It writes cpu.pprof and allocs.pprof to the -profile
// folder, and the top of each (go tool pprof -top) beside them.
func runProfile(ctx context.Context, o options) (err error) {
	body, err := chatRequest()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
		return err
	}
	progress("profile: starting the mock upstream and Sluice")
	st, err := startStack(ctx, stackOptions{sluiceBin: o.sluiceBin, pluginDir: o.pluginDir, benchBin: self,
		mockLatency: o.mockLatency, variants: []variant{fullSluice}, keep: o.keep})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	sluice := st.targets[len(st.targets)-1]
	if err := preflight(sluice, body, o.timeout); err != nil {
		return err
	}
	conc := slices.Max(o.concurrency)
	seconds := max(int(o.duration/time.Second), 1)
	progress("profile: %d workers for %d s, profiling CPU and allocations meanwhile", conc, seconds)

	loaded := make(chan error, 1)
	var res bench.Result
	go func() {
		var err error
		res, err = bench.Run(ctx, bench.Load{Addr: sluice.addr, Path: "/v1/chat/completions", Header: sluice.header, Body: body,
			Concurrency: conc, Warmup: o.warmup, Duration: time.Duration(seconds+1) * time.Second, Timeout: o.timeout})
		loaded <- err
	}()
	select { // profile the steady load, not the warm-up
	case <-time.After(o.warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	// Allocation records are published at the end of a collection: two
	// forced ones put the start-up's (the token vocabulary, the plugins'
	// compilation) in the profile's base, out of the requests' figures.
	for range 2 {
		if err := fetchProfile(ctx, sluice.admin, "/debug/pprof/heap?gc=1", os.DevNull); err != nil {
			return err
		}
	}
	profiles := []struct{ name, path, index string }{
		{"cpu", "/debug/pprof/profile?seconds=" + strconv.Itoa(seconds), ""},
		{"allocs", "/debug/pprof/allocs?seconds=" + strconv.Itoa(seconds), "alloc_space"},
	}
	errs := make(chan error, len(profiles))
	for _, p := range profiles {
		go func() { errs <- fetchProfile(ctx, sluice.admin, p.path, filepath.Join(o.profileDir, p.name+".pprof")) }()
	}
	for range profiles {
		if err := <-errs; err != nil {
			return err
		}
	}
	if err := <-loaded; err != nil {
		return err
	}
	for _, p := range profiles {
		if err := writeTop(filepath.Join(o.profileDir, p.name+".pprof"), p.index, filepath.Join(o.profileDir, p.name+".top.txt")); err != nil {
			return err
		}
	}
	fmt.Printf("%d requests in %.1f s (%.0f req/s, p50 %v, p99 %v, %d errors) while profiling\n",
		res.Requests(), res.Elapsed.Seconds(), res.Throughput(), res.Percentile(0.5), res.Percentile(0.99), res.Errors)
	rows, err := profileStages(o.profileDir, res.Throughput())
	if err != nil {
		return err
	}
	var b strings.Builder
	bw := bufio.NewWriter(&b)
	fmt.Fprintf(bw, "where a request's CPU time and allocations go, at concurrency %d and %.0f req/s (CPU and allocation profiles of %d s;\n"+
		"allocations are sampled, so their figures are estimates):\n", conc, res.Throughput(), seconds)
	writeStages(bw, rows)
	bw.Flush()
	fmt.Print(b.String())
	if err := os.WriteFile(filepath.Join(o.profileDir, "stages.txt"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s: cpu.pprof, allocs.pprof, the top of each (cpu.top.txt, allocs.top.txt) and the stage table (stages.txt);\n"+
		"look further with: go tool pprof -http=: %s\n", o.profileDir, filepath.Join(o.profileDir, "cpu.pprof"))
	return nil
}

// profileStages reads the profiles runProfile wrote and divides them among
// the request path's stages; perSecond is the rate requests were served at
// while they were taken.
func profileStages(dir string, perSecond float64) ([]StageRow, error) {
	cpu, err := readProfile(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, err
	}
	allocs, err := readProfile(filepath.Join(dir, "allocs.pprof"))
	if err != nil {
		return nil, err
	}
	return stageBudget(cpu, allocs, perSecond*float64(cpu.DurationNanos)/1e9)
}

// fetchProfile saves one profile from a Sluice's admin listener.
func fetchProfile(ctx context.Context, admin, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+benchAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profile %s: status %d: %s", path, resp.StatusCode, b)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, resp.Body)
	return errors.Join(err, out.Close())
}

// writeTop writes `go tool pprof -top` of a profile to file.
func writeTop(profile, sampleIndex, file string) error {
	args := []string{"tool", "pprof", "-top", "-nodecount=40"}
	if sampleIndex != "" {
		args = append(args, "-sample_index="+sampleIndex)
	}
	out, err := exec.Command("go", append(args, profile)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w: %s", err, out)
	}
	return os.WriteFile(file, out, 0o644)
}
