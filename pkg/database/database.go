// Package database opens the PostgreSQL pool, runs transactions and applies
// each service's embedded migrations to its own schema.
package database

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Open connects a pool to url and checks the server answers. Every
// connection's search_path is schema, so a service's SQL names its own
// tables without qualifying them and cannot touch another schema by accident.
func Open(ctx context.Context, url, schema string) (*pgxpool.Pool, error) {
	return OpenAs(ctx, url, schema, "")
}

// OpenAs is Open with every connection working as role from its start (the
// "role" startup parameter is SET ROLE before the first statement), for a
// service that must run with fewer privileges than the login that migrates
// its schema. An empty role keeps the login's.
func OpenAs(ctx context.Context, url, schema, role string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = schema
	}
	who := cfg.ConnConfig.User
	if role != "" {
		cfg.ConnConfig.RuntimeParams["role"] = role
		who = role
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s@%s/%s: %w", who, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// Beginner is what InTx needs: a pool or a connection.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// InTx runs fn in a transaction and commits it when fn returns nil. It
// returns fn's error, or the commit's: a failed commit is never swallowed.
func InTx(ctx context.Context, db Beginner, fn func(pgx.Tx) error) (err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			// Rollback after a failed statement or commit is expected to
			// fail too; the first error is the one that matters.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// LockOrCreate returns the row that lock (a SELECT ... FOR UPDATE of at
// most one row, with args) finds, read by scan, locked for the rest of tx.
// When there is none, it runs create (an INSERT ... ON CONFLICT DO NOTHING,
// with the same args) and locks again: most rows exist already, so a lock
// costs one statement, and a row another transaction creates meanwhile is
// waited for, not duplicated. scan must let pgx.ErrNoRows through (%w).
func LockOrCreate[T any](ctx context.Context, tx pgx.Tx, scan func(pgx.Row) (T, error), lock, create string, args ...any) (T, error) {
	v, err := scan(tx.QueryRow(ctx, lock, args...))
	if !errors.Is(err, pgx.ErrNoRows) {
		return v, err
	}
	if _, err := tx.Exec(ctx, create, args...); err != nil {
		return v, err
	}
	return scan(tx.QueryRow(ctx, lock, args...))
}

// IsUniqueViolation reports whether err is PostgreSQL's unique_violation.
func IsUniqueViolation(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && pgErr.SQLState() == "23505"
}
