package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/pdq"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// listed is a report as the search tests store it.
type listed struct {
	at              time.Time
	by              string
	status          report.Status
	test            bool
	ncmec           int64
	past            []int64
	username, email string
	files           []listedFile
}

type listedFile struct {
	md5, sha1, sha256 string
	pdq               *pdq.Hash
}

// addListed stores r and returns its id.
func addListed(t *testing.T, ctx context.Context, pool *pgxpool.Pool, r listed) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	d := report.Details{Platform: "wiki", Test: r.test}
	d.Uploader.Username, d.Uploader.Email = r.username, r.email
	details, _ := json.Marshal(d)
	if r.by == "" {
		r.by = "staff"
	}
	if r.status == "" {
		r.status = report.StatusFinished
	}
	if r.past == nil {
		r.past = []int64{}
	}
	var ncmec *int64
	if r.ncmec != 0 {
		ncmec = &r.ncmec
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO reports (id, submitted_at, submitted_by, incident_time, details, data_key_id, data_key, status,
			ncmec_report_id, past_ncmec_report_ids, updated_at)
		VALUES ($1, $2, $3, $2, $4, 'k', '\x00', $5, $6, $7, $2)`, id, r.at, r.by, details, r.status, ncmec, r.past)
	for i, f := range r.files {
		var p *string
		if f.pdq != nil {
			s := f.pdq.String()
			p = &s
		}
		b.Queue(`INSERT INTO files (id, report_id, idx, name, object_key, size, content_type, md5, sha1, sha256, pdq, meta)
			VALUES ($1, $2, $3, 'f.jpg', $4, 1, 'image/jpeg', $5, $6, $7, $8, '{}')`,
			uuid.Must(uuid.NewV7()), id, i, uuid.NewString(), f.md5, f.sha1, f.sha256, p)
	}
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	return id
}

func search(t *testing.T, ctx context.Context, s *store.Store, f store.ReportFilter) store.SearchPage {
	t.Helper()
	page, err := s.Search(ctx, f, pdq.MatchThreshold)
	if err != nil {
		t.Fatalf("search %+v: %v", f, err)
	}
	return page
}

func ids(page store.SearchPage) []string {
	out := []string{}
	for _, r := range page.Reports {
		out = append(out, r.ID)
	}
	return out
}

func sorted(s ...string) []string {
	s = append([]string{}, s...)
	slices.Sort(s)
	return s
}

// q finds a report by each thing that names it, and nothing else: our id,
// NCMEC's id (this filing's and an earlier one's), the uploader's username
// and e-mail (any case), each file hash (any case), and a PDQ hash within
// the distance; a PDQ hash beyond it finds nothing.
func TestSearchFindsAReportByEachKindOfQuery(t *testing.T) {
	t.Parallel()
	ctx, pool, s := attentionDB(t)
	r := rand.New(rand.NewPCG(16, 1))
	img := randomPDQ(r)
	near, far := nearDuplicate(r, img, pdq.MatchThreshold, true), nearDuplicate(r, img, pdq.MatchThreshold+9, false)
	file := listedFile{md5: randomHex(r, 16), sha1: randomHex(r, 20), sha256: randomHex(r, 32), pdq: &img}
	now := time.Now().UTC()
	alice := addListed(t, ctx, pool, listed{at: now.Add(-3 * time.Hour), ncmec: 1001, past: []int64{900},
		username: "alice", email: "Alice@Example.org", files: []listedFile{file}})
	// The same bytes in a later report: the SHA-256 finds both.
	again := addListed(t, ctx, pool, listed{at: now.Add(-2 * time.Hour), username: "bob",
		files: []listedFile{{md5: randomHex(r, 16), sha1: randomHex(r, 20), sha256: file.sha256}}})
	farImage := addListed(t, ctx, pool, listed{at: now.Add(-time.Hour), username: "carol", ncmec: 1002,
		files: []listedFile{{md5: randomHex(r, 16), sha1: randomHex(r, 20), sha256: randomHex(r, 32), pdq: &far}}})
	for _, c := range []struct {
		name, q string
		want    []string
	}{
		{"our id", alice, []string{alice}},
		{"NCMEC report id", "1001", []string{alice}},
		{"an earlier filing's NCMEC report id", "900", []string{alice}},
		{"username", "alice", []string{alice}},
		{"username is exact", "Alice", nil},
		{"e-mail in another case", "alice@EXAMPLE.org", []string{alice}},
		{"MD5", file.md5, []string{alice}},
		{"SHA-1 in capitals", strings.ToUpper(file.sha1), []string{alice}},
		{"SHA-256 of a file in two reports", file.sha256, []string{alice, again}},
		{"PDQ within the distance", near.String(), []string{alice}},
		{"PDQ beyond it", nearDuplicate(r, far, 0, false).String(), []string{farImage}},
		{"nothing", "no-such-thing", nil},
		{"an unknown NCMEC id", "7", nil},
	} {
		got := ids(search(t, ctx, s, store.ReportFilter{Q: c.q}))
		if diff := cmp.Diff(sorted(c.want...), sorted(got...)); diff != "" {
			t.Errorf("%s (q=%s): -want +got\n%s", c.name, c.q, diff)
		}
	}
}

// Each filter narrows the list, and they combine.
func TestSearchFilters(t *testing.T) {
	t.Parallel()
	ctx, pool, s := attentionDB(t)
	day := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	finished := addListed(t, ctx, pool, listed{at: day, by: "ann"})
	failed := addListed(t, ctx, pool, listed{at: day.Add(24 * time.Hour), by: "ann", status: report.StatusFailed})
	test := addListed(t, ctx, pool, listed{at: day.Add(48 * time.Hour), by: "ben", test: true})
	retracted := addListed(t, ctx, pool, listed{at: day.Add(72 * time.Hour), by: "ben", status: report.StatusRetracted})
	for _, c := range []struct {
		name string
		f    store.ReportFilter
		want []string
	}{
		{"all, newest first", store.ReportFilter{}, []string{retracted, test, failed, finished}},
		{"production hides the test report", store.ReportFilter{Environment: store.EnvProduction}, []string{retracted, failed, finished}},
		{"test only", store.ReportFilter{Environment: store.EnvTest}, []string{test}},
		{"statuses", store.ReportFilter{Statuses: []report.Status{report.StatusFailed, report.StatusRetracted}}, []string{retracted, failed}},
		{"submitter", store.ReportFilter{SubmittedBy: "ann"}, []string{failed, finished}},
		{"from", store.ReportFilter{From: day.Add(48 * time.Hour)}, []string{retracted, test}},
		{"to (before)", store.ReportFilter{To: day.Add(48 * time.Hour)}, []string{failed, finished}},
		{"combined", store.ReportFilter{SubmittedBy: "ben", Environment: store.EnvProduction, From: day}, []string{retracted}},
	} {
		if diff := cmp.Diff(c.want, ids(search(t, ctx, s, c.f))); diff != "" {
			t.Errorf("%s: -want +got\n%s", c.name, diff)
		}
	}
}

// Pages follow each other by cursor, forward and back, with nothing missed
// or repeated, also for reports submitted at the same instant and sorted by
// last change; a cursor of another sort is refused.
func TestSearchPagesByCursor(t *testing.T) {
	t.Parallel()
	ctx, pool, s := attentionDB(t)
	at := time.Now().UTC().Truncate(time.Second)
	var all []string
	for i := range 7 {
		// Pairs submitted at the same instant: the id breaks the tie.
		all = append(all, addListed(t, ctx, pool, listed{at: at.Add(time.Duration(i/2) * time.Minute)}))
	}
	slices.Reverse(all) // newest first: the later instant, then the larger id
	f := store.ReportFilter{Limit: 3}
	p1 := search(t, ctx, s, f)
	if p1.Prev != "" || p1.Next == "" {
		t.Fatalf("first page: prev %q next %q, want no prev and a next", p1.Prev, p1.Next)
	}
	f.Cursor = p1.Next
	p2 := search(t, ctx, s, f)
	f.Cursor = p2.Next
	p3 := search(t, ctx, s, f)
	if p3.Next != "" {
		t.Errorf("last page has a next cursor")
	}
	got := append(append(ids(p1), ids(p2)...), ids(p3)...)
	if diff := cmp.Diff(all, got); diff != "" {
		t.Fatalf("forward pages: -want +got\n%s", diff)
	}
	f.Cursor = p3.Prev
	back := search(t, ctx, s, f)
	if diff := cmp.Diff(ids(p2), ids(back)); diff != "" {
		t.Errorf("previous of page 3: -want +got\n%s", diff)
	}
	f.Cursor = back.Prev
	if diff := cmp.Diff(ids(p1), ids(search(t, ctx, s, f))); diff != "" {
		t.Errorf("previous of page 2: -want +got\n%s", diff)
	}
	if first := search(t, ctx, s, f); first.Prev != "" {
		t.Errorf("the first page, reached backward, has a previous cursor")
	}

	// By last change: the oldest report changed now comes first.
	if _, err := pool.Exec(ctx, `UPDATE reports SET updated_at = now() + interval '1 hour' WHERE id = $1`, all[6]); err != nil {
		t.Fatal(err)
	}
	changed := search(t, ctx, s, store.ReportFilter{Sort: store.SortChanged, Limit: 2})
	if changed.Reports[0].ID != all[6] {
		t.Errorf("sort=changed: first %s, want the last changed %s", changed.Reports[0].ID, all[6])
	}
	if _, err := s.Search(ctx, store.ReportFilter{Sort: store.SortSubmitted, Cursor: changed.Next}, pdq.MatchThreshold); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("a cursor of sort=changed with sort=submitted: %v, want ErrBadCursor", err)
	}
	if _, err := s.Search(ctx, store.ReportFilter{Cursor: "not a cursor"}, pdq.MatchThreshold); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("garbage cursor: %v, want ErrBadCursor", err)
	}
}
