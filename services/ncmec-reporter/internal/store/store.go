// Package store keeps ncmec-reporter's filings in PostgreSQL (schema ncmec):
// the report.submitted data needed to file, the exact documents sent, every
// NCMEC answer, and the leases that let several workers (and replicas) share
// the filings without filing one twice. Every state change that other
// services hear about is written with its outbox event in one transaction.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"takedown/pkg/database"
	"takedown/pkg/filing"
	"takedown/pkg/keyring"
	"takedown/pkg/ncmec"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the ncmec schema's tables.
var Migrations = database.Migrations{Name: "ncmec", FS: migrationFiles}

// Channel is notified when a filing is recorded, to wake idle workers.
const Channel = "takedown_ncmec_filings"

// Filing states: pkg/filing's, and the reporter's own write-ahead mark.
const (
	StatePending = string(filing.Pending) // nothing sent yet
	// StateSubmitting marks a pending filing whose /submit may have been
	// sent: its answer is unknown until recorded (an ambiguous /submit).
	StateSubmitting = "submitting"
	StateOpen       = string(filing.Opened) // NCMEC report id known
	StateFinished   = string(filing.Finished)
	StateFailed     = string(filing.Failed)
	StateRetracted  = string(filing.Retracted) // retraction took over before /finish
)

// Environments.
const (
	EnvProduction = "production"
	EnvTest       = "test"
)

// ErrLeaseLost means another worker holds the filing now (this worker's
// lease expired): nothing was written, and the worker must stop.
var ErrLeaseLost = errors.New("filing lease lost to another worker")

// Filing is one filing as a worker holding its lease sees it.
type Filing struct {
	ID          int64
	ReportID    string
	Filing      int
	Environment string
	Submitted   *pb.ReportSubmitted // without the data key
	Key         *keyring.WrappedKey // nil once dropped
	State       string
	ReportXML   []byte
	NCMECID     int64
	LastChange  time.Time // of the last successful NCMEC change (created_at before /submit)
	Attempts    int
	Ambiguous   int // ambiguous /submit attempts in a row
	Files       []File

	owner string
}

// File is one evidence file of a filing.
type File struct {
	Idx            int
	FileID         string
	ObjectKey      string
	Size           int64
	MD5            string
	UploadAttempts int
	UploadRefused  int // attempts NCMEC refused with an answer: no copy left
	NCMECFileID    string
	NCMECMD5       string
	Described      bool
}

// Store is the pgx adapter.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store over pool (search_path ncmec).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Record stores a new filing from a report.submitted event within tx (the
// consumer's transaction, with its inbox row). A filing recorded before is
// left as it is.
func Record(ctx context.Context, tx pgx.Tx, eventID string, sub *pb.ReportSubmitted) error {
	r := sub.GetReport()
	env := EnvProduction
	if r.Test {
		env = EnvTest
	}
	filing := int(r.Filing)
	if filing < 1 {
		filing = 1
	}
	var keyID string
	var keyCT []byte
	if k := sub.GetDataKey(); k != nil {
		keyID, keyCT = k.MasterKeyId, k.Ciphertext
	}
	// The key is kept in its own columns, to be dropped when done.
	clean := proto.Clone(sub).(*pb.ReportSubmitted)
	clean.DataKey = nil
	payload, err := proto.Marshal(clean)
	if err != nil {
		return fmt.Errorf("record filing: %w", err)
	}
	var id int64
	err = tx.QueryRow(ctx, `INSERT INTO filings (report_id, filing, environment, event_id, submitted, key_id, key_ciphertext)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (report_id, filing) DO NOTHING RETURNING id`,
		r.Id, filing, env, eventID, payload, keyID, keyCT).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // recorded before
	}
	if err != nil {
		return fmt.Errorf("record filing: %w", err)
	}
	for _, f := range sub.Files {
		if _, err := tx.Exec(ctx, `INSERT INTO filing_files (filing_id, idx, file_id, object_key, size, md5)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, f.Index, f.Id, f.ObjectKey, f.Size, f.Md5); err != nil {
			return fmt.Errorf("record filing file %d: %w", f.Index, err)
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, Channel); err != nil {
		return fmt.Errorf("record filing: notify: %w", err)
	}
	return nil
}

// Claim leases the next due filing to owner for lease, or returns nil when
// none is due. A filing whose lease expired (its worker crashed) is due
// again.
func (s *Store) Claim(ctx context.Context, owner string, lease time.Duration) (*Filing, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `UPDATE filings SET lease_owner = $1, lease_until = now() + make_interval(secs => $2), updated_at = now()
		WHERE id = (SELECT id FROM filings
			WHERE state IN ('pending', 'submitting', 'opened') AND next_attempt_at <= now()
			  AND (lease_until IS NULL OR lease_until < now())
			ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id`, owner, lease.Seconds()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim filing: %w", err)
	}
	f, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	f.owner = owner
	return f, nil
}

func (s *Store) load(ctx context.Context, id int64) (*Filing, error) {
	f := &Filing{ID: id}
	var payload, keyCT []byte
	var keyID *string
	var ncmecID *int64
	err := s.pool.QueryRow(ctx, `SELECT report_id::text, filing, environment, submitted, key_id, key_ciphertext, state,
			report_xml, ncmec_report_id, last_change_at, attempts, ambiguous_submits
		FROM filings WHERE id = $1`, id).Scan(&f.ReportID, &f.Filing, &f.Environment, &payload, &keyID, &keyCT,
		&f.State, &f.ReportXML, &ncmecID, &f.LastChange, &f.Attempts, &f.Ambiguous)
	if err != nil {
		return nil, fmt.Errorf("load filing %d: %w", id, err)
	}
	f.Submitted = &pb.ReportSubmitted{}
	if err := proto.Unmarshal(payload, f.Submitted); err != nil {
		return nil, fmt.Errorf("load filing %d: %w", id, err)
	}
	if keyID != nil && *keyID != "" && len(keyCT) > 0 {
		f.Key = &keyring.WrappedKey{MasterKeyID: *keyID, Ciphertext: keyCT}
	}
	if ncmecID != nil {
		f.NCMECID = *ncmecID
	}
	rows, err := s.pool.Query(ctx, `SELECT idx, file_id::text, object_key, size, md5, upload_attempts, upload_refused,
			coalesce(ncmec_file_id, ''), coalesce(ncmec_md5, ''), described_at IS NOT NULL
		FROM filing_files WHERE filing_id = $1 ORDER BY idx`, id)
	if err != nil {
		return nil, fmt.Errorf("load filing %d files: %w", id, err)
	}
	f.Files, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (File, error) {
		var x File
		err := r.Scan(&x.Idx, &x.FileID, &x.ObjectKey, &x.Size, &x.MD5, &x.UploadAttempts, &x.UploadRefused, &x.NCMECFileID, &x.NCMECMD5, &x.Described)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("load filing %d files: %w", id, err)
	}
	return f, nil
}

// Renew extends the lease; ErrLeaseLost when another worker took it.
func (s *Store) Renew(ctx context.Context, f *Filing, lease time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE filings SET lease_until = now() + make_interval(secs => $3)
		WHERE id = $1 AND lease_owner = $2`, f.ID, f.owner, lease.Seconds())
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrLeaseLost
	}
	return nil
}

// Release gives the lease up at once, so the filing is due again at its
// next_attempt_at.
func (s *Store) Release(ctx context.Context, f *Filing) error {
	_, err := s.pool.Exec(ctx, `UPDATE filings SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2`, f.ID, f.owner)
	return err
}

// ReleaseInstance gives up every lease whose owner starts with prefix (a
// dead instance's workers) and returns how many it released.
func (s *Store) ReleaseInstance(ctx context.Context, prefix string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE filings SET lease_owner = NULL, lease_until = NULL
		WHERE lease_until IS NOT NULL AND starts_with(lease_owner, $1)`, prefix)
	if err != nil {
		return 0, fmt.Errorf("release instance %q: %w", prefix, err)
	}
	return tag.RowsAffected(), nil
}

// update runs one step of f in a transaction. Its first statement is the
// step's own change of the filing row, set (a SET list with updated_at, just
// updated_at for a step that changes nothing else there; its args are $3..),
// fenced by the lease: it changes the row only while the lease is still this
// worker's, and takes the row lock that keeps other workers out until the
// transaction ends, so a worker whose lease was taken over changes nothing
// (ErrLeaseLost). c, when not nil, is the step's NCMEC call: the fence
// statement logs it too, inserting its calls row from the fenced row, so a
// lost lease logs no call either. fn, when not nil, runs the step's other
// statements after it. Fencing with the step's own UPDATE rather than a
// SELECT ... FOR UPDATE before it, and logging the call in that statement,
// each save a statement a step.
func (s *Store) update(ctx context.Context, f *Filing, set string, args []any, c *Call, fn func(tx pgx.Tx) error) error {
	sql := `UPDATE filings SET ` + set + ` WHERE id = $1 AND lease_owner = $2`
	args = append([]any{f.ID, f.owner}, args...)
	if c != nil {
		values := c.values()
		sql = `WITH fenced AS (` + sql + ` RETURNING id)
			INSERT INTO calls (filing_id, ` + callColumns + `) SELECT fenced.id, ` + params(len(args)+1, len(values)) + ` FROM fenced`
		args = append(args, values...)
	}
	return database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("update filing %d: %w", f.ID, err)
		}
		if tag.RowsAffected() == 0 { // no filing row fenced, so no calls row either
			return ErrLeaseLost
		}
		if fn == nil {
			return nil
		}
		return fn(tx)
	})
}

// Call is one NCMEC call's answer, logged in calls.
type Call struct {
	Endpoint  string
	FileIdx   *int
	Err       error
	RequestID string
	Response  []byte
}

// callColumns are the columns of calls that Call.values fill, in order;
// filing_id comes from the statement.
const callColumns = `endpoint, file_idx, outcome, code, request_id, response, error`

// values are c's calls row: the outcome and code that c.Err classifies to,
// and the request id NCMEC's error carries when c has none; empty texts are
// stored as NULL.
func (c Call) values() []any {
	outcome, code, errText := ncmec.Outcome(c.Err), 0, ""
	if c.Err != nil {
		code, errText = ncmec.CodeOf(c.Err), c.Err.Error()
		var e *ncmec.Error
		if errors.As(c.Err, &e) && c.RequestID == "" {
			c.RequestID = e.RequestID
		}
	}
	return []any{c.Endpoint, c.FileIdx, outcome, code, nullable(c.RequestID), nullable(string(c.Response)), nullable(errText)}
}

// nullable is s, or NULL when s is empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// params lists n placeholders from $from: "$3, $4, $5".
func params(from, n int) string {
	p := make([]string, n)
	for i := range p {
		p[i] = fmt.Sprintf("$%d", from+i)
	}
	return strings.Join(p, ", ")
}

// LogCall records a call that changed nothing else (a failure): one
// statement, no transaction around it.
func (s *Store) LogCall(ctx context.Context, f *Filing, c Call) error {
	values := c.values()
	_, err := s.pool.Exec(ctx, `INSERT INTO calls (filing_id, `+callColumns+`) VALUES ($1, `+params(2, len(values))+`)`,
		append([]any{f.ID}, values...)...)
	if err != nil {
		return fmt.Errorf("log call: %w", err)
	}
	return nil
}

// BeginSubmit stores the exact XML about to be sent and marks /submit as
// attempted, before anything is sent: after a crash from here on, the
// filing is never submitted again.
func (s *Store) BeginSubmit(ctx context.Context, f *Filing, doc []byte) error {
	err := s.update(ctx, f, `report_xml = $3, submit_attempted_at = now(), state = 'submitting', updated_at = now()`,
		[]any{doc}, nil, nil)
	if err == nil {
		f.ReportXML, f.State = doc, StateSubmitting
	}
	return err
}

// SubmitNotApplied undoes BeginSubmit after a failure that proves /submit
// took no effect (NCMEC answered an error code, or the connection was never
// made), so the submission may be tried again.
func (s *Store) SubmitNotApplied(ctx context.Context, f *Filing, c Call) error {
	err := s.update(ctx, f, `submit_attempted_at = NULL, state = 'pending', updated_at = now()`, nil, &c, nil)
	if err == nil {
		f.State = StatePending
	}
	return err
}

// SubmitAmbiguous records an /submit that may have opened a report whose id
// we never learnt (c, when there was an answer to log), with the
// ncmec.submit_ambiguous event. The filing is pending again: its next
// /submit opens a fresh report (DESIGN.md §5).
func (s *Store) SubmitAmbiguous(ctx context.Context, f *Filing, c *Call, ev *pb.Envelope) error {
	const set = `state = 'pending', submit_attempted_at = NULL,
		ambiguous_submits = ambiguous_submits + 1, updated_at = now()`
	err := s.update(ctx, f, set, nil, c, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, ev) })
	if err == nil {
		f.State = StatePending
		f.Ambiguous++
	}
	return err
}

// Opened records NCMEC's report id, the moment /submit answered, with the
// ncmec.opened event.
func (s *Store) Opened(ctx context.Context, f *Filing, resp *ncmec.Response, ev *pb.Envelope) error {
	const set = `ncmec_report_id = $3, opened_at = now(), last_change_at = now(),
		submit_request_id = nullif($4, ''), state = 'opened', attempts = 0, last_error = NULL, updated_at = now()`
	c := Call{Endpoint: ncmec.EndpointSubmit, RequestID: resp.RequestID, Response: resp.Raw}
	err := s.update(ctx, f, set, []any{resp.ReportID, resp.RequestID}, &c, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, ev) })
	if err == nil {
		f.NCMECID, f.State, f.LastChange, f.Attempts = resp.ReportID, StateOpen, time.Now(), 0
	}
	return err
}

// UploadAttempt counts an upload about to start; a file with attempts but no
// NCMEC id may exist at NCMEC unrecorded (see README, "duplicates").
// accessed (an evidence.accessed event) records the read of the evidence
// bytes in the audit log, in the same transaction.
func (s *Store) UploadAttempt(ctx context.Context, f *Filing, idx int, accessed *pb.Envelope) error {
	return s.update(ctx, f, `updated_at = now()`, nil, nil, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE filing_files SET upload_attempts = upload_attempts + 1 WHERE filing_id = $1 AND idx = $2`, f.ID, idx); err != nil {
			return err
		}
		return outbox.Add(ctx, tx, accessed)
	})
}

// UploadRefused logs an upload NCMEC refused with an answer: it left no
// copy at NCMEC.
func (s *Store) UploadRefused(ctx context.Context, f *Filing, idx int, c Call) error {
	return s.update(ctx, f, `updated_at = now()`, nil, &c, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE filing_files SET upload_refused = upload_refused + 1 WHERE filing_id = $1 AND idx = $2`, f.ID, idx)
		return err
	})
}

// Uploaded records NCMEC's file id and MD5 for a file.
func (s *Store) Uploaded(ctx context.Context, f *Filing, idx int, res *ncmec.UploadResult) error {
	c := Call{Endpoint: ncmec.EndpointUpload, FileIdx: &idx, RequestID: res.RequestID, Response: res.Raw}
	return s.update(ctx, f, `last_change_at = now(), attempts = 0, updated_at = now()`, nil, &c, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE filing_files SET ncmec_file_id = $3, ncmec_md5 = $4, upload_request_id = nullif($5, ''), uploaded_at = now()
			WHERE filing_id = $1 AND idx = $2`, f.ID, idx, res.FileID, res.Hash, res.RequestID)
		return err
	})
}

// Described records a file's /fileinfo with the ncmec.file_uploaded event.
func (s *Store) Described(ctx context.Context, f *Filing, idx int, doc []byte, resp *ncmec.Response, ev *pb.Envelope) error {
	c := Call{Endpoint: ncmec.EndpointFileInfo, FileIdx: &idx, RequestID: resp.RequestID, Response: resp.Raw}
	return s.update(ctx, f, `last_change_at = now(), attempts = 0, updated_at = now()`, nil, &c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE filing_files SET fileinfo_xml = $3, fileinfo_request_id = nullif($4, ''), described_at = now()
			WHERE filing_id = $1 AND idx = $2`, f.ID, idx, doc, resp.RequestID); err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
}

// Finished records the receipt (empty when /finish answered 5102 and the
// receipt of the first call was lost), drops the data key, and announces it.
func (s *Store) Finished(ctx context.Context, f *Filing, c Call, fileIDs []string, ev *pb.Envelope) error {
	const set = `state = 'finished', receipt_xml = nullif($3, ''), finish_request_id = nullif($4, ''),
		ncmec_file_ids = $5, finished_at = now(), key_id = NULL, key_ciphertext = NULL,
		lease_owner = NULL, lease_until = NULL, updated_at = now()`
	return s.update(ctx, f, set, []any{string(c.Response), c.RequestID, fileIDs}, &c, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, ev) })
}

// Failed ends the filing: the step, NCMEC's code and a description, with the
// ncmec.failed event. The data key is dropped.
func (s *Store) Failed(ctx context.Context, f *Filing, step string, code int, desc string, c *Call, ev *pb.Envelope) error {
	const set = `state = 'failed', failed_step = $3, failed_code = $4, failed_description = $5,
		key_id = NULL, key_ciphertext = NULL, lease_owner = NULL, lease_until = NULL, updated_at = now()`
	return s.update(ctx, f, set, []any{step, code, desc}, c, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, ev) })
}

// Retracted ends a filing the retraction service took over; it announces
// nothing (the retraction service publishes ncmec.retracted).
func (s *Store) Retracted(ctx context.Context, f *Filing) error {
	return s.update(ctx, f, `state = 'retracted', key_id = NULL, key_ciphertext = NULL,
		lease_owner = NULL, lease_until = NULL, updated_at = now()`, nil, nil, nil)
}

// Retry schedules the filing's next attempt at `at` after a transient
// failure, logging the call, and gives the lease up.
func (s *Store) Retry(ctx context.Context, f *Filing, at time.Time, c Call) error {
	const set = `attempts = attempts + 1, next_attempt_at = $3, last_error = $4,
		lease_owner = NULL, lease_until = NULL, updated_at = now()`
	call := &c
	if c.Endpoint == "" {
		call = nil // not an NCMEC call (S3, the handover store): nothing to log
	}
	return s.update(ctx, f, set, []any{at, errText(c.Err)}, call, nil)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Stats are figures for the gauges.
type Stats struct {
	Unfinished     int     // filings not yet finished, failed or retracted
	OldestOpenSecs float64 // age of the oldest open NCMEC report
}

// Stats reads the gauges' figures.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state IN ('pending', 'submitting', 'opened')),
			coalesce(extract(epoch FROM now() - min(opened_at) FILTER (WHERE state = 'opened')), 0)::float8
		FROM filings`).Scan(&st.Unfinished, &st.OldestOpenSecs)
	return st, err
}
