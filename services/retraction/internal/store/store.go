// Package store keeps the retraction service's view of each report's NCMEC
// filing and the retractions it owes (schema retraction).
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
	"takedown/pkg/filing"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the service's tables.
var Migrations = database.Migrations{Name: "retraction", FS: migrationFiles}

// Retraction states.
const (
	None            = "none"
	Pending         = "pending"
	Retracted       = "retracted"
	Failed          = "failed"
	FinishedAtNCMEC = "finished_at_ncmec"
)

// ErrNotFound is returned for a report (or lost retraction) the service has
// never heard of.
var ErrNotFound = errors.New("report not known")

// Report is one report's row: the fold of its current filing
// (pkg/filing) and the retraction owed for it.
type Report struct {
	ReportID      string
	Filing        int
	Environment   string // "" until an event names it
	NCMECReportID int64
	NCMECState    filing.State
	StateAt       time.Time
	Ambiguous     int  // ambiguous /submits of the current filing
	EverAmbiguous bool // any filing of the report had one
	LastChangeAt  time.Time
	Retraction    string
	Reason        string
	RequestedBy   string
	Attempts      int
	FirstTriedAt  *time.Time
	LastError     string
}

// Status is the filing as pkg/filing's fold left it.
func (r Report) Status() filing.Status {
	return filing.Status{Filing: max(r.Filing, 1), State: r.NCMECState, NCMECReportID: r.NCMECReportID,
		Environment: r.Environment, At: r.StateAt, Ambiguous: r.Ambiguous}
}

// Store reads and writes the schema. Its methods that take a pgx.Tx join the
// caller's transaction (a consumer's, or one of InTx); the others own theirs.
type Store struct{ pool *pgxpool.Pool }

// New returns the store of the schema pool is connected to.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// InTx runs fn in one transaction: the reads and writes of one decision with
// the events it publishes.
func (s *Store) InTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return database.InTx(ctx, s.pool, fn)
}

// ErrLeaseLost is the answer to a leased write of a worker whose claim is no
// longer its own: the lease ran out and another worker claimed the
// retraction, or it was settled meanwhile. That worker's outcome stands.
var ErrLeaseLost = errors.New("retraction: the claim is no longer this worker's (its lease ran out and another worker took it, or it was settled)")

// Claim is a retraction a worker holds until its lease ends: Lease fences
// the writes of a worker that stalled past it. A Claim without a Lease
// (events, staff) writes whoever holds the retraction.
type Claim struct {
	ReportID string
	Lease    string
}

const columns = `report_id::text, filing, environment, coalesce(ncmec_report_id, 0), ncmec_state, ncmec_state_at,
	ambiguous, ever_ambiguous, last_change_at,
	retraction, coalesce(reason, ''), coalesce(requested_by, ''), attempts, first_tried_at, coalesce(last_error, '')`

func scan(row pgx.Row) (Report, error) {
	var r Report
	var stateAt *time.Time
	err := row.Scan(&r.ReportID, &r.Filing, &r.Environment, &r.NCMECReportID, &r.NCMECState, &stateAt,
		&r.Ambiguous, &r.EverAmbiguous, &r.LastChangeAt,
		&r.Retraction, &r.Reason, &r.RequestedBy, &r.Attempts, &r.FirstTriedAt, &r.LastError)
	if stateAt != nil {
		r.StateAt = *stateAt
	}
	return r, err
}

// Get returns a report's row.
func (s *Store) Get(ctx context.Context, reportID string) (Report, error) {
	rep, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM reports WHERE report_id = $1`, reportID))
	if errors.Is(err, pgx.ErrNoRows) {
		return rep, ErrNotFound
	}
	return rep, err
}

// Fold is a report's row, locked in a transaction, with events folded
// into it in memory, which Save stores: a report's events handled together
// cost one lock and one write.
type Fold struct {
	Report              // the row with the events folded in
	reset     bool      // a newer filing began
	at        time.Time // the latest time of the events since the last reset
	ambiguous bool      // an event was an ambiguous /submit
}

// Lock returns a report's row locked for the rest of tx, creating it when
// missing: events of one report may be handled in any order (a failure
// before the report's submission), so every event finds a row to fold into.
func (s *Store) Lock(ctx context.Context, tx pgx.Tx, reportID string) (*Fold, error) {
	rep, err := database.LockOrCreate(ctx, tx, scan,
		`SELECT `+columns+` FROM reports WHERE report_id = $1 FOR UPDATE`,
		`INSERT INTO reports (report_id) VALUES ($1) ON CONFLICT DO NOTHING`, reportID)
	if err != nil {
		return nil, err
	}
	return &Fold{Report: rep}, nil
}

// Apply folds ev into the row and reports whether ev is about the current
// filing. A newer filing starts afresh: a retraction owed for the filing
// it supersedes is not owed for the new one (which is a new NCMEC report).
func (f *Fold) Apply(ev filing.Event) (current bool) {
	st := f.Status()
	current = st.Apply(ev)
	if st.Filing > f.Filing {
		f.Retraction, f.Reason, f.RequestedBy, f.Attempts, f.FirstTriedAt, f.LastError = None, "", "", 0, nil, ""
		f.reset, f.at = true, time.Time{}
	}
	// The next event folds into what the row would give back: the filing's
	// columns only, and its time to the microsecond that PostgreSQL keeps
	// (an event's precedence compares times).
	f.Filing, f.NCMECState, f.NCMECReportID, f.Environment, f.StateAt, f.Ambiguous =
		st.Filing, st.State, st.NCMECReportID, st.Environment, st.At.Truncate(time.Microsecond), st.Ambiguous
	if ev.At.After(f.at) {
		f.at = ev.At
	}
	f.ambiguous = f.ambiguous || ev.Ambiguous > 0 // an earlier filing's ambiguity too
	f.EverAmbiguous = f.EverAmbiguous || f.ambiguous
	return current
}

// Save stores the events folded into f (locked in tx). A retraction
// waiting for the NCMEC report id becomes due once it is known. Whatever
// tx writes to the row after Save is not in f: fold further events into
// the row locked again.
func (s *Store) Save(ctx context.Context, tx pgx.Tx, f *Fold) error {
	if f.reset {
		if _, err := tx.Exec(ctx, `UPDATE reports SET retraction = 'none', reason = NULL, requested_by = NULL,
				attempts = 0, first_tried_at = NULL, next_attempt_at = NULL, last_error = NULL, last_change_at = now()
			WHERE report_id = $1`, f.ReportID); err != nil {
			return err
		}
	}
	var stateAt *time.Time
	if !f.StateAt.IsZero() {
		stateAt = &f.StateAt
	}
	_, err := tx.Exec(ctx, `UPDATE reports SET filing = $2, ncmec_state = $3, ncmec_report_id = nullif($4, 0), environment = $5,
			ncmec_state_at = $6, ambiguous = $7, ever_ambiguous = ever_ambiguous OR $9,
			last_change_at = greatest(last_change_at, $8),
			next_attempt_at = CASE WHEN retraction = 'pending' AND ncmec_report_id IS NULL AND $4 <> 0 THEN now() ELSE next_attempt_at END
		WHERE report_id = $1`,
		f.ReportID, f.Filing, f.NCMECState, f.NCMECReportID, f.Environment, stateAt, f.Ambiguous, f.at, f.ambiguous)
	return err
}

// Request schedules a retraction of the filing unless one is already owed
// or done. A staff request (staff) also retries a failed one, and takes
// over one the service scheduled by itself (requested by one of services),
// so that staff's reason is what the row says. It reports whether this
// call scheduled it.
func (s *Store) Request(ctx context.Context, tx pgx.Tx, reportID, reason, by string, staff bool, services ...string) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE reports SET retraction = 'pending', reason = $2, requested_by = $3, next_attempt_at = now(),
			attempts = 0, first_tried_at = NULL, last_error = NULL
		WHERE report_id = $1 AND (retraction = 'none'
			OR ($4 AND (retraction = 'failed' OR (retraction = 'pending' AND requested_by = ANY($5)))))`,
		reportID, reason, by, staff, services)
	if err != nil {
		return false, fmt.Errorf("request retraction: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Due claims up to n due retractions for lease, so that a crashed worker's
// retraction is picked up again when the lease ends. Each claim gets a new
// lease token, which the worker's writes must still match.
func (s *Store) Due(ctx context.Context, n int, lease time.Duration) ([]Claim, error) {
	rows, err := s.pool.Query(ctx, `UPDATE reports SET next_attempt_at = now() + $2::interval, lease = gen_random_uuid()
		WHERE report_id IN (SELECT report_id FROM reports WHERE retraction = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING report_id::text, lease::text`, n, lease.String())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Claim])
}

// leased is the condition of a write fenced by c's lease ($lease: c.Lease
// or NULL for a write without one).
func leased(param int) string {
	return fmt.Sprintf("($%d::uuid IS NULL OR lease = $%[1]d::uuid)", param)
}

// lease is c's lease as a query argument: NULL for a Claim without one.
func (c Claim) lease() *string {
	if c.Lease == "" {
		return nil
	}
	return &c.Lease
}

// fenced turns a leased write that changed nothing into ErrLeaseLost.
func fenced(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.RowsAffected() == 0 {
		return ErrLeaseLost
	}
	return err
}

// The updates below name the filing they are about: once a newer filing
// has reset the row, an attempt begun for the old one changes nothing.

// Retry schedules the next attempt after a failed one.
func (s *Store) Retry(ctx context.Context, c Claim, filing int, after time.Duration, cause string) error {
	return fenced(s.pool.Exec(ctx, `UPDATE reports SET attempts = attempts + 1, first_tried_at = coalesce(first_tried_at, now()),
			next_attempt_at = now() + $3::interval, last_error = $4
		WHERE report_id = $1 AND filing = $2 AND retraction = 'pending' AND `+leased(5), c.ReportID, filing, after.String(), cause, c.lease()))
}

// Wait defers a retraction that cannot be tried yet (the reporter holds the
// finish claim, the hand-over is unreachable) without counting an attempt.
func (s *Store) Wait(ctx context.Context, c Claim, filing int, after time.Duration, why string) error {
	return fenced(s.pool.Exec(ctx, `UPDATE reports SET next_attempt_at = now() + $3::interval, last_error = $4
		WHERE report_id = $1 AND filing = $2 AND retraction = 'pending' AND `+leased(5), c.ReportID, filing, after.String(), why, c.lease()))
}

// Settle records how a retraction of the filing ended, within tx. It
// reports false when the row has moved on to a newer filing, and
// ErrLeaseLost when c's lease is no longer the row's: another worker holds
// or settled the retraction.
func (s *Store) Settle(ctx context.Context, tx pgx.Tx, c Claim, filing int, outcome, cause string) (bool, error) {
	var current int
	var held bool
	err := tx.QueryRow(ctx, `SELECT filing, `+leased(2)+` FROM reports WHERE report_id = $1 FOR UPDATE`, c.ReportID, c.lease()).Scan(&current, &held)
	switch {
	case err != nil:
		return false, err
	case current != filing:
		return false, nil
	case !held:
		return false, ErrLeaseLost
	}
	_, err = tx.Exec(ctx, `UPDATE reports SET retraction = $3, next_attempt_at = NULL, last_error = nullif($4, ''),
			attempts = attempts + 1, first_tried_at = coalesce(first_tried_at, now()), lease = NULL
		WHERE report_id = $1 AND filing = $2`, c.ReportID, filing, outcome, cause)
	return err == nil, err
}

// Stale returns reports open at NCMEC (opened, or uploading files), with
// no retraction, and unchanged for longer than age: their failure event was
// lost, or the reporter stopped without one.
func (s *Store) Stale(ctx context.Context, age time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT report_id::text FROM reports
		WHERE ncmec_state IN ('opened', 'uploading') AND retraction = 'none' AND last_change_at < now() - $1::interval`, age.String())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Counts returns how many retractions (of filings and of lost NCMEC
// reports) are in each state, for metrics.
func (s *Store) Counts(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT retraction, count(*) FROM reports GROUP BY retraction
		UNION ALL SELECT outcome, count(*) FROM lost_retractions GROUP BY outcome`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[k] += n
	}
	return out, rows.Err()
}

// Lost is the retraction of an NCMEC report this system lost track of (an
// /submit whose answer was lost), named by staff.
type Lost struct {
	ReportID      string
	NCMECReportID int64
	Environment   string
	Filing        int
	Reason        string
	RequestedBy   string
	Outcome       string
	Attempts      int
	FirstTriedAt  *time.Time
	LastError     string
	// Lease fences the writes of the worker that claimed it (DueLost), as
	// Claim.Lease does; empty otherwise.
	Lease string
}

func (l Lost) lease() *string { return Claim{Lease: l.Lease}.lease() }

const lostColumns = `report_id::text, ncmec_report_id, environment, filing, reason, requested_by, outcome, attempts,
	first_tried_at, coalesce(last_error, '')`

// RequestLost records a retraction of a lost NCMEC report, unless one is
// owed or done already; retryFailed lets staff try a failed one again. It
// reports whether this call scheduled it.
func (s *Store) RequestLost(ctx context.Context, tx pgx.Tx, l Lost, retryFailed bool) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO lost_retractions (report_id, ncmec_report_id, environment, filing, reason, requested_by)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (report_id, ncmec_report_id) DO UPDATE SET outcome = 'pending', environment = excluded.environment,
			filing = excluded.filing, reason = excluded.reason, requested_by = excluded.requested_by, requested_at = now(),
			attempts = 0, first_tried_at = NULL, next_attempt_at = now(), last_error = NULL
		WHERE $7 AND lost_retractions.outcome = 'failed'`,
		l.ReportID, l.NCMECReportID, l.Environment, l.Filing, l.Reason, l.RequestedBy, retryFailed)
	if err != nil {
		return false, fmt.Errorf("request retraction of a lost NCMEC report: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// GetLost returns one lost retraction.
func (s *Store) GetLost(ctx context.Context, reportID string, ncmecID int64) (Lost, error) {
	return scanLost(s.pool.QueryRow(ctx, `SELECT `+lostColumns+` FROM lost_retractions WHERE report_id = $1 AND ncmec_report_id = $2`,
		reportID, ncmecID))
}

func scanLost(row pgx.Row) (Lost, error) {
	var l Lost
	err := row.Scan(&l.ReportID, &l.NCMECReportID, &l.Environment, &l.Filing, &l.Reason, &l.RequestedBy,
		&l.Outcome, &l.Attempts, &l.FirstTriedAt, &l.LastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, ErrNotFound
	}
	return l, err
}

// ListLost returns a report's lost retractions, oldest request first.
func (s *Store) ListLost(ctx context.Context, reportID string) ([]Lost, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+lostColumns+` FROM lost_retractions WHERE report_id = $1 ORDER BY requested_at`, reportID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Lost, error) { return scanLost(row) })
}

// DueLost claims up to n due lost retractions for lease, as Due does.
func (s *Store) DueLost(ctx context.Context, n int, lease time.Duration) ([]Lost, error) {
	rows, err := s.pool.Query(ctx, `UPDATE lost_retractions SET next_attempt_at = now() + $2::interval, lease = gen_random_uuid()
		WHERE (report_id, ncmec_report_id) IN (SELECT report_id, ncmec_report_id FROM lost_retractions
			WHERE outcome = 'pending' AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING lease::text, `+lostColumns, n, lease.String())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Lost, error) {
		var lease string
		l, err := scanLost(leaseFirst{row, &lease})
		l.Lease = lease
		return l, err
	})
}

// RetryLost schedules the next attempt after a failed one.
func (s *Store) RetryLost(ctx context.Context, l Lost, after time.Duration, cause string) error {
	return fenced(s.pool.Exec(ctx, `UPDATE lost_retractions SET attempts = attempts + 1, first_tried_at = coalesce(first_tried_at, now()),
			next_attempt_at = now() + $3::interval, last_error = $4
		WHERE report_id = $1 AND ncmec_report_id = $2 AND outcome = 'pending' AND `+leased(5),
		l.ReportID, l.NCMECReportID, after.String(), cause, l.lease()))
}

// SettleLost records how a lost retraction ended, within tx; ErrLeaseLost
// when l's lease is no longer the row's.
func (s *Store) SettleLost(ctx context.Context, tx pgx.Tx, l Lost, outcome, cause string) error {
	return fenced(tx.Exec(ctx, `UPDATE lost_retractions SET outcome = $3, next_attempt_at = NULL, last_error = nullif($4, ''),
			attempts = attempts + 1, first_tried_at = coalesce(first_tried_at, now()), lease = NULL
		WHERE report_id = $1 AND ncmec_report_id = $2 AND outcome = 'pending' AND `+leased(5),
		l.ReportID, l.NCMECReportID, outcome, cause, l.lease()))
}

// leaseFirst scans a row whose first column is a lease, then the rest.
type leaseFirst struct {
	pgx.Row
	lease *string
}

func (r leaseFirst) Scan(dest ...any) error { return r.Row.Scan(append([]any{r.lease}, dest...)...) }
