// Package store keeps case-writer's per-report state in PostgreSQL (schema
// casewriter): the desired content of each case, changed by events within
// the consumer's transaction, and the bookkeeping of the worker that writes
// it to Salesforce.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"takedown/pkg/database"
	"takedown/pkg/filing"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/case-writer/internal/cases"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates case-writer's tables.
var Migrations = database.Migrations{Name: "casewriter", FS: migrationFiles}

// Channel is notified when a transaction that made a case due commits, so
// that the sync workers of every replica wake at once.
const Channel = "takedown_casewriter_sync"

// Store reads and writes the casewriter schema.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store over pool (search_path casewriter).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// caseColumns are what scanCase reads, in order.
const caseColumns = `report_id, submitted, ncmec, ncmec_files`

// ncmecDoc is the ncmec column: a case's NCMEC side (migration 0002).
type ncmecDoc struct {
	Status        filing.Status
	ExtraCopiesOf []string               `json:",omitempty"`
	Earlier       map[int64]filing.State `json:",omitempty"`
}

// scanCase reads caseColumns and then extra.
func scanCase(row pgx.Row, extra ...any) (*cases.Case, error) {
	var (
		c                     cases.Case
		submitted, doc, files []byte
		n                     ncmecDoc
	)
	dest := append([]any{&c.ReportID, &submitted, &doc, &files}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if submitted != nil {
		c.Submitted = &pb.ReportSubmitted{}
		if err := proto.Unmarshal(submitted, c.Submitted); err != nil {
			return nil, fmt.Errorf("decode stored report %s: %w", c.ReportID, err)
		}
	}
	if err := json.Unmarshal(doc, &n); err != nil {
		return nil, fmt.Errorf("decode NCMEC state of %s: %w", c.ReportID, err)
	}
	c.NCMEC, c.ExtraCopiesOf, c.Earlier = n.Status, n.ExtraCopiesOf, n.Earlier
	if c.NCMEC.Filing < 1 {
		c.NCMEC = filing.New()
	}
	if c.Earlier == nil {
		c.Earlier = map[int64]filing.State{}
	}
	if err := json.Unmarshal(files, &c.NCMECFiles); err != nil {
		return nil, fmt.Errorf("decode NCMEC file ids of %s: %w", c.ReportID, err)
	}
	if c.NCMECFiles == nil {
		c.NCMECFiles = map[string]string{}
	}
	return &c, nil
}

// Edit is an event's change to its report's case.
type Edit struct {
	ReportID string
	Change   cases.Change
}

// Apply applies the edits, in their order, to their reports' cases within
// tx, creating the row of a report that is new. Each report's row is
// locked once, in the order of the reports' first edits (the consumer
// sorts a batch by report, so that concurrent batches lock alike), changed
// in memory by all its edits and written with one UPDATE. Every edit that
// asks for a write raises the revision and makes the case due for the sync
// worker at once; one notification per call wakes the workers.
func Apply(ctx context.Context, tx pgx.Tx, edits []Edit) error {
	type pending struct {
		c      *cases.Case
		writes int
	}
	byReport := make(map[string]*pending)
	var order []*pending
	notify := false
	for _, e := range edits {
		p := byReport[e.ReportID]
		if p == nil {
			c, err := database.LockOrCreate(ctx, tx, func(row pgx.Row) (*cases.Case, error) { return scanCase(row) },
				`SELECT `+caseColumns+` FROM cases WHERE report_id = $1 FOR UPDATE`,
				`INSERT INTO cases (report_id) VALUES ($1) ON CONFLICT DO NOTHING`, e.ReportID)
			if err != nil {
				return fmt.Errorf("update case %s: %w", e.ReportID, err)
			}
			p = &pending{c: c}
			byReport[e.ReportID] = p
			order = append(order, p)
		}
		if e.Change(p.c) {
			p.writes++
			// Only a case with its report is ever written to Salesforce.
			notify = notify || p.c.Submitted != nil
		}
	}
	for _, p := range order {
		if err := save(ctx, tx, p.c, p.writes); err != nil {
			return fmt.Errorf("update case %s: %w", p.c.ReportID, err)
		}
	}
	if notify {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, Channel); err != nil {
			return fmt.Errorf("update cases: notify: %w", err)
		}
	}
	return nil
}

// save writes c, locked in tx, after edits of which writes asked for a
// write: the revision goes up by as many as one by one, so that a batch
// leaves the row as its edits applied alone would.
func save(ctx context.Context, tx pgx.Tx, c *cases.Case, writes int) error {
	var submitted []byte
	if c.Submitted != nil {
		var err error
		if submitted, err = proto.Marshal(c.Submitted); err != nil {
			return err
		}
	}
	doc, err := json.Marshal(ncmecDoc{Status: c.NCMEC, ExtraCopiesOf: c.ExtraCopiesOf, Earlier: c.Earlier})
	if err != nil {
		return err
	}
	files, err := json.Marshal(c.NCMECFiles)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE cases SET submitted = $2, ncmec = $3, ncmec_files = $4,
		rev = rev + $5,
		next_attempt_at = CASE WHEN $5 > 0 THEN now() ELSE next_attempt_at END,
		attempts = CASE WHEN $5 > 0 THEN 0 ELSE attempts END,
		updated_at = now()
		WHERE report_id = $1`,
		c.ReportID, submitted, doc, files, writes)
	return err
}

// Status is the sync bookkeeping of one case.
type Status struct {
	// Rev is the desired revision, SyncedRev the last one written to
	// Salesforce, FailedRev the last one Salesforce refused.
	Rev, SyncedRev, FailedRev int64
	Attempts                  int
	CaseID, LastError         string
}

// ErrNotFound is returned for a report case-writer has heard nothing of.
var ErrNotFound = errors.New("case not found")

// Get returns a report's case and its sync status.
func (s *Store) Get(ctx context.Context, reportID string) (*cases.Case, Status, error) {
	var st Status
	c, err := scanCase(s.pool.QueryRow(ctx, `SELECT `+caseColumns+`, rev, synced_rev, failed_rev, attempts,
		coalesce(case_id, ''), coalesce(last_error, '') FROM cases WHERE report_id = $1`, reportID),
		&st.Rev, &st.SyncedRev, &st.FailedRev, &st.Attempts, &st.CaseID, &st.LastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, st, ErrNotFound
	}
	if err != nil {
		return nil, st, fmt.Errorf("get case %s: %w", reportID, err)
	}
	return c, st, nil
}

// Claim is a case a worker holds while it writes it to Salesforce.
type Claim struct {
	Case     *cases.Case
	Rev      int64 // the revision being written
	Attempts int   // failed attempts at this revision so far
	token    uuid.UUID
}

// Claim takes the case that has been due longest and holds it for lease, so
// that no other worker writes it meanwhile; nil when none is due. The lease
// is a column rather than a row lock held across the Salesforce call, so
// that events about the case are recorded meanwhile without waiting.
func (s *Store) Claim(ctx context.Context, lease time.Duration) (*Claim, error) {
	cl := &Claim{token: uuid.New()}
	c, err := scanCase(s.pool.QueryRow(ctx, `UPDATE cases SET lease_token = $1, lease_until = now() + make_interval(secs => $2)
		WHERE report_id = (
			SELECT report_id FROM cases
			WHERE submitted IS NOT NULL AND rev > synced_rev AND rev > failed_rev AND next_attempt_at <= now()
			  AND (lease_until IS NULL OR lease_until < now())
			ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+caseColumns+`, rev, attempts`, cl.token, lease.Seconds()), &cl.Rev, &cl.Attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim a due case: %w", err)
	}
	cl.Case = c
	return cl, nil
}

// ErrLeaseLost means the claim's lease expired and another worker took the
// case over; the result of this attempt is dropped (the other worker's
// write, an idempotent upsert too, will report).
var ErrLeaseLost = errors.New("lease on the case lost")

// finish ends a claim: it runs set (an UPDATE of the claimed row, with $1 the
// report id and $2 the lease token) and adds ev to the outbox in one
// transaction.
func (s *Store) finish(ctx context.Context, cl *Claim, ev *pb.Envelope, set string, args ...any) error {
	return database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE cases SET `+set+`, lease_token = NULL, lease_until = NULL, updated_at = now()
			WHERE report_id = $1 AND lease_token = $2`, append([]any{cl.Case.ReportID, cl.token}, args...)...)
		if err != nil {
			return fmt.Errorf("finish case %s: %w", cl.Case.ReportID, err)
		}
		if tag.RowsAffected() == 0 {
			return ErrLeaseLost
		}
		if ev != nil {
			return outbox.Add(ctx, tx, ev)
		}
		return nil
	})
}

// Synced records that Salesforce holds the claimed revision as case caseID,
// and announces it with ev (takedown.case.upserted).
func (s *Store) Synced(ctx context.Context, cl *Claim, caseID string, ev *pb.Envelope) error {
	return s.finish(ctx, cl, ev, `synced_rev = greatest(synced_rev, $3), case_id = $4, attempts = 0, last_error = NULL`, cl.Rev, caseID)
}

// Refused records that Salesforce refused the claimed revision for good (a
// validation error), and announces it with ev (takedown.case.failed). A
// later event makes a new revision, which is tried again.
func (s *Store) Refused(ctx context.Context, cl *Claim, reason string, ev *pb.Envelope) error {
	return s.finish(ctx, cl, ev, `failed_rev = greatest(failed_rev, $3), attempts = 0, last_error = $4`, cl.Rev, reason)
}

// Retry schedules another attempt after delay.
func (s *Store) Retry(ctx context.Context, cl *Claim, delay time.Duration, reason string) error {
	return s.finish(ctx, cl, nil, `attempts = attempts + 1, last_error = $3, next_attempt_at = now() + make_interval(secs => $4)`,
		reason, delay.Seconds())
}

// Release gives a claim back untouched (the worker is stopping).
func (s *Store) Release(ctx context.Context, cl *Claim) error {
	return s.finish(ctx, cl, nil, `attempts = attempts`)
}

// Backlog returns how many cases wait to be written to Salesforce and how
// long the oldest has waited since it became due.
func (s *Store) Backlog(ctx context.Context) (int64, time.Duration, error) {
	var n int64
	var secs float64
	err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(updated_at)), 0)::float8
		FROM cases WHERE submitted IS NOT NULL AND rev > synced_rev AND rev > failed_rev`).Scan(&n, &secs)
	return n, time.Duration(secs * float64(time.Second)), err
}
