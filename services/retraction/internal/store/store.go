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
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
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

// ErrNotFound is returned for a report the service has never heard of.
var ErrNotFound = errors.New("report not known")

// Report is one report's row.
type Report struct {
	ReportID      string
	Filing        int
	Environment   string
	NCMECReportID int64
	NCMECState    string
	LastChangeAt  time.Time
	Retraction    string
	Reason        string
	RequestedBy   string
	Attempts      int
	FirstTriedAt  *time.Time
	LastError     string
}

// Store reads and writes the schema.
type Store struct{ Pool *pgxpool.Pool }

const columns = `report_id::text, filing, environment, coalesce(ncmec_report_id, 0), ncmec_state, last_change_at,
	retraction, coalesce(reason, ''), coalesce(requested_by, ''), attempts, first_tried_at, coalesce(last_error, '')`

func scan(row pgx.Row) (Report, error) {
	var r Report
	err := row.Scan(&r.ReportID, &r.Filing, &r.Environment, &r.NCMECReportID, &r.NCMECState, &r.LastChangeAt,
		&r.Retraction, &r.Reason, &r.RequestedBy, &r.Attempts, &r.FirstTriedAt, &r.LastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// Get returns a report's row.
func (s *Store) Get(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, reportID string) (Report, error) {
	return scan(q.QueryRow(ctx, `SELECT `+columns+` FROM reports WHERE report_id = $1`, reportID))
}

// Lock returns a report's row locked for the rest of tx.
func (s *Store) Lock(ctx context.Context, tx pgx.Tx, reportID string) (Report, error) {
	return scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM reports WHERE report_id = $1 FOR UPDATE`, reportID))
}

// Ensure makes sure the report has a row. Events of one report may be
// handled in any order (a failure before the report's submission), so every
// event first ensures the row its update needs.
func (s *Store) Ensure(ctx context.Context, tx pgx.Tx, reportID string) error {
	_, err := tx.Exec(ctx, `INSERT INTO reports (report_id) VALUES ($1) ON CONFLICT DO NOTHING`, reportID)
	return err
}

// Known records a submitted report, so that a retraction can be asked for
// before NCMEC opens it. A later filing of the same report starts afresh.
func (s *Store) Known(ctx context.Context, tx pgx.Tx, reportID string, filing int, environment string) error {
	_, err := tx.Exec(ctx, `INSERT INTO reports (report_id, filing, environment) VALUES ($1, $2, $3)
		ON CONFLICT (report_id) DO UPDATE SET filing = excluded.filing, environment = excluded.environment,
			ncmec_report_id = NULL, ncmec_state = 'unknown', retraction = 'none', reason = NULL, requested_by = NULL,
			attempts = 0, first_tried_at = NULL, next_attempt_at = NULL, last_error = NULL, last_change_at = now()
		WHERE reports.filing < excluded.filing`, reportID, filing, environment)
	return err
}

// Opened records the NCMEC report id of a filing; a retraction waiting for
// it becomes due at once.
func (s *Store) Opened(ctx context.Context, tx pgx.Tx, reportID string, filing int, environment string, ncmecID int64, at time.Time) error {
	if err := s.Known(ctx, tx, reportID, filing, environment); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE reports SET ncmec_report_id = $3, environment = $4, last_change_at = greatest(last_change_at, $5),
			ncmec_state = CASE WHEN ncmec_state = 'unknown' THEN 'opened' ELSE ncmec_state END,
			next_attempt_at = CASE WHEN retraction = 'pending' THEN now() ELSE next_attempt_at END
		WHERE report_id = $1 AND filing = $2`, reportID, filing, ncmecID, environment, at)
	return err
}

// Changed notes progress of the filing (a file uploaded): the sweep measures
// staleness from the last change, as NCMEC's expiry does.
func (s *Store) Changed(ctx context.Context, tx pgx.Tx, reportID string, at time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE reports SET last_change_at = greatest(last_change_at, $2) WHERE report_id = $1`, reportID, at)
	return err
}

// NCMECState sets the filing's state (finished or failed), never moving a
// finished filing back.
func (s *Store) NCMECState(ctx context.Context, tx pgx.Tx, reportID, state string, ncmecID int64) error {
	_, err := tx.Exec(ctx, `UPDATE reports SET ncmec_state = CASE WHEN ncmec_state = 'finished' THEN ncmec_state ELSE $2 END,
			ncmec_report_id = coalesce(ncmec_report_id, nullif($3, 0)), last_change_at = now()
		WHERE report_id = $1`, reportID, state, ncmecID)
	return err
}

// Request schedules a retraction unless one is already owed or done. It
// reports whether this call scheduled it.
func (s *Store) Request(ctx context.Context, tx pgx.Tx, reportID, reason, by string) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE reports SET retraction = 'pending', reason = $2, requested_by = $3, next_attempt_at = now()
		WHERE report_id = $1 AND retraction = 'none'`, reportID, reason, by)
	if err != nil {
		return false, fmt.Errorf("request retraction: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Due claims up to n due retractions for lease, so that a crashed worker's
// retraction is picked up again when the lease ends.
func (s *Store) Due(ctx context.Context, n int, lease time.Duration) ([]string, error) {
	rows, err := s.Pool.Query(ctx, `UPDATE reports SET next_attempt_at = now() + $2::interval
		WHERE report_id IN (SELECT report_id FROM reports WHERE retraction = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING report_id::text`, n, lease.String())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Retry schedules the next attempt after a failed one.
func (s *Store) Retry(ctx context.Context, reportID string, after time.Duration, cause string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE reports SET attempts = attempts + 1, first_tried_at = coalesce(first_tried_at, now()),
			next_attempt_at = now() + $2::interval, last_error = $3
		WHERE report_id = $1 AND retraction = 'pending'`, reportID, after.String(), cause)
	return err
}

// Wait defers a retraction that cannot be tried yet (no NCMEC report id, or
// the reporter holds the finish claim) without counting an attempt.
func (s *Store) Wait(ctx context.Context, reportID string, after time.Duration, why string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE reports SET next_attempt_at = now() + $2::interval, last_error = $3
		WHERE report_id = $1 AND retraction = 'pending'`, reportID, after.String(), why)
	return err
}

// Settle records how a retraction ended, within tx.
func (s *Store) Settle(ctx context.Context, tx pgx.Tx, reportID, outcome, cause string) error {
	_, err := tx.Exec(ctx, `UPDATE reports SET retraction = $2, next_attempt_at = NULL, last_error = nullif($3, ''),
			attempts = attempts + 1, first_tried_at = coalesce(first_tried_at, now())
		WHERE report_id = $1`, reportID, outcome, cause)
	return err
}

// Stale returns reports opened at NCMEC, neither finished nor retracted, and
// unchanged for longer than age: their failure event was lost, or the
// reporter stopped without one.
func (s *Store) Stale(ctx context.Context, age time.Duration) ([]string, error) {
	rows, err := s.Pool.Query(ctx, `SELECT report_id::text FROM reports
		WHERE ncmec_state = 'opened' AND retraction = 'none' AND last_change_at < now() - $1::interval`, age.String())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Counts returns how many reports are in each retraction state, for metrics.
func (s *Store) Counts(ctx context.Context) (map[string]int, error) {
	rows, err := s.Pool.Query(ctx, `SELECT retraction, count(*) FROM reports GROUP BY retraction`)
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
		out[k] = n
	}
	return out, rows.Err()
}
