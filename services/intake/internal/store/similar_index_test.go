package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
	"takedown/pkg/pdq"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// scanQuery is the lookup as it was before the index (migration 0003's
// self-join, which compares each file with every stored file), with the
// MD5 match added: the reference the indexed lookup must agree with.
const scanQuery = `
	SELECT f.id::text, o.report_id::text, o.id::text, o.name,
		CASE WHEN o.sha256 = f.sha256 THEN 'sha256' WHEN o.md5 = f.md5 THEN 'md5' ELSE 'pdq' END,
		CASE WHEN f.pdq_bits IS NOT NULL AND o.pdq_bits IS NOT NULL THEN bit_count(f.pdq_bits # o.pdq_bits) ELSE 0 END::int,
		p.submitted_at, coalesce(p.ncmec_report_id, 0)
	FROM files f
	JOIN reports r ON r.id = f.report_id
	JOIN files o ON o.report_id <> f.report_id
	JOIN reports p ON p.id = o.report_id AND p.submitted_at < r.submitted_at
	WHERE f.report_id = $1
	  AND (o.sha256 = f.sha256 OR o.md5 = f.md5
	       OR (f.pdq_bits IS NOT NULL AND o.pdq_bits IS NOT NULL AND bit_count(f.pdq_bits # o.pdq_bits) <= $2))
	ORDER BY f.idx, p.submitted_at DESC
	LIMIT 1000`

func scanReportedBefore(ctx context.Context, tb testing.TB, pool *pgxpool.Pool, reportID string, maxDistance int) map[string][]report.Match {
	tb.Helper()
	rows, err := pool.Query(ctx, scanQuery, reportID, maxDistance)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]report.Match{}
	for rows.Next() {
		var fileID string
		var m report.Match
		if err := rows.Scan(&fileID, &m.ReportID, &m.FileID, &m.Name, &m.By, &m.Distance, &m.SubmittedAt, &m.NCMECReportID); err != nil {
			tb.Fatal(err)
		}
		out[fileID] = append(out[fileID], m)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	// The scan leaves matches of one earlier report in any order.
	for _, ms := range out {
		slices.SortStableFunc(ms, func(a, b report.Match) int {
			if c := b.SubmittedAt.Compare(a.SubmittedAt); c != 0 {
				return c
			}
			return strings.Compare(a.FileID, b.FileID)
		})
	}
	return out
}

func openStore(ctx context.Context, tb testing.TB, url string) (*pgxpool.Pool, *store.Store) {
	tb.Helper()
	pool, err := database.Open(ctx, url, "intake")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := database.Migrate(ctx, pool, "intake", store.Migrations); err != nil {
		tb.Fatal(err)
	}
	return pool, store.New(pool)
}

// storedFile is a file row as the lookup sees it.
type storedFile struct {
	sha256, md5 string
	pdq         *pdq.Hash // nil: not an image
}

// addReport stores a report submitted at 'at' with files, and returns its id.
func addReport(ctx context.Context, tb testing.TB, pool *pgxpool.Pool, at time.Time, files ...storedFile) string {
	tb.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO reports (id, submitted_at, submitted_by, incident_time, details, data_key_id, data_key)
		VALUES ($1, $2, 'staff', $2, '{}', 'k', '\x00')`, id, at)
	for i, f := range files {
		var p *string
		if f.pdq != nil {
			s := f.pdq.String()
			p = &s
		}
		b.Queue(`INSERT INTO files (id, report_id, idx, name, object_key, size, content_type, md5, sha1, sha256, pdq, meta)
			VALUES ($1, $2, $3, $4, $8, 1, 'image/jpeg', $5, '', $6, $7, '{}')`,
			uuid.Must(uuid.NewV7()), id, i, fmt.Sprintf("f%d.jpg", i), f.md5, f.sha256, p, uuid.NewString())
	}
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		tb.Fatal(err)
	}
	return id
}

func randomHex(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return fmt.Sprintf("%x", b)
}

func randomPDQ(r *rand.Rand) pdq.Hash {
	var h pdq.Hash
	for i := range h {
		h[i] = byte(r.Uint32())
	}
	return h
}

// nearDuplicate flips k distinct bits of h. Spread flips deal the bits
// round-robin over the hash, so that every piece of the index differs by
// about as much as the others: the case where the pigeonhole is tight.
func nearDuplicate(r *rand.Rand, h pdq.Hash, k int, spread bool) pdq.Hash {
	var bits []int
	if spread {
		stride := 256 / max(k, 1)
		off := r.IntN(stride)
		for i := range k {
			bits = append(bits, (off+i*stride)%256)
		}
	} else {
		bits = r.Perm(256)[:k]
	}
	for _, b := range bits {
		h[b/8] ^= 1 << (7 - b%8)
	}
	return h
}

func testSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TAKEDOWN_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (TAKEDOWN_TEST_SEED repeats it)", seed)
	return seed
}

// The indexed lookup finds exactly what comparing every stored file finds:
// random reports with near-duplicates planted at distances around the
// threshold (some with their differing bits spread evenly over the index's
// pieces), the same bytes, the same MD5 only, files without PDQ, and
// reports submitted at the same instant.
func TestReportedBeforeIndexAgreesWithScan(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pool, s := openStore(ctx, t, testenv.Postgres(t))
	r := rand.New(rand.NewPCG(testSeed(t), 0))

	var stored []storedFile
	var reports []string
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 300 {
		var files []storedFile
		for range 1 + r.IntN(4) {
			f := storedFile{sha256: randomHex(r, 32), md5: randomHex(r, 16)}
			if r.IntN(5) > 0 {
				h := randomPDQ(r)
				f.pdq = &h
			}
			if len(stored) > 0 {
				old := stored[r.IntN(len(stored))]
				switch r.IntN(10) {
				case 0: // the same bytes
					f.sha256, f.md5 = old.sha256, old.md5
				case 1: // the same MD5 only
					f.md5 = old.md5
				case 2, 3, 4, 5: // a near-duplicate around the thresholds tested
					if old.pdq != nil {
						k := []int{0, 1, 9, 10, 11, 29, 30, 31, 32, 33, 42, 43, 44, 45, 60, 64, 70}[r.IntN(17)]
						h := nearDuplicate(r, *old.pdq, k, r.IntN(2) == 0)
						f.pdq = &h
					}
				}
			}
			files = append(files, f)
		}
		stored = append(stored, files...)
		// Every tenth report shares its instant with the one before.
		reports = append(reports, addReport(ctx, t, pool, base.Add(time.Duration(i-i%10/9)*time.Second), files...))
	}
	if _, err := pool.Exec(ctx, `ANALYZE files`); err != nil {
		t.Fatal(err)
	}

	matched := 0
	// 31 is the default (one piece probed within 1 bit, the others 2); 43
	// every piece within 3; 44 the farthest the index serves (one piece
	// within 4); 45 and 64 the scan beyond it; 10 and 1 small radii (at 1,
	// two pieces probed).
	for _, d := range []int{pdq.MatchThreshold, 1, 10, 32, 43, 44, 45, 64} {
		for _, id := range reports {
			rep, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.ReportedBefore(ctx, rep, d)
			if err != nil {
				t.Fatal(err)
			}
			want := scanReportedBefore(ctx, t, pool, id, d)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("distance %d, report %s: indexed lookup differs from the scan (-scan +index):\n%s", d, id, diff)
			}
			for _, ms := range got {
				matched += len(ms)
			}
		}
	}
	if matched < 500 {
		t.Fatalf("only %d matches in all: the data plants too few to compare", matched)
	}
	t.Logf("%d matches compared", matched)
}

// The same MD5 is the same file: NCMEC's and the industry's hash lists
// carry MD5s, and the status page shows how a match was found.
func TestReportedBeforeMatchesTheSameMD5(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, s := openStore(ctx, t, testenv.Postgres(t))
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addReport(ctx, t, pool, at, storedFile{sha256: "aa", md5: "m1"})
	later := addReport(ctx, t, pool, at.Add(time.Second), storedFile{sha256: "bb", md5: "m1"})
	rep, err := s.Get(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ReportedBefore(ctx, rep, pdq.MatchThreshold)
	if err != nil {
		t.Fatal(err)
	}
	if m := got[rep.Files[0].ID]; len(m) != 1 || m[0].By != "md5" {
		t.Fatalf("reported before = %+v, want one match by md5", got)
	}
}

// The lookup reads indexes, not every stored file: PostgreSQL's own count
// of rows read by sequential scans of files does not grow with a lookup
// among 30k stored files (the scan it replaces read them all, twice).
func TestReportedBeforeReadsNoFullTable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// One connection: its statistics are flushed before they are read.
	pool, s := openStore(ctx, t, testenv.Postgres(t)+"&pool_max_conns=1")
	const n = 30000
	if _, err := pool.Exec(ctx, `
		INSERT INTO reports (id, submitted_at, submitted_by, incident_time, details, data_key_id, data_key)
		SELECT gen_random_uuid(), timestamptz '2020-01-01' + i * interval '1 second', 'staff', now(), '{}', 'k', '\x00'
		FROM generate_series(1, $1) i`, n/3); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO files (id, report_id, idx, name, object_key, size, content_type, md5, sha1, sha256, pdq, meta)
		SELECT gen_random_uuid(), r.id, k, 'f', gen_random_uuid()::text, 1, 'image/jpeg', md5(random()::text), '',
			md5(random()::text), md5(random()::text) || md5(random()::text), '{}'
		FROM reports r, generate_series(0, 2) k`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE files; ANALYZE reports`); err != nil {
		t.Fatal(err)
	}
	var old string
	if err := pool.QueryRow(ctx, `SELECT pdq FROM files LIMIT 1`).Scan(&old); err != nil {
		t.Fatal(err)
	}
	h, _ := pdq.ParseHash(old)
	near := nearDuplicate(rand.New(rand.NewPCG(1, 1)), h, pdq.MatchThreshold, true)
	id := addReport(ctx, t, pool, time.Now(), storedFile{sha256: "s", md5: "m", pdq: &near})
	rep, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}

	seqRead := func() int64 {
		t.Helper()
		// Flush this connection's counts, then read them in a new snapshot.
		if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		var v int64
		if err := pool.QueryRow(ctx, `SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables
			WHERE relid = 'files'::regclass`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := seqRead()
	got, err := s.ReportedBefore(ctx, rep, pdq.MatchThreshold)
	if err != nil {
		t.Fatal(err)
	}
	read := seqRead() - before
	if m := got[rep.Files[0].ID]; len(m) != 1 || m[0].Distance != pdq.MatchThreshold {
		t.Fatalf("reported before = %+v, want the planted near-duplicate at distance %d", got, pdq.MatchThreshold)
	}
	if read > n/100 {
		t.Fatalf("one lookup read %d rows of files by sequential scan (of %d stored)", read, n)
	}
	t.Logf("rows read by sequential scans of files: %d", read)
}
