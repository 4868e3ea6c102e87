package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"takedown/pkg/pdq"
	"takedown/services/intake/internal/report"
)

// The reports list: filters, a search box (q) and keyset paging over every
// report, fast at a million reports through migration 0016's indexes. The
// API's GET /api/v1/reports, its CSV export and the /reports page all read
// it through Search.

// Environment narrows the list to the reports of one NCMEC environment.
type Environment string

// Environments: all reports (the zero value), or only those filed with
// NCMEC's production or test environment (report.Details.Test).
const (
	EnvAll        Environment = "all"
	EnvProduction Environment = report.EnvProduction
	EnvTest       Environment = report.EnvTest
)

// Sort orders the list, newest first.
type Sort string

// Sorts: by submission (the zero value) or by the report's last change.
const (
	SortSubmitted Sort = "submitted"
	SortChanged   Sort = "changed"
)

// MaxSearchLimit bounds one page of the list.
const MaxSearchLimit = 200

// ReportFilter says which reports the list shows, in what order, and from
// where (Cursor). The zero value is every report, newest first, one page of
// DefaultSearchLimit.
type ReportFilter struct {
	Statuses    []report.Status // any of these; none: every status
	Environment Environment
	SubmittedBy string    // the submitter's subject, exactly
	From        time.Time // submitted at or after; zero: no bound
	To          time.Time // submitted before; zero: no bound
	// Q finds reports by our id, NCMEC's report id (of any filing), the
	// uploader's username (exact) or e-mail (case-insensitive), or a
	// file's MD5, SHA-1 or SHA-256 (exact hex) or PDQ (hex, within the
	// distance Search is given).
	Q      string
	Sort   Sort
	Cursor string // from a SearchPage: the page after (Next) or before (Prev) it
	Limit  int    // 1…MaxSearchLimit; 0: DefaultSearchLimit
}

// DefaultSearchLimit is a page of the list when the filter names none.
const DefaultSearchLimit = 50

// SearchPage is one page of the list.
type SearchPage struct {
	Reports []report.Report
	// Next is the cursor of the following (older) page, Prev of the
	// preceding (newer) one; empty when there is none.
	Next, Prev string
}

// ErrBadCursor: the cursor is not one a SearchPage of the same sort gave.
var ErrBadCursor = errors.New("the cursor is not one this list gave (for this sort)")

// Search returns one page of the reports f selects. A PDQ hash in f.Q
// matches files within pdqDistance bits, found through the "reported
// before?" index (pdqindex.go).
func (s *Store) Search(ctx context.Context, f ReportFilter, pdqDistance int) (SearchPage, error) {
	if f.Sort == "" {
		f.Sort = SortSubmitted
	}
	if f.Limit <= 0 {
		f.Limit = DefaultSearchLimit
	}
	f.Limit = min(f.Limit, MaxSearchLimit)
	var cur *cursor
	if f.Cursor != "" {
		c, err := parseCursor(f.Cursor, f.Sort)
		if err != nil {
			return SearchPage{}, err
		}
		cur = &c
	}
	q := &searchSQL{}
	if err := q.where(ctx, s, f, pdqDistance); err != nil {
		return SearchPage{}, err
	}
	col := "submitted_at"
	if f.Sort == SortChanged {
		col = "updated_at"
	}
	// Newest first; a page before the cursor (backward) is read oldest
	// first from it, then turned round.
	order, backward := "DESC", cur != nil && cur.backward
	if cur != nil {
		op := "<"
		if backward {
			op, order = ">", "ASC"
		}
		q.conds = append(q.conds, fmt.Sprintf("(%s, id) %s (%s, %s)", col, op, q.arg(cur.at), q.arg(cur.id)))
	}
	sql := `SELECT ` + reportColumns + `, ` + col + ` FROM reports`
	if len(q.conds) > 0 {
		sql += ` WHERE ` + strings.Join(q.conds, " AND ")
	}
	sql += fmt.Sprintf(` ORDER BY %s %s, id %s LIMIT %s`, col, order, order, q.arg(f.Limit+1))
	rows, err := s.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return SearchPage{}, fmt.Errorf("search reports: %w", err)
	}
	type found struct {
		r  report.Report
		at time.Time
	}
	got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (found, error) {
		var f found
		var err error
		f.r, err = scanReport(extraColumn{row, &f.at})
		return f, err
	})
	if err != nil {
		return SearchPage{}, fmt.Errorf("search reports: %w", err)
	}
	more := len(got) > f.Limit
	got = got[:min(len(got), f.Limit)]
	if backward {
		slices.Reverse(got)
	}
	page := SearchPage{Reports: make([]report.Report, len(got))}
	for i, g := range got {
		page.Reports[i] = g.r
	}
	if len(got) == 0 {
		return page, nil
	}
	first, last := got[0], got[len(got)-1]
	// Forward, there are newer reports whenever we came through a cursor,
	// and older ones when the page overflowed; backward, the other way round.
	if (!backward && more) || backward {
		page.Next = cursor{sort: f.Sort, at: last.at, id: last.r.ID}.String()
	}
	if (backward && more) || (!backward && cur != nil) {
		page.Prev = cursor{sort: f.Sort, backward: true, at: first.at, id: first.r.ID}.String()
	}
	return page, nil
}

// extraColumn scans reportColumns and one more column after them.
type extraColumn struct {
	pgx.Row
	extra any
}

func (e extraColumn) Scan(dest ...any) error { return e.Row.Scan(append(dest, e.extra)...) }

// searchSQL builds the query's conditions with numbered arguments.
type searchSQL struct {
	conds []string
	args  []any
}

func (q *searchSQL) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *searchSQL) where(ctx context.Context, s *Store, f ReportFilter, pdqDistance int) error {
	if len(f.Statuses) > 0 {
		statuses := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			statuses[i] = string(st)
		}
		q.conds = append(q.conds, "status = ANY("+q.arg(statuses)+"::text[])")
	}
	switch f.Environment {
	case "", EnvAll:
	case EnvTest:
		q.conds = append(q.conds, "test")
	case EnvProduction:
		q.conds = append(q.conds, "NOT test")
	default:
		return fmt.Errorf("search reports: unknown environment %q", f.Environment)
	}
	if f.SubmittedBy != "" {
		q.conds = append(q.conds, "submitted_by = "+q.arg(f.SubmittedBy))
	}
	if !f.From.IsZero() {
		q.conds = append(q.conds, "submitted_at >= "+q.arg(f.From))
	}
	if !f.To.IsZero() {
		q.conds = append(q.conds, "submitted_at < "+q.arg(f.To))
	}
	if text := strings.TrimSpace(f.Q); text != "" {
		found, err := q.search(ctx, s, text, pdqDistance)
		if err != nil {
			return err
		}
		q.conds = append(q.conds, "id IN ("+strings.Join(found, " UNION ")+")")
	}
	return nil
}

var hexDigits = regexp.MustCompile(`^[0-9a-fA-F]+$`)

// search returns the queries of the ids of the reports text may name: each
// kind of thing it can be. Anything may be a username; the rest by form.
func (q *searchSQL) search(ctx context.Context, s *Store, text string, pdqDistance int) ([]string, error) {
	found := []string{`SELECT id FROM reports WHERE details -> 'uploader' ->> 'username' = ` + q.arg(text)}
	if id, err := uuid.Parse(text); err == nil {
		found = append(found, `SELECT `+q.arg(id.String())+`::uuid`)
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil && n > 0 {
		a := q.arg(n)
		found = append(found, `SELECT id FROM reports WHERE ncmec_report_id = `+a,
			`SELECT id FROM reports WHERE past_ncmec_report_ids @> ARRAY[`+a+`::bigint]`)
	}
	if strings.Contains(text, "@") {
		found = append(found, `SELECT id FROM reports WHERE lower(details -> 'uploader' ->> 'email') = lower(`+q.arg(text)+`)`)
	}
	if !hexDigits.MatchString(text) {
		return found, nil
	}
	h := strings.ToLower(text)
	switch len(h) {
	case 32:
		found = append(found, `SELECT report_id FROM files WHERE md5 = `+q.arg(h))
	case 40:
		found = append(found, `SELECT report_id FROM files WHERE sha1 = `+q.arg(h))
	case 64: // a SHA-256, or a PDQ hash: the same length
		found = append(found, `SELECT report_id FROM files WHERE sha256 = `+q.arg(h))
		hash, err := pdq.ParseHash(h)
		if err != nil {
			return nil, fmt.Errorf("search reports: %w", err)
		}
		ids, err := s.similarImages(ctx, hash, pdqDistance)
		if err != nil {
			return nil, err
		}
		found = append(found, `SELECT unnest(`+q.arg(ids)+`::uuid[])`)
	}
	return found, nil
}

// maxSimilarReports bounds the reports one PDQ search finds: a hash of a
// plain image (all one colour) can be near thousands.
const maxSimilarReports = 10_000

// similarImages returns the reports holding an image within maxDistance
// bits of h, through the index "reported before?" reads (pdqPairs).
func (s *Store) similarImages(ctx context.Context, h pdq.Hash, maxDistance int) ([]string, error) {
	probes, indexed := pdqProbeArgs([]pdq.Hash{h}, maxDistance)
	pairs := pdqPairs(3)
	if !indexed {
		pairs = `SELECT o.report_id FROM f JOIN files o ON bit_count(f.pdq_bits # o.pdq_bits) <= $2`
	}
	sql := `WITH f AS (SELECT NULL::uuid AS id, ('x' || $1::text)::bit(256) AS pdq_bits),
		pairs AS (` + pairs + `)
		SELECT DISTINCT report_id::text FROM pairs LIMIT ` + strconv.Itoa(maxSimilarReports)
	rows, err := s.pool.Query(ctx, sql, append([]any{h.String(), maxDistance}, probes...)...)
	if err != nil {
		return nil, fmt.Errorf("search similar images: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("search similar images: %w", err)
	}
	return ids, nil
}

// cursor is a position in the list: the sort key and id of the report a
// page ended (or, backward, began) with.
type cursor struct {
	sort     Sort
	backward bool
	at       time.Time
	id       string
}

// String is the cursor as the API hands it out: opaque, URL-safe.
func (c cursor) String() string {
	dir := "next"
	if c.backward {
		dir = "prev"
	}
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s|%s|%d|%s", c.sort, dir, c.at.UnixMicro(), c.id))
}

func parseCursor(s string, sort Sort) (cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, ErrBadCursor
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 4 || Sort(parts[0]) != sort || (parts[1] != "next" && parts[1] != "prev") {
		return cursor{}, ErrBadCursor
	}
	micros, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return cursor{}, ErrBadCursor
	}
	if _, err := uuid.Parse(parts[3]); err != nil {
		return cursor{}, ErrBadCursor
	}
	return cursor{sort: sort, backward: parts[1] == "prev", at: time.UnixMicro(micros).UTC(), id: parts[3]}, nil
}
