package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// OpenPostgres connects to the PostgreSQL database named by dsn (a URL such
// as postgres://sluice:secret@db:5432/sluice?sslmode=require, or key=value
// pairs) and brings its schema up to date. Replicas may open the same
// database at once: migrations are serialized by an advisory lock.
//
// Notes:
//   - The tables live in the connection's current schema; to use another
//     one, add search_path=name to the DSN.
//   - pool_max_conns (default: the number of CPUs, at least 4),
//     pool_max_conn_lifetime and pool_max_conn_idle_time size the
//     connection pool, as they do for pgxpool.
//   - A password in dsn never appears in returned errors.
func OpenPostgres(ctx context.Context, dsn string) (Store, error) {
	if dsn == "" {
		return nil, fmt.Errorf("open postgres: %w", invalid("dsn is empty"))
	}
	// pgxpool's parser understands the pool_* settings and strips them, so
	// that they are not sent to the server as run-time parameters. The pool
	// itself is database/sql's, which shares every query with SQLite.
	db, where, err := openPostgresDB(dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	if err := migrate(ctx, db, postgresDialect); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	// The server runs concurrent writers itself, so one pool serves both.
	return &sqlStore{write: db, read: db, dialect: postgresDialect}, nil
}

// openPostgresDB opens (without connecting) the pool of dsn, and says where
// it points, without the password.
func openPostgresDB(dsn string) (*sql.DB, string, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors redact the password.
		return nil, "", fmt.Errorf("open postgres: %w", err)
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	db := stdlib.OpenDB(*cfg.ConnConfig)
	db.SetMaxOpenConns(int(cfg.MaxConns))
	db.SetMaxIdleConns(int(cfg.MaxConns))
	db.SetConnMaxLifetime(cfg.MaxConnLifetime)
	db.SetConnMaxIdleTime(cfg.MaxConnIdleTime)
	return db, where, nil
}

func classifyPostgres(err error) constraint {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return constraintNone
	}
	switch pe.Code {
	case "23505": // unique_violation
		return constraintUnique
	case "23503": // foreign_key_violation
		return constraintForeignKey
	}
	return constraintNone
}
