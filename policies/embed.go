// Package policies ships Sluice's default Rego admission policy and its Rego
// unit tests, so that the binary carries a working policy without any files
// on disk. README.md describes the contract between the gateway and the policy.
package policies

import "embed"

// FS holds every .rego file of the default policy, the *_test.rego files
// included: the engine skips tests when it loads a policy, and the tests run
// from the same bytes that ship.
//
//go:embed *.rego
var FS embed.FS
