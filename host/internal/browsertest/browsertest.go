// Package browsertest runs pages in a headless Chromium for tests: the
// browser's start with the flags these machines need, and waits on the DOM.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium returns the path of a Chromium to test with: $SLUICE_CHROMIUM, or
// Debian's chromium, installed with scripts/ensure-packages when missing. It
// skips the test when there is none, and fails it under CI, so that a
// missing browser cannot turn a red run green.
func Chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	var why string
	script, err := ensurePackages()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, script, "chromium").CombinedOutput()
		if p := find(); err == nil && p != "" {
			return p
		}
		if err == nil {
			why = " (scripts/ensure-packages chromium succeeded, but no chromium is on PATH)"
		} else {
			why = fmt.Sprintf(" (scripts/ensure-packages chromium: %v: %s)", err, strings.TrimSpace(string(out)))
		}
	}
	msg := "Chromium is not installed and could not be installed" + why +
		"; install Debian's chromium package or set SLUICE_CHROMIUM to a Chrome or Chromium binary"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Browser starts a headless Chromium with a fresh profile, with the flags
// this gateway's machines need (root, no network beyond loopback), and
// returns a context for its first tab. JavaScript exceptions are collected
// in the returned function's answer.
func Browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	// The deadline covers the browser's start too: a browser that hangs
	// fails the test rather than the whole package's timeout.
	parent, cancelTimeout := context.WithTimeout(context.Background(), 2*time.Minute)
	alloc, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		cancelTimeout()
	})

	var (
		mu     sync.Mutex
		errors []string
	)
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok {
			mu.Lock()
			defer mu.Unlock()
			text := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				text += " " + e.ExceptionDetails.Exception.Description
			}
			errors = append(errors, text)
		}
	}); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	// Record what the page's Content-Security-Policy refuses: a refused
	// style or script would leave the page half drawn, silently.
	recordCSP := chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `document.addEventListener("securitypolicyviolation",
				(e) => (window.cspViolations = window.cspViolations || []).push(e.violatedDirective + " " + e.blockedURI));`,
		})
		return chromedp.Void{}, err
	})
	if err := chromedp.Do(ctx, recordCSP); err != nil {
		t.Fatalf("preparing the tab: %v", err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(errors)
	}
}

// WaitText waits until the element's text contains want.
func WaitText(sel, want string) chromedp.Action[chromedp.Void] {
	q, _ := json.Marshal(sel)
	w, _ := json.Marshal(want)
	return chromedp.Poll[chromedp.Void](fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? "").includes(%s)`, q, w),
		chromedp.WithPollingTimeout(20*time.Second))
}

// WaitAttr waits until the element's attribute is want.
func WaitAttr(sel, attr, want string) chromedp.Action[chromedp.Void] {
	q, _ := json.Marshal(sel)
	a, _ := json.Marshal(attr)
	w, _ := json.Marshal(want)
	return chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector(%s)?.getAttribute(%s) === %s`, q, a, w),
		chromedp.WithPollingTimeout(20*time.Second))
}

// DispatchChange fires the change event a person's choice fires; SetValue
// alone does not.
func DispatchChange(id string) chromedp.Action[chromedp.Void] {
	q, _ := json.Marshal(id)
	return chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`document.getElementById(%s).dispatchEvent(new Event("change"))`, q))(ctx, tg)
		return chromedp.Void{}, err
	})
}

// SaveScreenshot writes png under the test's temporary directory and, when
// SLUICE_SCREENSHOT_DIR is set, copies it there for people to look at.
func SaveScreenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("SLUICE_SCREENSHOT_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot: %s", p)
}

// ensurePackages is the path of scripts/ensure-packages, found from the
// test's folder up to the module's root.
func ensurePackages() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "ensure-packages"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's folder")
		}
		dir = parent
	}
}
