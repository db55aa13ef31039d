package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// BundleVerification says how the signature of a bundle is checked, as
// OPA's own bundle verification does (opa build --signing-key, then
// opa run --verification-key): the bundle's .signatures.json must hold a
// JWT signed with the key whose public half this is, over the hashes of
// every file.
type BundleVerification struct {
	// PublicKey is the PEM public key, or the HMAC secret for HS256.
	PublicKey string
	// KeyID is the key's id in the signature; default "default", as opa's.
	KeyID string
	// Algorithm is the JWT algorithm; default RS256.
	Algorithm string
	// Scope, when set, must match the signature's scope.
	Scope string
}

// maxBundleBytes bounds what is read of a bundle: a policy set is
// kilobytes, and its data megabytes at most.
const maxBundleBytes = 256 << 20

// readBundle reads an OPA bundle (.tar.gz) with OPA's bundle reader,
// verifying its signature when v is set (and refusing an unsigned one),
// and returns it as the file system the rest of the engine reads: its
// .rego files at their paths, and its data as one data.json at the root.
func readBundle(r io.Reader, v *BundleVerification) (fs.FS, error) {
	reader := bundle.NewCustomReader(bundle.NewTarballLoader(r)).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(maxBundleBytes)
	if v == nil {
		reader = reader.WithSkipBundleVerification(true)
	} else {
		keyID, alg := v.KeyID, v.Algorithm
		if keyID == "" {
			keyID = "default"
		}
		if alg == "" {
			alg = "RS256"
		}
		keys := map[string]*bundle.KeyConfig{keyID: {Key: v.PublicKey, Algorithm: alg, Scope: v.Scope}}
		reader = reader.WithBundleVerificationConfig(bundle.NewVerificationConfig(keys, keyID, v.Scope, nil))
	}
	// The reader holds the bundle to its manifest's roots: a module or a
	// data document outside them is an error.
	b, err := reader.Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	if err := checkRoots(b.Manifest); err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	files := fstest.MapFS{}
	for _, m := range b.Modules {
		name := strings.TrimPrefix(m.Path, "/")
		if !strings.HasSuffix(name, ".rego") {
			continue
		}
		files[name] = &fstest.MapFile{Data: m.Raw}
	}
	if len(b.Data) > 0 {
		data, err := json.Marshal(b.Data)
		if err != nil {
			return nil, fmt.Errorf("read bundle: data: %w", err)
		}
		files["data.json"] = &fstest.MapFile{Data: data}
	}
	return files, nil
}

// checkRoots refuses a bundle whose manifest claims, among its roots, a
// document the gateway writes (data.sluice.tiers, departments, clients,
// derived) or a root above one (sluice, or the whole of data): OPA gives
// a root's documents to its bundle alone, and these belong to the
// gateway's configuration and store. A bundle without roots (OPA's
// default, the whole of data) is read as before: its data files may not
// write those documents, and its rules may read them.
func checkRoots(m bundle.Manifest) error {
	if m.Roots == nil || (len(*m.Roots) == 1 && (*m.Roots)[0] == "") {
		return nil
	}
	for _, root := range *m.Roots {
		for _, p := range gatewayPaths {
			owned := strings.TrimPrefix(p, "/")
			if bundle.RootPathsOverlap(root, owned) {
				return fmt.Errorf("manifest root %q overlaps data.%s, which the gateway writes from its configuration and store; "+
					"declare the bundle's own roots instead, such as \"sluice/authz\" for the rules and a root of its own for its data",
					root, strings.ReplaceAll(owned, "/", "."))
			}
		}
	}
	return nil
}

// OpenBundle reads the OPA bundle file at path as the engine reads it (see
// Source.Bundle), verifying its signature when v is set, for the tools
// that test and check a bundle before it ships.
func OpenBundle(path string, v *BundleVerification) (fs.FS, error) {
	fsys, err := readBundleFile(path, v)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return fsys, nil
}

// readBundleFile reads the bundle file at path.
func readBundleFile(path string, v *BundleVerification) (fs.FS, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return readBundle(bytes.NewReader(src), v)
}

// bundleFetchTimeout bounds one download of a bundle.
const bundleFetchTimeout = 30 * time.Second

// remoteBundle is the last bundle downloaded from a bundle server, kept to
// answer a 304 Not Modified and between reloads.
type remoteBundle struct {
	mu   sync.Mutex
	etag string
	body []byte
}

// fetch downloads the bundle at url unless the server answers that the
// copy kept, by its ETag, is current, and reports whether it changed. The
// kept copy stays when the download fails.
func (rb *remoteBundle) fetch(ctx context.Context, client *http.Client, url string) (changed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, bundleFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, fmt.Errorf("fetch bundle: %w", err)
	}
	rb.mu.Lock()
	etag, have := rb.etag, rb.body != nil
	rb.mu.Unlock()
	if have && etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Errorf("fetch bundle: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && have:
		return false, nil
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("fetch bundle %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBundleBytes+1))
	if err != nil {
		return false, fmt.Errorf("fetch bundle: %w", err)
	}
	if len(body) > maxBundleBytes {
		return false, fmt.Errorf("fetch bundle %s: larger than %d bytes", url, maxBundleBytes)
	}
	rb.mu.Lock()
	defer rb.mu.Unlock()
	changed = !bytes.Equal(body, rb.body)
	rb.etag, rb.body = resp.Header.Get("ETag"), body
	return changed, nil
}

// current returns the body last downloaded.
func (rb *remoteBundle) current() []byte {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.body
}

// Poll downloads the bundles of the sets whose source is a bundle server
// (Source.BundleURL) every interval, with the ETag of the last download so
// that an unchanged bundle costs a 304, and reloads when one changed, until
// ctx is done. A failed download keeps the set in force and is reported to
// SetConfig.Reloaded like a failed reload. With no bundle server, Poll
// returns at once.
func (s *Set) Poll(ctx context.Context, interval time.Duration) {
	var slots []*slot
	for _, sl := range []*slot{s.enforced, s.shadow} {
		if sl != nil && sl.src.BundleURL != "" {
			slots = append(slots, sl)
		}
	}
	if len(slots) == 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, sl := range slots {
			changed, err := sl.remote.fetch(ctx, s.httpClient(), sl.src.BundleURL)
			switch {
			case err != nil:
				sl.mu.Lock()
				sl.status.LastError = &ReloadError{At: time.Now(), Problems: problemsOf("", err)}
				sl.mu.Unlock()
				if s.cfg.Reloaded != nil {
					s.cfg.Reloaded(sl.name, err)
				}
			case changed:
				s.reloadMu.Lock()
				_ = s.reload(ctx, sl) // reported through Status and SetConfig.Reloaded
				s.reloadMu.Unlock()
			}
		}
	}
}

func (s *Set) httpClient() *http.Client {
	if s.cfg.HTTPClient != nil {
		return s.cfg.HTTPClient
	}
	return http.DefaultClient
}
