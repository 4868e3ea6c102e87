package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/pdq"
	"takedown/pkg/testenv"
)

// BenchmarkReportedBefore measures "reported before?" per file at two
// history sizes in the same run: p99 at 10k stored hashes (the baseline)
// and at TAKEDOWN_BENCH_HASHES (default 1M, so that make bench stays in
// minutes; 10M is the figure in the README:
// TAKEDOWN_BENCH_HASHES=10000000), their ratio (flat cost: ≤ 2), and the
// disk of the PDQ piece indexes per million hashes. Each size gets its own
// database, dropped after. Every lookup must find exactly the
// near-duplicates planted within the threshold.
func BenchmarkReportedBefore(b *testing.B) {
	big := testenv.EnvInt(b, "TAKEDOWN_BENCH_HASHES", 1_000_000)
	for b.Loop() {
		base := lookupP99(b, 10_000)
		p99 := lookupP99(b, big)
		b.ReportMetric(float64(p99.Microseconds())/1000, fmt.Sprintf("p99-ms/file@%d", big))
		b.ReportMetric(float64(base.Microseconds())/1000, "p99-ms/file@10000")
		b.ReportMetric(float64(p99)/float64(base), "p99-ratio")
	}
}

// lookupP99 stores n files with random PDQ hashes (a third of them in
// reports of three), plants near-duplicates of 20 query images, and returns
// the p99 of 400 lookups of one-file reports.
func lookupP99(b *testing.B, n int) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	pool, s := openStore(ctx, b, testenv.Postgres(b))
	exec := func(sql string, args ...any) {
		b.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", strings.Fields(sql)[0], err)
		}
	}
	start := time.Now()
	loadHistory(ctx, b, pool, n/3, 3)

	// Queries: 20 images, each with near-duplicates stored at distances
	// 0, 15 and 31 (found) and 32 and 40 (not found).
	r := rand.New(rand.NewPCG(uint64(n), 18))
	var queries []string
	for range 20 {
		h := randomPDQ(r)
		var old []storedFile
		for _, k := range []int{0, 15, 31, 32, 40} {
			d := nearDuplicate(r, h, k, k == 31)
			old = append(old, storedFile{sha256: randomHex(r, 32), md5: randomHex(r, 16), pdq: &d})
		}
		addReport(ctx, b, pool, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), old...)
		queries = append(queries, addReport(ctx, b, pool, time.Now(), storedFile{sha256: randomHex(r, 32), md5: randomHex(r, 16), pdq: &h}))
	}
	exec(`VACUUM ANALYZE files`)
	exec(`VACUUM ANALYZE reports`)
	var indexBytes, tableBytes int64
	if err := pool.QueryRow(ctx, `SELECT
			(SELECT sum(pg_relation_size(indexrelid)) FROM pg_index WHERE indrelid = 'files'::regclass
				AND indexrelid::regclass::text LIKE 'files_pdq_%'),
			pg_relation_size('files')`).Scan(&indexBytes, &tableBytes); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d hashes: loaded and indexed in %v; PDQ piece indexes %.0f MB per million hashes (files table %.0f MB per million)",
		n, time.Since(start).Round(time.Second), float64(indexBytes)/float64(n), float64(tableBytes)/float64(n))
	// Bytes per hash are MB per million hashes.
	b.ReportMetric(float64(indexBytes)/float64(n), fmt.Sprintf("index-MB/Mhash@%d", n))

	var took []time.Duration
	for i := range 400 {
		rep, err := s.Get(ctx, queries[i%len(queries)])
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		got, err := s.ReportedBefore(ctx, rep, pdq.MatchThreshold)
		took = append(took, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if m := got[rep.Files[0].ID]; len(m) != 3 {
			b.Fatalf("%d hashes: %d matches, want the 3 planted within %d bits: %+v", n, len(m), pdq.MatchThreshold, m)
		}
	}
	slices.Sort(took)
	p50, p99 := took[len(took)/2], took[len(took)*99/100]
	b.Logf("%d hashes: per file p50 %v, p99 %v", n, p50, p99)
	return p99
}

// loadHistory stores n reports of filesEach files each, with random hashes
// (MD5, SHA-1, SHA-256, PDQ) and varied details: submitters, uploaders,
// statuses, test reports, NCMEC report ids and last changes. It loads
// without the secondary indexes, then builds them from their own
// definitions (the migrations'), as a restore would: far faster than
// keeping a score of indexes current row by row.
func loadHistory(ctx context.Context, b *testing.B, pool *pgxpool.Pool, n, filesEach int) {
	b.Helper()
	exec := func(sql string, args ...any) {
		b.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", strings.Fields(sql)[0], err)
		}
	}
	rows, _ := pool.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes
		WHERE tablename IN ('files', 'reports') AND schemaname = 'intake' AND indexname NOT IN (SELECT conname FROM pg_constraint)`)
	defs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Def string }])
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range defs {
		exec(`DROP INDEX ` + d.Name)
	}
	// One report in 20 is a test report; one in 10 still filing, one in
	// 100 failed; the rest finished with an NCMEC report id of their own.
	exec(`INSERT INTO reports (id, submitted_at, submitted_by, incident_time, details, data_key_id, data_key,
			status, ncmec_state, ncmec_report_id, updated_at)
		SELECT gen_random_uuid(), timestamptz '2020-01-01' + i * interval '1 second', 'staff' || i % 50, now(),
			jsonb_build_object('platform', 'wiki', 'test', i % 20 = 0,
				'uploader', jsonb_build_object('username', 'user' || i, 'email', 'User' || i || '@example.org')),
			'k', '\x00', s.state, s.state, CASE WHEN s.state = 'finished' THEN i END,
			timestamptz '2020-01-01' + i * interval '1 second' + (i % 997) * interval '1 minute'
		FROM generate_series(1, $1) i
		CROSS JOIN LATERAL (SELECT CASE WHEN i % 100 = 0 THEN 'failed' WHEN i % 10 = 0 THEN 'uploading' ELSE 'finished' END AS state) s`, n)
	exec(`INSERT INTO files (id, report_id, idx, name, object_key, size, content_type, md5, sha1, sha256, pdq, meta)
		SELECT gen_random_uuid(), r.id, k, 'f', r.id::text || k, 1, 'image/jpeg', md5(random()::text),
			left(md5(random()::text) || md5(random()::text), 40),
			md5(random()::text) || md5(random()::text), md5(random()::text) || md5(random()::text), '{}'
		FROM reports r, generate_series(0, $1 - 1) k`, filesEach)
	exec(`SET maintenance_work_mem = '512MB'`)
	for _, d := range defs {
		exec(d.Def)
	}
}
