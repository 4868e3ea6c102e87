// Package store keeps intake's reports, files and their progress in
// PostgreSQL (schema intake).
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
	"takedown/pkg/filing"
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
// in one transaction: either all of it is there afterwards, or none. A
// report held for legal (r.Legal) has no event yet: submitted is nil.
//
// idempotencyKey (may be empty) names the submission for its submitter: a
// report stored before under the same key makes Create fail with
// ErrDuplicateKey and store nothing.
func (s *Store) Create(ctx context.Context, r *report.Report, idempotencyKey string, key keyring.WrappedKey, submitted *pb.Envelope) error {
	details, err := json.Marshal(r.Details)
	if err != nil {
		return err
	}
	return database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		// The filing's state starts as pending (the columns' defaults);
		// progress folds the report.submitted event in like any other.
		if _, err := tx.Exec(ctx, `INSERT INTO reports (id, submitted_at, submitted_by, filing, incident_time, details, data_key_id, data_key, status, idempotency_key, legal_state, submitted_by_name, submitted_by_email)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, ''), $11, nullif($12, ''), nullif($13, ''))`,
			r.ID, r.SubmittedAt, r.SubmittedBy, r.Filing, r.IncidentTime, details, key.MasterKeyID, key.Ciphertext, r.Status, idempotencyKey, legalState(r.Legal),
			r.SubmittedByName, r.SubmittedByEmail); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.ConstraintName == "reports_idempotency_key" {
				return ErrDuplicateKey
			}
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
		if submitted == nil {
			return nil // held for legal (report.LegalAwaiting): filed on approval
		}
		return outbox.Add(ctx, tx, submitted)
	})
}

// legalState is l's state as stored; a report that no gate holds is
// "recorded".
func legalState(l report.Legal) report.LegalState {
	if l.State == "" {
		return report.LegalRecorded
	}
	return l.State
}

const reportColumns = `id::text, submitted_at, submitted_by, coalesce(submitted_by_name, ''), coalesce(submitted_by_email, ''), incident_time, details,
	coalesce(case_id, ''), coalesce(case_state, ''), coalesce(case_filing, 0), coalesce(case_error, ''),
	legal_state, coalesce(legal_decided_by, ''), coalesce(legal_decided_by_name, ''), coalesce(legal_decided_by_email, ''), legal_decided_at, coalesce(legal_reason, ''), ` + filingColumns

// filingColumns hold a report's filing.Status (migration 0006).
const filingColumns = `filing, ncmec_state, coalesce(ncmec_report_id, 0), coalesce(ncmec_environment, ''),
	filing_at, coalesce(last_error, ''), coalesce(learned_from, ''), finished_at,
	coalesce(retraction_error, ''), retraction_error_at, ambiguous_submits, past_ncmec_report_ids`

// filingDest returns the scan destinations of filingColumns into s; done
// fills the times that may be NULL.
func filingDest(s *filing.Status) (dest []any, done func()) {
	var at, finished, retractionAt *time.Time
	dest = []any{&s.Filing, &s.State, &s.NCMECReportID, &s.Environment, &at, &s.Error, &s.LearnedFrom, &finished,
		&s.RetractionError, &retractionAt, &s.Ambiguous, &s.Past}
	return dest, func() {
		for _, p := range []struct {
			from *time.Time
			to   *time.Time
		}{{at, &s.At}, {finished, &s.FinishedAt}, {retractionAt, &s.RetractionErrorAt}} {
			if p.from != nil {
				*p.to = p.from.UTC()
			}
		}
		if len(s.Past) == 0 {
			s.Past = nil
		}
	}
}

func scanReport(row pgx.Row) (report.Report, error) {
	var r report.Report
	var details []byte
	var st filing.Status
	fd, done := filingDest(&st)
	err := row.Scan(append([]any{&r.ID, &r.SubmittedAt, &r.SubmittedBy, &r.SubmittedByName, &r.SubmittedByEmail, &r.IncidentTime, &details,
		&r.Case.ID, &r.Case.State, &r.Case.Filing, &r.Case.Error,
		&r.Legal.State, &r.Legal.DecidedBy, &r.Legal.DecidedByName, &r.Legal.DecidedByEmail, &r.Legal.DecidedAt, &r.Legal.Reason}, fd...)...)
	if err != nil {
		return r, err
	}
	done()
	r.SetFiling(st)
	return r, json.Unmarshal(details, &r.Details)
}

// LoadFilings locks the reports ids and returns their filing statuses by
// id, in one statement; a report intake does not know is not in the map.
// The rows are locked in id order, the order the consumer sorts a batch
// by, so that batches handled side by side wait for each other instead of
// deadlocking.
func LoadFilings(ctx context.Context, tx pgx.Tx, ids []string) (map[string]filing.Status, error) {
	if len(ids) == 0 {
		return nil, nil // a batch of the NCMEC connection's events only
	}
	// Keyed by the id as given, which the join casts: the caller looks the
	// statuses up with its own strings.
	rows, err := tx.Query(ctx, `SELECT u.id, `+filingColumns+`
		FROM unnest($1::text[]) AS u (id) JOIN reports ON reports.id = u.id::uuid
		ORDER BY reports.id FOR UPDATE OF reports`, ids)
	if err != nil {
		return nil, fmt.Errorf("filings of %d report(s): %w", len(ids), err)
	}
	defer rows.Close()
	sts := make(map[string]filing.Status, len(ids))
	for rows.Next() {
		var id string
		var st filing.Status
		fd, done := filingDest(&st)
		if err := rows.Scan(append([]any{&id}, fd...)...); err != nil {
			return nil, fmt.Errorf("filing of %s: %w", id, err)
		}
		done()
		sts[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("filings of %d report(s): %w", len(ids), err)
	}
	return sts, nil
}

// SaveFiling stores st as report id's filing, with the status the API
// derives from it. The caller holds the row lock (LoadFilings).
func SaveFiling(ctx context.Context, tx pgx.Tx, id string, st filing.Status) error {
	past := st.Past
	if past == nil {
		past = []int64{}
	}
	_, err := tx.Exec(ctx, `UPDATE reports SET filing = $2, ncmec_state = $3, ncmec_report_id = nullif($4, 0::bigint),
			ncmec_environment = nullif($5, ''), filing_at = $6, last_error = nullif($7, ''), learned_from = nullif($8, ''),
			finished_at = $9, retraction_error = nullif($10, ''), retraction_error_at = $11, ambiguous_submits = $12,
			past_ncmec_report_ids = $13, status = $14, updated_at = now()
		WHERE id = $1`,
		id, st.Filing, st.State, st.NCMECReportID, st.Environment, nullTime(st.At), st.Error, st.LearnedFrom,
		nullTime(st.FinishedAt), st.RetractionError, nullTime(st.RetractionErrorAt), st.Ambiguous, past, report.StatusOf(st.State))
	if err != nil {
		return fmt.Errorf("save filing of %s: %w", id, err)
	}
	return nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrDuplicateKey: a report of the submitter already holds the idempotency key.
var ErrDuplicateKey = errors.New("a report was stored under this idempotency key before")

// ByIdempotencyKey returns the id of the report submitter stored under key,
// or ErrNotFound.
func (s *Store) ByIdempotencyKey(ctx context.Context, submitter, key string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT id::text FROM reports WHERE submitted_by = $1 AND idempotency_key = $2`, submitter, key).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("report by idempotency key: %w", err)
	}
	return id, nil
}

// Get returns a report with its files and history.
func (s *Store) Get(ctx context.Context, id string) (*report.Report, error) {
	// One snapshot for the report, its files and its history: read
	// separately, the history could show an event whose state change the
	// report row read a moment earlier does not.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("get report %s: %w", id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return get(ctx, tx, id, "")
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

// Change takes a staff action on a report's filing: with the report
// locked, change checks the rule against r.FilingStatus, may correct the
// report, and returns the event that records the action. The event is
// folded into the filing (filing.Of, Apply) and committed with the report's
// new state in the outbox, in one transaction. A report.submitted event is a
// new filing: the report is stored as the event carries it (corrections
// included), and the NCMEC file ids of the earlier filing are forgotten
// (their history kept).
func (s *Store) Change(ctx context.Context, id string, change func(*report.Report, keyring.WrappedKey) (*pb.Envelope, error)) (*report.Report, error) {
	return s.change(ctx, id, func(r *report.Report, key keyring.WrappedKey) ([]*pb.Envelope, error) {
		ev, err := change(r, key)
		return []*pb.Envelope{ev}, err
	})
}

// Decide records legal's decision on a report held for it, as Change
// does a staff action: decide sets r.Legal to the decision and returns its
// events (report.legal_decided, and report.submitted for an approval),
// committed with the decision and the filing they start.
func (s *Store) Decide(ctx context.Context, id string, decide func(*report.Report, keyring.WrappedKey) ([]*pb.Envelope, error)) (*report.Report, error) {
	return s.change(ctx, id, decide)
}

func (s *Store) change(ctx context.Context, id string, change func(*report.Report, keyring.WrappedKey) ([]*pb.Envelope, error)) (*report.Report, error) {
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
		legal := r.Legal.State
		evs, err := change(r, key)
		if err != nil {
			return err
		}
		st := r.FilingStatus
		for _, ev := range evs {
			if fe, ok := filing.Of(ev); ok {
				st.Apply(fe)
			}
		}
		if err := SaveFiling(ctx, tx, id, st); err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.GetReportSubmitted() != nil {
				if err := storeFiled(ctx, tx, r); err != nil {
					return err
				}
			}
			if err := outbox.Add(ctx, tx, ev); err != nil {
				return err
			}
		}
		r.SetFiling(st)
		if r.Legal.State != legal {
			if err := saveLegal(ctx, tx, r); err != nil {
				return err
			}
		}
		out = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// saveLegal stores r's legal decision and the status it gives the report
// (SaveFiling stores the filing's).
func saveLegal(ctx context.Context, tx pgx.Tx, r *report.Report) error {
	l := r.Legal
	if _, err := tx.Exec(ctx, `UPDATE reports SET legal_state = $2, legal_decided_by = nullif($3, ''),
			legal_decided_by_name = nullif($4, ''), legal_decided_at = $5, legal_reason = nullif($6, ''), status = $7, updated_at = now(),
			legal_decided_by_email = nullif($8, '')
		WHERE id = $1`, r.ID, l.State, l.DecidedBy, l.DecidedByName, l.DecidedAt, l.Reason, r.Status, l.DecidedByEmail); err != nil {
		return fmt.Errorf("store legal decision on %s: %w", r.ID, err)
	}
	return nil
}

// storeFiled stores the report as a new filing sends it.
func storeFiled(ctx context.Context, tx pgx.Tx, r *report.Report) error {
	details, err := json.Marshal(r.Details)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE reports SET details = $2, incident_time = $3 WHERE id = $1`, r.ID, details, r.IncidentTime); err != nil {
		return fmt.Errorf("store corrections of %s: %w", r.ID, err)
	}
	for i := range r.Files {
		f := &r.Files[i]
		meta, err := json.Marshal(f.FileInput)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE files SET meta = $3, ncmec_file_id = NULL, ncmec_md5 = NULL WHERE report_id = $1 AND id = $2`,
			r.ID, f.ID, meta); err != nil {
			return fmt.Errorf("store corrections of %s: %w", r.ID, err)
		}
		f.NCMECFileID, f.NCMECMD5 = "", ""
	}
	return nil
}

// RecordAction publishes a staff action (a sign-in, a page view, a denied
// request) for the audit log through the outbox.
func (s *Store) RecordAction(ctx context.Context, ev *pb.Envelope) error {
	return database.InTx(ctx, s.pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, ev) })
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
