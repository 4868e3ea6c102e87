package database

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrations is one named set of SQL files, applied in file name order:
// migrations/*.sql of FS, which is a package's
//
//	//go:embed migrations/*.sql
//
// The name keeps sets apart in the bookkeeping table, so a service can apply
// the shared outbox and inbox sets and its own.
type Migrations struct {
	Name string
	FS   fs.FS
}

// Migrate creates schema if needed and applies every set's files that have not
// been applied yet, each file in its own transaction with search_path set to
// schema. A session advisory lock keyed by the schema makes concurrent
// starts of several replicas apply each file once.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, sets ...Migrations) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	defer conn.Release()

	lockKey := "takedown.migrate." + schema
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, lockKey); err != nil {
		return fmt.Errorf("migrate %s: lock: %w", schema, err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, lockKey) //nolint:errcheck // the lock dies with the session anyway

	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+ident); err != nil {
		return fmt.Errorf("migrate %s: create schema: %w", schema, err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+ident+`.schema_migrations (
		name       text PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate %s: bookkeeping table: %w", schema, err)
	}
	for _, set := range sets {
		files, err := fs.Glob(set.FS, "migrations/*.sql")
		if err != nil {
			return fmt.Errorf("migrate %s: %w", schema, err)
		}
		sort.Strings(files)
		for _, f := range files {
			name := path.Join(set.Name, path.Base(f))
			sql, err := fs.ReadFile(set.FS, f)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", name, err)
			}
			err = InTx(ctx, conn, func(tx pgx.Tx) error {
				var done bool
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+ident+`.schema_migrations WHERE name = $1)`, name).Scan(&done); err != nil || done {
					return err
				}
				if _, err := tx.Exec(ctx, `SET LOCAL search_path = `+ident); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, string(sql)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO `+ident+`.schema_migrations (name) VALUES ($1)`, name)
				return err
			})
			if err != nil {
				return fmt.Errorf("migrate %s: %s: %w", schema, name, err)
			}
		}
	}
	return nil
}
