package store_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"takedown/pkg/pdq"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// BenchmarkSearch measures one page of the reports list (store.Search) per
// kind of query at TAKEDOWN_BENCH_REPORTS reports (default 1M, one file
// each; built by loadHistory, as BenchmarkReportedBefore's history is):
// p50 and p99 over 50 queries of each kind, each of which must find what it
// looks for. The figures are in the README.
func BenchmarkSearch(b *testing.B) {
	n := testenv.EnvInt(b, "TAKEDOWN_BENCH_REPORTS", 1_000_000)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	pool, s := openStore(ctx, b, testenv.Postgres(b))
	start := time.Now()
	loadHistory(ctx, b, pool, n, 1)
	for _, t := range []string{"files", "reports"} {
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+t); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d reports loaded and indexed in %v", n, time.Since(start).Round(time.Second))

	// 50 reports, spread over the history, to look for.
	rows, err := pool.Query(ctx, `SELECT r.id::text, coalesce(r.ncmec_report_id, 0), r.submitted_by, r.submitted_at,
			r.details -> 'uploader' ->> 'username', r.details -> 'uploader' ->> 'email', f.md5, f.sha1, f.sha256, f.pdq
		FROM files f TABLESAMPLE SYSTEM (1) JOIN reports r ON r.id = f.report_id
		WHERE r.ncmec_report_id IS NOT NULL LIMIT 50`)
	if err != nil {
		b.Fatal(err)
	}
	type target struct {
		id                                 string
		ncmec                              int64
		by                                 string
		at                                 time.Time
		user, email, md5, sha1, sha256, ph string
	}
	var targets []target
	for rows.Next() {
		var t target
		if err := rows.Scan(&t.id, &t.ncmec, &t.by, &t.at, &t.user, &t.email, &t.md5, &t.sha1, &t.sha256, &t.ph); err != nil {
			b.Fatal(err)
		}
		targets = append(targets, t)
	}
	if rows.Err() != nil || len(targets) == 0 {
		b.Fatalf("no reports to look for: %v", rows.Err())
	}

	// Each kind: the filter for target t, and whether the answer must
	// hold t itself (a page of a broad filter holds other reports).
	kinds := []struct {
		name   string
		filter func(t target) store.ReportFilter
		holdsT bool
	}{
		{"newest", func(target) store.ReportFilter { return store.ReportFilter{} }, false},
		{"production", func(target) store.ReportFilter { return store.ReportFilter{Environment: store.EnvProduction} }, false},
		{"test", func(target) store.ReportFilter { return store.ReportFilter{Environment: store.EnvTest} }, false},
		{"status-failed", func(target) store.ReportFilter {
			return store.ReportFilter{Statuses: []report.Status{report.StatusFailed}}
		}, false},
		{"sort-changed", func(target) store.ReportFilter { return store.ReportFilter{Sort: store.SortChanged} }, false},
		{"submitter", func(t target) store.ReportFilter { return store.ReportFilter{SubmittedBy: t.by} }, false},
		{"day", func(t target) store.ReportFilter {
			return store.ReportFilter{From: t.at.Truncate(24 * time.Hour), To: t.at.Truncate(24 * time.Hour).Add(24 * time.Hour)}
		}, false},
		{"q-id", func(t target) store.ReportFilter { return store.ReportFilter{Q: t.id} }, true},
		{"q-ncmec", func(t target) store.ReportFilter { return store.ReportFilter{Q: strconv.FormatInt(t.ncmec, 10)} }, true},
		{"q-username", func(t target) store.ReportFilter { return store.ReportFilter{Q: t.user} }, true},
		{"q-email", func(t target) store.ReportFilter { return store.ReportFilter{Q: t.email} }, true},
		{"q-md5", func(t target) store.ReportFilter { return store.ReportFilter{Q: t.md5} }, true},
		{"q-sha1", func(t target) store.ReportFilter { return store.ReportFilter{Q: t.sha1} }, true},
		{"q-sha256", func(t target) store.ReportFilter { return store.ReportFilter{Q: t.sha256} }, true},
		{"q-pdq", func(t target) store.ReportFilter { return store.ReportFilter{Q: t.ph} }, true},
	}
	for b.Loop() {
		for _, k := range kinds {
			var took []time.Duration
			for _, t := range targets {
				f := k.filter(t)
				t0 := time.Now()
				page, err := s.Search(ctx, f, pdq.MatchThreshold)
				took = append(took, time.Since(t0))
				if err != nil {
					b.Fatalf("%s: %v", k.name, err)
				}
				if len(page.Reports) == 0 || (k.holdsT && !slices.ContainsFunc(page.Reports, func(r report.Report) bool { return r.ID == t.id })) {
					b.Fatalf("%s %+v: %d reports, without %s", k.name, f, len(page.Reports), t.id)
				}
				if !k.holdsT && page.Next != "" {
					// The second page too: keyset paging costs the same deep in the list.
					f.Cursor = page.Next
					t0 := time.Now()
					if _, err := s.Search(ctx, f, pdq.MatchThreshold); err != nil {
						b.Fatalf("%s, page 2: %v", k.name, err)
					}
					took = append(took, time.Since(t0))
				}
			}
			slices.Sort(took)
			p50, p99 := took[len(took)/2], took[len(took)*99/100]
			b.Logf("%d reports, %s: p50 %v, p99 %v", n, k.name, p50, p99)
			b.ReportMetric(float64(p99.Microseconds())/1000, fmt.Sprintf("p99-ms/%s", k.name))
			b.ReportMetric(float64(p50.Microseconds())/1000, fmt.Sprintf("p50-ms/%s", k.name))
		}
	}
}
