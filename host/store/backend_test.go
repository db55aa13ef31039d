package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the raw connections below

	"github.com/sluicehq/sluice/host/internal/testenv"
)

// backend makes empty databases of one kind for the conformance tests, which
// run every Store method against each: the real SQLite file and the real
// PostgreSQL server that `make test` starts.
type backend struct {
	name string
	// newDB returns the location of a new, empty database (a file path or
	// a DSN), removed when the test ends.
	newDB func(t testing.TB) string
	open  func(ctx context.Context, loc string) (Store, error)
	// raw opens loc with the bare driver, to look behind the Store.
	raw func(t testing.TB, loc string) *sql.DB
}

var sqliteBackend = backend{
	name:  "sqlite",
	newDB: func(t testing.TB) string { return filepath.Join(t.TempDir(), "nested", "dir", "sluice.db") },
	open:  OpenSQLite,
	raw: func(t testing.TB, loc string) *sql.DB {
		return rawOpen(t, "sqlite", loc)
	},
}

var postgresBackend = backend{
	name:  "postgres",
	newDB: testenv.PostgresSchema,
	open:  OpenPostgres,
	raw: func(t testing.TB, loc string) *sql.DB {
		return rawOpen(t, "pgx", loc)
	},
}

func rawOpen(t testing.TB, driver, loc string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// eachBackend runs test once per backend, as subtests named after them.
func eachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range []backend{sqliteBackend, postgresBackend} {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// openNew opens a store on a new, empty database of backend b, closed at the
// end of the test, and returns its location too.
func openNew(t testing.TB, b backend) (Store, string) {
	t.Helper()
	loc := b.newDB(t)
	return openAt(t, b, loc), loc
}

func openAt(t testing.TB, b backend, loc string) Store {
	t.Helper()
	st, err := b.open(context.Background(), loc)
	if err != nil {
		t.Fatalf("open %s: %v", b.name, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestNewPostgresSchemaIsolates(t *testing.T) {
	a, _ := openNew(t, postgresBackend)
	b, _ := openNew(t, postgresBackend)
	mustCreateClient(t, a, "only-in-a", "eng")
	if got, err := b.ListClients(context.Background()); err != nil || len(got) != 0 {
		t.Errorf("a second schema sees %+v, %v; want nothing", got, err)
	}
}
