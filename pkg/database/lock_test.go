package database_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/database"
	"takedown/pkg/testenv"
)

// A missing row is created and locked; an existing one is locked as it is.
func TestLockOrCreate(t *testing.T) {
	ctx := t.Context()
	pool, err := database.Open(ctx, testenv.Postgres(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	scan := func(row pgx.Row) (n int, err error) { return n, row.Scan(&n) }
	const (
		lock   = `SELECT n FROM things WHERE id = $1 FOR UPDATE`
		create = `INSERT INTO things (id) VALUES ($1) ON CONFLICT DO NOTHING`
	)
	err = database.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE things (id text PRIMARY KEY, n int NOT NULL DEFAULT 1) ON COMMIT DROP`); err != nil {
			return err
		}
		if n, err := database.LockOrCreate(ctx, tx, scan, lock, create, "a"); err != nil || n != 1 {
			t.Errorf("missing row: %d, %v; want it created (1)", n, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE things SET n = 2 WHERE id = 'a'`); err != nil {
			return err
		}
		if n, err := database.LockOrCreate(ctx, tx, scan, lock, create, "a"); err != nil || n != 2 {
			t.Errorf("existing row: %d, %v; want it as it is (2)", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
