package e2e

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// dbWork is what the stack's database has done so far: its transactions,
// and its statements where pg_stat_statements is loaded (it needs
// shared_preload_libraries, which a machine's shared PostgreSQL may not
// have; then only transactions are counted).
type dbWork struct {
	xacts      int64
	statements int64            // -1: pg_stat_statements is not loaded
	calls      map[string]int64 // statement text → calls, where counted
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
	rows, err := conn.Query(ctx, `SELECT s.query, sum(s.calls)::bigint FROM pg_stat_statements s
		JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() GROUP BY s.query`)
	if err != nil {
		return w, nil // not loaded: transactions only
	}
	w.statements, w.calls = 0, map[string]int64{}
	for rows.Next() {
		var q string
		var n int64
		if err := rows.Scan(&q, &n); err != nil {
			return w, err
		}
		w.calls[q] += n
		w.statements += n
	}
	if err := rows.Err(); err != nil {
		return w, err
	}
	return w, nil
}

// reportDBWork reports transactions (and statements, where counted) per
// report between before and after: issue 18 asks for ≤ 10 and ≤ 100.
// db-tx counts every transaction PostgreSQL counted, the connection pools'
// liveness pings too (each is one: pgxpool pings a connection idle for
// over a second before handing it out); db-begin counts the explicit
// transactions, the services' own units of work. It logs the statements
// that ran most, per report.
func reportDBWork(b *testing.B, before, after dbWork, reports int) {
	per := func(n int64) float64 { return float64(n) / float64(reports) }
	b.ReportMetric(per(after.xacts-before.xacts), "db-tx/report")
	if before.statements < 0 || after.statements < 0 {
		return
	}
	b.ReportMetric(per(after.statements-before.statements), "db-stmt/report")
	delta := map[string]int64{}
	for q, n := range after.calls {
		if d := n - before.calls[q]; d > 0 {
			delta[oneLine(q)] += d
		}
	}
	b.ReportMetric(per(delta["begin"]+delta["begin isolation level repeatable read read only"]), "db-begin/report")
	top := slices.SortedFunc(maps.Keys(delta), func(x, y string) int { return cmp.Compare(delta[y], delta[x]) })
	var out strings.Builder
	for _, q := range top[:min(len(top), 15)] {
		fmt.Fprintf(&out, "\n  %6.2f  %.100s", per(delta[q]), q)
	}
	b.Logf("statements per report, most called first:%s", out.String())
}

var spaces = regexp.MustCompile(`\s+`)

func oneLine(q string) string { return strings.TrimSpace(spaces.ReplaceAllString(q, " ")) }
