package testenv

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
)

// Schema returns a pool on this test's database, in schema, with the given
// migration sets applied; it is closed when the test ends.
func Schema(tb testing.TB, schema string, sets ...database.Migrations) *pgxpool.Pool {
	tb.Helper()
	pool, err := database.Open(tb.Context(), Postgres(tb), schema)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := database.Migrate(tb.Context(), pool, schema, sets...); err != nil {
		tb.Fatal(err)
	}
	return pool
}
