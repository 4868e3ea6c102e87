package e2e

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// dbWork is what the stack's database has done so far: its transactions,
// and its statements where pg_stat_statements is loaded (it needs
// shared_preload_libraries, which a machine's shared PostgreSQL may not
// have; then only transactions are counted).
type dbWork struct {
	xacts      int64
	statements int64 // -1: pg_stat_statements is not loaded
}

// readDBWork reads the counters of the stack's own database (testenv gives
// each stack one, so nothing else is counted). PostgreSQL flushes a
// backend's counts when it commits (at most once a second) and when it
// goes idle (after 10 s): a read lags by a few transactions per
// connection, under 1 % of a benchmark case's thousands.
func readDBWork(ctx context.Context, dbURL string) (dbWork, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return dbWork{}, err
	}
	defer conn.Close(ctx)
	w := dbWork{statements: -1}
	if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return w, err
	}
	if err := conn.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database
		WHERE datname = current_database()`).Scan(&w.xacts); err != nil {
		return w, err
	}
	// The view exists only where the extension is created; this database
	// is the stack's own, thrown away after the benchmark.
	_, _ = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	var calls *int64
	if err := conn.QueryRow(ctx, `SELECT sum(s.calls)::bigint FROM pg_stat_statements s
		JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()`).Scan(&calls); err == nil && calls != nil {
		w.statements = *calls
	}
	return w, nil
}

// reportDBWork reports transactions (and statements, where counted) per
// report between before and after: issue 18 asks for ≤ 10 and ≤ 100.
func reportDBWork(b *testing.B, before, after dbWork, reports int) {
	b.ReportMetric(float64(after.xacts-before.xacts)/float64(reports), "db-tx/report")
	if before.statements >= 0 && after.statements >= 0 {
		b.ReportMetric(float64(after.statements-before.statements)/float64(reports), "db-stmt/report")
	}
}
