package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migrationFiles holds the schema of every supported database, one file per
// version named NNNN_what.sql. Files are append-only: a released migration is
// never edited. They are written in the SQL that SQLite and PostgreSQL share;
// where the two differ, a file names a {{placeholder}} that each dialect
// renders (see dialect.types), so there is one schema source for both.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int64
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version and '_'", base)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return int(a.version - b.version) })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].name, out[i].name, out[i].version)
		}
	}
	return out, nil
}

// migrate brings the schema up to date. Each migration runs in its own
// transaction together with its schema_migrations row, so a crash leaves
// either the old or the new version, and reopening applies nothing twice.
// Processes that start together take turns (see dialect.migrationLock); the
// check of each version inside its transaction makes a turn that finds the
// work done apply nothing.
func migrate(ctx context.Context, db *sql.DB, d dialect) (err error) {
	migrations, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if d.migrationLock != "" {
		if _, err := conn.ExecContext(ctx, d.migrationLock); err != nil {
			return fmt.Errorf("wait for the migration lock: %w", err)
		}
		defer func() {
			// The caller's context may have ended: unlocking must not.
			uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, uerr := conn.ExecContext(uctx, d.migrationUnlock); uerr != nil {
				// A pooled session must never keep the lock: drop it, which
				// releases the lock on the server.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
				err = errors.Join(err, fmt.Errorf("release the migration lock: %w", uerr))
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT PRIMARY KEY,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int64
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if latest := migrations[len(migrations)-1].version; current > latest {
		return fmt.Errorf("database schema version %d is newer than this Sluice supports (%d): upgrade Sluice", current, latest)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		text, err := d.render(m.sql)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if err := apply(ctx, conn, m.version, text); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

func apply(ctx context.Context, conn *sql.Conn, version int64, text string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	// Another process may have applied it between our read and our
	// write lock; the check under the lock makes that harmless.
	var done int
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, version).Scan(&done)
	if err != nil {
		return err
	}
	if done > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, text); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
		version, time.Now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}
