package store

// The evidence lifecycle's statements on reports and files (package
// lifecycle): rewrapping data keys under the current master key, the stream
// purge of destroyed reports' submitted events, and S3 object locks.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/keyring"
)

// rewrapBatch bounds one transaction of RewrapDataKeys, so that intake
// keeps serving meanwhile.
const rewrapBatch = 100

// RewrapDataKeys rewraps, in one transaction, up to a batch of the stored
// data keys not under the master key current, with rewrap; it returns how
// many it rewrapped (0: none are left). Keys another rewrap holds are
// skipped. An error of rewrap fails the whole batch.
func (s *Store) RewrapDataKeys(ctx context.Context, current string, rewrap func(reportID string, w keyring.WrappedKey) (keyring.WrappedKey, error)) (int, error) {
	n := 0
	err := database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, `SELECT id::text, data_key_id, data_key FROM reports
			WHERE data_key IS NOT NULL AND data_key_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED`, current, rewrapBatch)
		if err != nil {
			return err
		}
		type row struct {
			id string
			w  keyring.WrappedKey
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.w.MasterKeyID, &x.w.Ciphertext)
		})
		if err != nil {
			return err
		}
		for _, x := range list {
			nw, err := rewrap(x.id, x.w)
			if err != nil {
				return fmt.Errorf("rewrap data key of report %s: %w", x.id, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE reports SET data_key_id = $2, data_key = $3 WHERE id = $1`, x.id, nw.MasterKeyID, nw.Ciphertext); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// KeyCount is how many stored data keys a master key wraps.
type KeyCount struct {
	MasterKeyID string
	DataKeys    int
}

// DataKeysInUse counts the stored data keys of each master key that wraps
// any, by master key id.
func (s *Store) DataKeysInUse(ctx context.Context) ([]KeyCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT data_key_id, count(*) FROM reports WHERE data_key IS NOT NULL GROUP BY 1 ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("keys in use: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[KeyCount])
	if err != nil {
		return nil, fmt.Errorf("keys in use: %w", err)
	}
	return out, nil
}

// PurgeOwed is a report whose data key is destroyed and whose submitted
// events the stream still holds; Filing is how many there are.
type PurgeOwed struct {
	ID     string
	Filing int
}

// StreamPurgeOwed lists up to limit reports owed a stream purge, the
// longest destroyed first.
func (s *Store) StreamPurgeOwed(ctx context.Context, limit int) ([]PurgeOwed, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text, filing FROM reports
		WHERE data_key_destroyed_at IS NOT NULL AND stream_purged_at IS NULL ORDER BY data_key_destroyed_at LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[PurgeOwed])
}

// StreamPurged records that report reportID's submitted events are gone
// from the stream, and deletes the outbox's published copies of them.
func (s *Store) StreamPurged(ctx context.Context, reportID string) error {
	return database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE published_at IS NOT NULL AND event_id IN
			(SELECT event_id FROM report_events WHERE report_id = $1 AND type = $2)`, reportID, events.ReportSubmitted); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE reports SET stream_purged_at = now() WHERE id = $1`, reportID)
		return err
	})
}

// LockTarget is a live object whose S3 object lock falls short of its
// report's retention, and the time to lock it until.
type LockTarget struct {
	FileID, Key, Version string
	Until                time.Time
}

// LockTargets lists up to 1000 live objects to lock, of report reportID
// (every report when empty): each until its report's retention, or a
// provisional submitted_at + retention while the report is not filed.
func (s *Store) LockTargets(ctx context.Context, retention time.Duration, reportID string) ([]LockTarget, error) {
	var id any
	if reportID != "" {
		id = reportID
	}
	rows, err := s.pool.Query(ctx, `SELECT f.id::text, f.object_key, f.object_version,
			greatest(coalesce(r.retain_until, '-infinity'), r.submitted_at + make_interval(secs => $1))
		FROM files f JOIN reports r ON r.id = f.report_id
		WHERE f.destroyed_at IS NULL AND ($2::uuid IS NULL OR f.report_id = $2::uuid)
		  AND (f.locked_until IS NULL OR f.locked_until < greatest(coalesce(r.retain_until, '-infinity'), r.submitted_at + make_interval(secs => $1)))
		LIMIT 1000`, retention.Seconds(), id)
	if err != nil {
		return nil, fmt.Errorf("objects to lock: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[LockTarget])
	if err != nil {
		return nil, fmt.Errorf("objects to lock: %w", err)
	}
	return out, nil
}

// Locked records that file fileID's object is locked until until.
func (s *Store) Locked(ctx context.Context, fileID string, until time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE files SET locked_until = greatest(locked_until, $2) WHERE id = $1`, fileID, until); err != nil {
		return fmt.Errorf("record lock of %s: %w", fileID, err)
	}
	return nil
}

// The statements below run inside the lifecycle's own transactions, as
// ExtendRetention runs inside the progress consumer's.

// LockReportRow locks report reportID's row for tx; destroyed is whether
// its data key, so its evidence, is gone. ErrNotFound when there is none.
func LockReportRow(ctx context.Context, tx pgx.Tx, reportID string) (destroyed bool, err error) {
	err = tx.QueryRow(ctx, `SELECT data_key_destroyed_at IS NOT NULL FROM reports WHERE id = $1 FOR UPDATE`, reportID).Scan(&destroyed)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, ErrNotFound
	}
	return destroyed, err
}

// LiveFile is a file whose object is not destroyed.
type LiveFile struct{ ID, Key, SHA256 string }

// LiveFiles lists report reportID's files whose objects are not destroyed,
// in order.
func LiveFiles(ctx context.Context, tx pgx.Tx, reportID string) ([]LiveFile, error) {
	rows, err := tx.Query(ctx, `SELECT id::text, object_key, sha256 FROM files WHERE report_id = $1 AND destroyed_at IS NULL ORDER BY idx`, reportID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[LiveFile])
}

// FileDestroyed records that file fileID's object was destroyed at at,
// and why ("expired", "law_enforcement_request").
func FileDestroyed(ctx context.Context, tx pgx.Tx, fileID, reason string, at time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE files SET destroyed_at = $2, destroyed_reason = $3 WHERE id = $1`, fileID, at, reason)
	return err
}

// DropDataKey destroys report reportID's data key at at (a key destroyed
// before keeps its time).
func DropDataKey(ctx context.Context, tx pgx.Tx, reportID string, at time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE reports SET data_key = NULL, data_key_destroyed_at = coalesce(data_key_destroyed_at, $2) WHERE id = $1`, reportID, at)
	return err
}

// DropDataKeyIfBare destroys report reportID's data key at at when none
// of its files is left to protect; it reports whether it did.
func DropDataKeyIfBare(ctx context.Context, tx pgx.Tx, reportID string, at time.Time) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE reports SET data_key = NULL, data_key_destroyed_at = $2
		WHERE id = $1 AND data_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM files WHERE report_id = $1 AND destroyed_at IS NULL)`, reportID, at)
	return tag.RowsAffected() == 1, err
}

// The expiry rule, in parts so that the preview (ExpirySchedule) shows the
// rule the job applies (ExpiredFiles):
//   - expiring selects live files of reports that are finished or
//     retracted, whose retention is set: a report being filed (or failed,
//     awaiting staff) never expires;
//   - activeHold is a hold h of report r that stands;
//   - eligible is expiring, retention ended ($1 is now) and no hold standing.
const (
	expiring   = `f.destroyed_at IS NULL AND r.status IN ('finished', 'retracted') AND r.retain_until IS NOT NULL`
	activeHold = `h.report_id = r.id AND h.lifted_at IS NULL`
	eligible   = expiring + ` AND r.retain_until <= $1 AND NOT EXISTS (SELECT 1 FROM holds h WHERE ` + activeHold + `)`
)

// ExpiredFile is a file whose retention has ended and that no hold keeps.
type ExpiredFile struct {
	ReportID, FileID, SHA256 string
	Size                     int64
	RetainUntil              time.Time
	ObjectKey                string
}

const expiredColumns = `r.id::text, f.id::text, f.sha256, f.size, r.retain_until, f.object_key`

// ExpiredFiles lists up to limit files eligible for expiry at now, by
// report and in each report's order.
func (s *Store) ExpiredFiles(ctx context.Context, now time.Time, limit int) ([]ExpiredFile, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+expiredColumns+`
		FROM files f JOIN reports r ON r.id = f.report_id WHERE `+eligible+` ORDER BY r.id, f.idx LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("expired evidence: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ExpiredFile])
}

// ExpiredFilesOf lists, in tx, report reportID's files eligible for expiry
// at now; the caller holds the report's row lock (LockReportRow), so that
// a hold placed meanwhile wins.
func ExpiredFilesOf(ctx context.Context, tx pgx.Tx, reportID string, now time.Time) ([]ExpiredFile, error) {
	rows, err := tx.Query(ctx, `SELECT `+expiredColumns+`
		FROM files f JOIN reports r ON r.id = f.report_id WHERE `+eligible+` AND r.id = $2 ORDER BY f.idx`, now, reportID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ExpiredFile])
}

// ScheduledExpiry is one report's live evidence as expiry will treat it.
type ScheduledExpiry struct {
	ReportID, Status string
	RetainUntil      time.Time
	Files            int
	Bytes            int64
	Holds            int // standing holds
}

// ExpirySchedule lists the reports whose evidence expiry will delete,
// soonest first, at most limit of them, held or not.
func (s *Store) ExpirySchedule(ctx context.Context, limit int) ([]ScheduledExpiry, error) {
	rows, err := s.pool.Query(ctx, `SELECT r.id::text, r.status, r.retain_until, count(*), sum(f.size)::bigint,
			(SELECT count(*) FROM holds h WHERE `+activeHold+`)
		FROM files f JOIN reports r ON r.id = f.report_id WHERE `+expiring+`
		GROUP BY r.id ORDER BY r.retain_until, r.id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("expiry schedule: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ScheduledExpiry])
}

// EvidenceState is what the reports table says of a report's evidence.
type EvidenceState struct {
	Status         string
	RetainUntil    *time.Time // nil: kept until filed
	KeyDestroyedAt *time.Time
	Files          int
	LiveFiles      int // not yet destroyed
}

// EvidenceOf returns report reportID's EvidenceState, or ErrNotFound.
func (s *Store) EvidenceOf(ctx context.Context, reportID string) (EvidenceState, error) {
	var e EvidenceState
	err := s.pool.QueryRow(ctx, `SELECT status, retain_until, data_key_destroyed_at,
			(SELECT count(*) FROM files WHERE report_id = r.id),
			(SELECT count(*) FROM files WHERE report_id = r.id AND destroyed_at IS NULL)
		FROM reports r WHERE id = $1`, reportID).Scan(&e.Status, &e.RetainUntil, &e.KeyDestroyedAt, &e.Files, &e.LiveFiles)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("evidence of report %s: %w", reportID, err)
	}
	return e, nil
}
