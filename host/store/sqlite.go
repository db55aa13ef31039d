package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteReaders is the size of the read pool. WAL lets readers run beside
// the single writer; a few are enough for admin listings and reports.
const sqliteReaders = 4

// OpenSQLite opens (creating if needed) the SQLite database at path and
// brings its schema up to date. The parent directory is created (0700) and
// the file is made readable by its owner only (0600): the ledger says who
// used what, and SQLite gives its -wal and -shm files the database file's
// mode, so those follow. The
// database runs in WAL mode with foreign keys on and a busy timeout, so that
// other processes holding the file (a CLI beside a running server) wait
// instead of failing.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open sqlite: %w", invalid("path is empty"))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite %s: create directory: %w", path, err)
	}
	if err := ownerOnly(abs); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write, err := openSQLitePool(ctx, abs, false)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := migrate(ctx, write, sqliteDialect); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	read, err := openSQLitePool(ctx, abs, true)
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &sqlStore{write: write, read: read, dialect: sqliteDialect}, nil
}

// ownerOnly creates the database file 0600 before SQLite opens it (SQLite
// would create it 0644, less the umask), and narrows an existing one made by
// an older Sluice, with its -wal and -shm files.
func ownerOnly(abs string) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

func openSQLitePool(ctx context.Context, abs string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// NORMAL is durable across application crashes in WAL mode; only an
	// OS crash or power loss can lose the last commits.
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// Take the write lock at BEGIN so that a transaction never fails
		// halfway when it upgrades from reading to writing.
		q.Set("_txlock", "immediate")
	}
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	if readOnly {
		db.SetMaxOpenConns(sqliteReaders)
		db.SetMaxIdleConns(sqliteReaders)
	} else {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
	}
	// Connections are cheap to keep and each reopen re-runs the pragmas.
	db.SetConnMaxLifetime(0)
	for attempt := 1; ; attempt++ {
		err := db.PingContext(ctx)
		if err == nil {
			return db, nil
		}
		// Several processes opening a new database at once all switch it
		// to WAL, and SQLite answers one of them SQLITE_BUSY without
		// calling the busy handler (waiting could deadlock two readers
		// that both want to write): back off and open again, which runs
		// the pragmas again.
		if !isBusy(err) || attempt == busyRetries {
			_ = db.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			_ = db.Close()
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}

// busyRetries bounds the opens of a database that stays busy: about 3 s of
// back-off in all.
const busyRetries = 35

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

func classifySQLite(err error) constraint {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return constraintNone
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return constraintUnique
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return constraintForeignKey
	}
	return constraintNone
}
