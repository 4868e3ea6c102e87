// Package store keeps intake's reports, files and their progress in
// PostgreSQL (schema intake).
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
	"takedown/pkg/keyring"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/intake/internal/report"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates intake's tables.
var Migrations = database.Migrations{Name: "intake", FS: migrationFiles}

// ErrNotFound is returned for a report that does not exist.
var ErrNotFound = errors.New("report not found")

// Store reads and writes intake's schema.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store over pool (search_path intake).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Create stores a submitted report, its files and the event announcing it,
// in one transaction: either all of it is there afterwards, or none.
func (s *Store) Create(ctx context.Context, r *report.Report, key keyring.WrappedKey, submitted *pb.Envelope) error {
	details, err := json.Marshal(r.Details)
	if err != nil {
		return err
	}
	return database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO reports (id, submitted_at, submitted_by, filing, incident_time, details, data_key_id, data_key, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			r.ID, r.SubmittedAt, r.SubmittedBy, r.Filing, r.IncidentTime, details, key.MasterKeyID, key.Ciphertext, r.Status); err != nil {
			return fmt.Errorf("insert report: %w", err)
		}
		for _, f := range r.Files {
			meta, err := json.Marshal(f.FileInput)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO files (id, report_id, idx, name, object_key, object_version, size, content_type, md5, sha1, sha256, pdq, pdq_quality, meta)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, nullif($12, ''), nullif($13, 0), $14)`,
				f.ID, r.ID, f.Index, f.Name, f.ObjectKey, f.ObjectVersion, f.Size, f.ContentType, f.MD5, f.SHA1, f.SHA256, f.PDQ, f.PDQQuality, meta); err != nil {
				return fmt.Errorf("insert file %d: %w", f.Index, err)
			}
		}
		return outbox.Add(ctx, tx, submitted)
	})
}

const reportColumns = `id::text, status, submitted_at, submitted_by, filing, incident_time, details,
	coalesce(ncmec_report_id, 0), coalesce(ncmec_environment, ''), coalesce(ncmec_state, ''), coalesce(last_error, ''),
	coalesce(case_id, ''), coalesce(case_state, ''), coalesce(case_error, '')`

func scanReport(row pgx.Row) (report.Report, error) {
	var r report.Report
	var details []byte
	err := row.Scan(&r.ID, &r.Status, &r.SubmittedAt, &r.SubmittedBy, &r.Filing, &r.IncidentTime, &details,
		&r.NCMEC.ReportID, &r.NCMEC.Environment, &r.NCMEC.State, &r.NCMEC.LastError,
		&r.Case.ID, &r.Case.State, &r.Case.Error)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(details, &r.Details)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Get returns a report with its files and history.
func (s *Store) Get(ctx context.Context, id string) (*report.Report, error) {
	return get(ctx, s.pool, id, "")
}

func get(ctx context.Context, q querier, id, lock string) (*report.Report, error) {
	r, err := scanReport(q.QueryRow(ctx, `SELECT `+reportColumns+` FROM reports WHERE id = $1 `+lock, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get report %s: %w", id, err)
	}
	rows, err := q.Query(ctx, `SELECT id::text, idx, name, object_key, object_version, size, content_type, md5, sha1, sha256,
			coalesce(pdq, ''), coalesce(pdq_quality, 0), meta, coalesce(ncmec_file_id, ''), coalesce(ncmec_md5, '')
		FROM files WHERE report_id = $1 ORDER BY idx`, id)
	if err != nil {
		return nil, fmt.Errorf("get files of %s: %w", id, err)
	}
	r.Files, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (report.File, error) {
		var f report.File
		var meta []byte
		if err := row.Scan(&f.ID, &f.Index, &f.Name, &f.ObjectKey, &f.ObjectVersion, &f.Size, &f.ContentType, &f.MD5, &f.SHA1, &f.SHA256,
			&f.PDQ, &f.PDQQuality, &meta, &f.NCMECFileID, &f.NCMECMD5); err != nil {
			return f, err
		}
		return f, json.Unmarshal(meta, &f.FileInput)
	})
	if err != nil {
		return nil, fmt.Errorf("get files of %s: %w", id, err)
	}
	rows, err = q.Query(ctx, `SELECT event_id::text, type, occurred_at, actor, summary
		FROM report_events WHERE report_id = $1 ORDER BY occurred_at, event_id`, id)
	if err != nil {
		return nil, fmt.Errorf("get events of %s: %w", id, err)
	}
	r.Events, err = pgx.CollectRows(rows, pgx.RowToStructByPos[report.Event])
	if err != nil {
		return nil, fmt.Errorf("get events of %s: %w", id, err)
	}
	return &r, nil
}

// Refile files a report again: with the report locked, refile checks the
// rule, moves the report to its next filing and returns the event that
// announces it; the report's new state and the event are committed together.
// The earlier filing's NCMEC state is forgotten (its report id kept, so its
// late events move nothing), its history kept.
func (s *Store) Refile(ctx context.Context, id string, refile func(*report.Report, keyring.WrappedKey) (*pb.Envelope, error)) (*report.Report, error) {
	var out *report.Report
	err := database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		r, err := get(ctx, tx, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		var key keyring.WrappedKey
		if err := tx.QueryRow(ctx, `SELECT data_key_id, data_key FROM reports WHERE id = $1`, id).Scan(&key.MasterKeyID, &key.Ciphertext); err != nil {
			return fmt.Errorf("data key of %s: %w", id, err)
		}
		past := r.NCMEC.ReportID
		ev, err := refile(r, key)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE reports SET filing = $2, status = $3, ncmec_report_id = NULL, ncmec_environment = NULL,
				ncmec_state = NULL, last_error = NULL, updated_at = now(),
				past_ncmec_report_ids = CASE WHEN $4::bigint = 0 THEN past_ncmec_report_ids ELSE array_append(past_ncmec_report_ids, $4) END
			WHERE id = $1`, id, r.Filing, r.Status, past); err != nil {
			return fmt.Errorf("refile %s: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE files SET ncmec_file_id = NULL, ncmec_md5 = NULL WHERE report_id = $1`, id); err != nil {
			return fmt.Errorf("refile %s: %w", id, err)
		}
		if err := outbox.Add(ctx, tx, ev); err != nil {
			return err
		}
		r.NCMEC = report.NCMEC{}
		for i := range r.Files {
			r.Files[i].NCMECFileID, r.Files[i].NCMECMD5 = "", ""
		}
		out = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RecordAction publishes a staff action (a sign-in, a page view, a denied
// request) for the audit log through the outbox.
func (s *Store) RecordAction(ctx context.Context, ev *pb.Envelope) error {
	return database.InTx(ctx, s.pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, ev) })
}

// List returns up to limit reports older than the report id before (all
// when empty), newest first. Report ids are UUIDv7, so they sort by time.
func (s *Store) List(ctx context.Context, before string, limit int) ([]report.Report, error) {
	q := `SELECT ` + reportColumns + ` FROM reports`
	args := []any{limit}
	if before != "" {
		q += ` WHERE id < $2`
		args = append(args, before)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY id DESC LIMIT $1`, args...)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (report.Report, error) { return scanReport(row) })
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	return out, nil
}

// AddOrphans records objects that could not be deleted after a failed
// submission, for the sweeper.
func (s *Store) AddOrphans(ctx context.Context, keys []string, cause error) error {
	for _, k := range keys {
		if _, err := s.pool.Exec(ctx, `INSERT INTO orphan_objects (object_key, last_error) VALUES ($1, $2)
			ON CONFLICT (object_key) DO UPDATE SET last_error = excluded.last_error`, k, cause.Error()); err != nil {
			return fmt.Errorf("record orphan %s: %w", k, err)
		}
	}
	return nil
}

// Orphans returns the recorded orphan objects.
func (s *Store) Orphans(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT object_key FROM orphan_objects ORDER BY created_at LIMIT 1000`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// RemoveOrphan forgets an orphan object once it is deleted.
func (s *Store) RemoveOrphan(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM orphan_objects WHERE object_key = $1`, key)
	return err
}
