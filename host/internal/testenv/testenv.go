// Package testenv gives tests the real services they need: the Redis and
// PostgreSQL servers that `make test` starts (scripts/test-services), named by
// SLUICE_TEST_REDIS and SLUICE_TEST_POSTGRES.
//
// Outside CI a test whose service is not configured is skipped with a message
// saying how to run it; under CI (CI=true) it fails, so that a missing service
// can never turn a red run green.
package testenv

import (
	"os"
	"testing"
)

// Redis returns the URL of the test Redis server (a database of its own, which
// tests may flush).
func Redis(t testing.TB) string {
	t.Helper()
	return need(t, "SLUICE_TEST_REDIS", "Redis")
}

// Postgres returns the connection string of the test PostgreSQL database.
func Postgres(t testing.TB) string {
	t.Helper()
	return need(t, "SLUICE_TEST_POSTGRES", "PostgreSQL")
}

func need(t testing.TB, env, what string) string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		return v
	}
	msg := what + " is not configured (" + env + " is empty); run the tests with `make test`, " +
		"or start the services with: eval \"$(scripts/test-services)\""
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
