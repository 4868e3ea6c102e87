// Package lifecycle keeps intake's evidence for as long as the law asks and
// no longer (18 U.S.C. 2258A(h), 2258B(c); issue 10): retention recorded in
// PostgreSQL and enforced with S3 object lock, legal holds, expiry,
// destruction on a law-enforcement request approved by a second person, and
// master key rotation.
//
// The database record governs; S3 object lock is a second line that holds
// even against someone with the bucket's credentials. A report's retention is
// provisional (never expires) until its NCMEC filing finishes; it then runs
// to the finish plus Policy.Retention, or, for a report retracted and never
// filed again, to the retraction plus Policy.Retracted. Retention is only
// ever extended.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"takedown/pkg/auth"
	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/fault"
	"takedown/pkg/keyring"
	"takedown/pkg/logging"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/intake/internal/store"
)

// LegalFloor is the preservation period of 18 U.S.C. 2258A(h)(1) as amended
// by the REPORT Act (2024): 1 year after the report is finished. A leap
// year's day more, so that "1 year" is never a day short.
const LegalFloor = 366 * 24 * time.Hour

// Policy is how long evidence is kept and how S3 protects it.
type Policy struct {
	// Retention runs from the finish of the report's NCMEC filing.
	Retention time.Duration
	// Retracted runs from the retraction of a report never filed again.
	Retracted time.Duration
	// Floor is the least Retention accepted: LegalFloor in production;
	// tests lower it to use short periods.
	Floor time.Duration
	// ObjectLock sets S3 object lock retention on every object, in Mode
	// (compliance in production, governance in tests).
	ObjectLock bool
	Mode       evidence.Retention
}

// Validate refuses a retention below the floor.
func (p Policy) Validate() error {
	var errs []error
	if p.Floor < 0 || p.Retention < p.Floor {
		errs = append(errs, fmt.Errorf("retention %s is below the legal preservation period of %s", p.Retention, p.Floor))
	}
	if p.Retracted < 0 {
		errs = append(errs, fmt.Errorf("retention of retracted reports %s is negative", p.Retracted))
	}
	if p.ObjectLock && p.Mode != evidence.Governance && p.Mode != evidence.Compliance {
		errs = append(errs, fmt.Errorf("object lock mode %q is neither GOVERNANCE nor COMPLIANCE", p.Mode))
	}
	return errors.Join(errs...)
}

// Evidence is what the lifecycle needs of the evidence store.
type Evidence interface {
	Retain(ctx context.Context, key, versionID string, mode evidence.Retention, until time.Time) error
	Delete(ctx context.Context, key string) error
	Destroy(ctx context.Context, key string) error
}

var _ Evidence = (*evidence.Store)(nil)

// Manager runs the lifecycle over intake's schema and the evidence bucket.
type Manager struct {
	pool     *pgxpool.Pool
	store    *store.Store // every statement on reports and files; pool serves the lifecycle's own tables (holds, destruction requests)
	stored   chan string  // reports just stored, whose objects Run locks (Stored)
	evidence Evidence
	keys     *keyring.Keyring
	js       jetstream.JetStream
	policy   Policy
	log      *slog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// New returns a Manager; it fails on an invalid policy. js reaches the event
// stream, from which destroyed keys' published copies are deleted.
func New(pool *pgxpool.Pool, ev Evidence, keys *keyring.Keyring, js jetstream.JetStream, p Policy, log *slog.Logger) (*Manager, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("lifecycle: %w", err)
	}
	return &Manager{pool: pool, store: store.New(pool), stored: make(chan string, storedQueue), evidence: ev, keys: keys, js: js, policy: p, log: log, Now: time.Now}, nil
}

// Policy returns the retention policy.
func (m *Manager) Policy() Policy { return m.policy }

// Finished records that the report's filing finished at t: its evidence is
// kept until t + Retention at least. Called by the progress consumer inside
// its transaction.
func Finished(ctx context.Context, tx pgx.Tx, p Policy, reportID string, t time.Time) error {
	return store.ExtendRetention(ctx, tx, reportID, t.Add(p.Retention))
}

// Retracted records that the report's filing was retracted at t.
func Retracted(ctx context.Context, tx pgx.Tx, p Policy, reportID string, t time.Time) error {
	return store.ExtendRetention(ctx, tx, reportID, t.Add(p.Retracted))
}

// Lock sets S3 object lock retention on every live object whose lock falls
// short of its report's retention: a provisional submitted_at + Retention
// while the report is not filed, the recorded retention after. It returns
// how many objects it locked; failures are logged and retried next time.
func (m *Manager) Lock(ctx context.Context) (int, error) { return m.lock(ctx, "") }

// LockReport is Lock for the objects of one report, as soon as it is
// stored, so nothing can delete them before it is filed; it leaves every
// other report to the job (Run), which also retries what fails here.
// Run calls it for each report Stored announces.
func (m *Manager) LockReport(ctx context.Context, reportID string) (int, error) {
	return m.lock(ctx, reportID)
}

// lock locks the objects of reportID, or of every report when it is empty.
func (m *Manager) lock(ctx context.Context, reportID string) (int, error) {
	if !m.policy.ObjectLock {
		return 0, nil
	}
	targets, err := m.store.LockTargets(ctx, m.policy.Retention, reportID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range targets {
		if err := m.evidence.Retain(ctx, t.Key, t.Version, m.policy.Mode, t.Until); err != nil {
			m.log.Warn("object lock: retain failed; will retry", logging.KeyFileID, t.FileID, logging.KeyErr, err)
			continue
		}
		if err := m.store.Locked(ctx, t.FileID, t.Until); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Candidate is a file whose retention has ended and that no hold keeps.
type Candidate struct {
	ReportID    string    `json:"report_id"`
	FileID      string    `json:"file_id"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	RetainUntil time.Time `json:"retain_until"`
}

func candidate(f store.ExpiredFile) Candidate {
	return Candidate{ReportID: f.ReportID, FileID: f.FileID, SHA256: f.SHA256, Size: f.Size, RetainUntil: f.RetainUntil}
}

// Expire deletes the evidence whose retention has ended and that no hold
// keeps, and returns what it deleted; with dryRun it deletes nothing and
// returns what it would delete. The files' rows (hashes, NCMEC file ids),
// the report with its NCMEC receipt and its history stay; an
// evidence.destroyed event records each report's deletion in the audit log.
func (m *Manager) Expire(ctx context.Context, dryRun bool) ([]Candidate, error) {
	files, err := m.store.ExpiredFiles(ctx, m.Now(), 10000)
	if err != nil {
		return nil, err
	}
	cands := make([]Candidate, len(files))
	for i, f := range files {
		cands[i] = candidate(f)
	}
	if dryRun {
		return cands, nil
	}
	var done []Candidate
	seen := map[string]bool{}
	for _, c := range cands {
		if seen[c.ReportID] {
			continue
		}
		seen[c.ReportID] = true
		got, err := m.expireReport(ctx, c.ReportID)
		if err != nil {
			m.log.Warn("expiry: report not expired; will retry", logging.KeyReportID, c.ReportID, logging.KeyErr, err)
			continue
		}
		done = append(done, got...)
	}
	return done, nil
}

// expireReport deletes one report's expired files with the report locked,
// so that a hold placed meanwhile (PlaceHold locks the report too) wins.
func (m *Manager) expireReport(ctx context.Context, reportID string) ([]Candidate, error) {
	var done []Candidate
	err := database.InTx(ctx, m.pool, func(tx pgx.Tx) error {
		done = nil
		if _, err := store.LockReportRow(ctx, tx, reportID); err != nil {
			return err
		}
		files, err := store.ExpiredFilesOf(ctx, tx, reportID, m.Now())
		if err != nil {
			return err
		}
		var keys []string
		for _, f := range files {
			done, keys = append(done, candidate(f)), append(keys, f.ObjectKey)
		}
		if len(done) == 0 {
			return nil
		}
		cert := &pb.EvidenceDestroyed{Reason: "expired"}
		for i, c := range done {
			// No bypass: the object lock must have ended too. If it has
			// not (a longer lock, a skewed clock) the delete fails and
			// expiry tries again next time.
			if err := m.evidence.Delete(ctx, keys[i]); err != nil {
				return fmt.Errorf("delete file %s: %w", c.FileID, err)
			}
			cert.Files = append(cert.Files, &pb.DestroyedFile{FileId: c.FileID, Sha256: c.SHA256, Method: "deleted"})
		}
		for _, c := range done {
			if err := store.FileDestroyed(ctx, tx, c.FileID, "expired", m.Now()); err != nil {
				return err
			}
		}
		// With every file gone the data key protects nothing: drop it, so
		// it need not be rewrapped at the next rotation.
		if cert.DataKeyDestroyed, err = store.DropDataKeyIfBare(ctx, tx, reportID, m.Now()); err != nil {
			return err
		}
		ev, err := events.New(reportID, events.Service("intake"), cert)
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	if len(done) > 0 {
		m.log.Info("evidence expired", logging.KeyReportID, reportID, "files", len(done))
	}
	return done, nil
}

// storedQueue bounds the reports Stored announces that Run has not locked
// yet; beyond it a report waits for the periodic lock.
const storedQueue = 256

// Stored announces that report reportID was just stored: Run locks its
// objects (LockReport) at once, outside the staff member's request. It
// never blocks; a notice that finds the queue full, or that is lost with
// the process, is left to the periodic lock, which finds every object whose
// lock falls short.
func (m *Manager) Stored(reportID string) {
	select {
	case m.stored <- reportID:
	default:
		m.log.Warn("object lock after submission queued for the periodic lock: too many at once", logging.KeyReportID, reportID)
	}
}

// Run locks, expires and purges destroyed keys from the stream every
// interval until ctx ends; in between it locks the objects of each report
// Stored announces.
func (m *Manager) Run(ctx context.Context, every time.Duration) error {
	for {
		if _, err := m.Lock(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("object lock", logging.KeyErr, err)
		}
		if _, err := m.Expire(ctx, false); err != nil && ctx.Err() == nil {
			m.log.Warn("expiry", logging.KeyErr, err)
		}
		if _, err := m.PurgeStream(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("stream purge; will retry", logging.KeyErr, err)
		}
		next := time.NewTimer(every)
		more := m.lockStored(ctx, next.C)
		next.Stop()
		if !more {
			return nil
		}
	}
}

// lockStored locks the objects of the reports Stored announces until next
// fires (true) or ctx ends (false).
func (m *Manager) lockStored(ctx context.Context, next <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-next:
			return true
		case id := <-m.stored:
			if _, err := m.LockReport(ctx, id); err != nil && ctx.Err() == nil {
				m.log.Warn("object lock after submission; the periodic lock will retry", logging.KeyReportID, id, logging.KeyErr, err)
			}
		}
	}
}

// Hold is a legal hold on a report.
type Hold struct {
	ID         string     `json:"id"`
	ReportID   string     `json:"report_id"`
	Reason     string     `json:"reason"`
	PlacedBy   string     `json:"placed_by"`
	PlacedAt   time.Time  `json:"placed_at"`
	LiftedBy   string     `json:"lifted_by,omitempty"`
	LiftedAt   *time.Time `json:"lifted_at,omitempty"`
	LiftReason string     `json:"lift_reason,omitempty"`
}

// Errors of the evidence-admin steps (pkg/fault kinds).
var (
	ErrNotFound = fault.Errorf(fault.NotFound, "", "", "no such report, hold or request")
	// ErrDestroyed refuses a hold or a destruction request on a report
	// whose evidence is gone: it would keep or destroy nothing.
	ErrDestroyed = fault.Errorf(fault.Finished, "destroyed", "",
		"the report's evidence was already destroyed: there is nothing left to hold or destroy")
	errNoReason = fault.Errorf(fault.Invalid, "", "reason", "give a reason")
)

func who(s auth.Staff) string {
	if s.Name != "" {
		return s.Subject + " (" + s.Name + ")"
	}
	return s.Subject
}

// lockReport locks the report row, or fails with ErrNotFound.
func lockReport(ctx context.Context, tx pgx.Tx, reportID string) error {
	_, err := store.LockReportRow(ctx, tx, reportID)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// lockLiveReport is lockReport for a step that needs the report's evidence:
// it fails with ErrDestroyed once that is gone (its data key destroyed).
func lockLiveReport(ctx context.Context, tx pgx.Tx, reportID string) error {
	destroyed, err := store.LockReportRow(ctx, tx, reportID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	case err != nil:
		return err
	case destroyed:
		return ErrDestroyed
	}
	return nil
}

// PlaceHold puts a legal hold on a report: none of its evidence is deleted
// while the hold stands, whatever its retention.
func (m *Manager) PlaceHold(ctx context.Context, s auth.Staff, reportID, reason string) (*Hold, error) {
	if reason == "" {
		return nil, errNoReason
	}
	h := &Hold{ID: events.NewID(), ReportID: reportID, Reason: reason, PlacedBy: who(s), PlacedAt: m.Now()}
	err := database.InTx(ctx, m.pool, func(tx pgx.Tx) error {
		if err := lockLiveReport(ctx, tx, reportID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO holds (id, report_id, reason, placed_by, placed_at) VALUES ($1, $2, $3, $4, $5)`,
			h.ID, reportID, reason, h.PlacedBy, h.PlacedAt); err != nil {
			return err
		}
		ev, err := events.New(reportID, s.Actor(), &pb.EvidenceHoldPlaced{HoldId: h.ID, Reason: reason})
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// LiftHold lifts a hold; expiry then proceeds if nothing else keeps the
// evidence.
func (m *Manager) LiftHold(ctx context.Context, s auth.Staff, reportID, holdID, reason string) error {
	if reason == "" {
		return errNoReason
	}
	return database.InTx(ctx, m.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE holds SET lifted_by = $3, lifted_at = $4, lift_reason = $5
			WHERE id = $1 AND report_id = $2 AND lifted_at IS NULL`, holdID, reportID, who(s), m.Now(), reason)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		ev, err := events.New(reportID, s.Actor(), &pb.EvidenceHoldLifted{HoldId: holdID, Reason: reason})
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
}
