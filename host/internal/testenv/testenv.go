// Package testenv gives tests the real services they need: the Redis and
// PostgreSQL servers that `make test` starts (scripts/test-services), named by
// SLUICE_TEST_REDIS and SLUICE_TEST_POSTGRES.
//
// Outside CI a test whose service is not configured is skipped with a message
// saying how to run it; under CI (CI=true) it fails, so that a missing service
// can never turn a red run green.
package testenv

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
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

// PostgresSchema creates a schema of the test's own in the test database and
// returns a connection string whose search_path selects it, so that tests
// and packages running at the same time never meet. The schema is dropped
// when the test ends.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := Postgres(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "sluice_test_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		db.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SLUICE_TEST_POSTGRES is not a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
