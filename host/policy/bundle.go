package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing/fstest"

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
	b, err := reader.Read()
	if err != nil {
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

// readBundleFile reads the bundle file at path.
func readBundleFile(path string, v *BundleVerification) (fs.FS, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return readBundle(bytes.NewReader(src), v)
}
