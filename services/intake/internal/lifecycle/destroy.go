package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/auth"
	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/fault"
	"takedown/pkg/logging"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/intake/internal/store"
)

// DestructionRequest is a law-enforcement request to destroy a report's
// evidence (18 U.S.C. 2258B(c)).
type DestructionRequest struct {
	ID          string     `json:"id"`
	ReportID    string     `json:"report_id"`
	Agency      string     `json:"agency"`
	Reference   string     `json:"reference"`
	RequestedOn string     `json:"requested_on"` // YYYY-MM-DD, the date of the agency's request
	RequestedBy string     `json:"requested_by"`
	RecordedAt  time.Time  `json:"recorded_at"`
	ApprovedBy  string     `json:"approved_by,omitempty"`
	ApprovedAt  *time.Time `json:"approved_at,omitempty"`
	// Files says how each file was destroyed, once approved.
	Files []*pb.DestroyedFile `json:"files,omitempty"`
}

// ErrSamePerson refuses an approval by the staff member who recorded the
// request: destruction needs two people.
var ErrSamePerson = fault.Errorf(fault.SecondPerson, "", "",
	"a destruction request must be approved by a different evidence-admin than the one who recorded it")

// RequestDestruction records a law-enforcement request; nothing is destroyed
// until a second evidence-admin approves it.
func (m *Manager) RequestDestruction(ctx context.Context, s auth.Staff, reportID, agency, reference, requestedOn string) (*DestructionRequest, error) {
	day, err := time.Parse(time.DateOnly, requestedOn)
	switch {
	case agency == "":
		return nil, fault.Errorf(fault.Invalid, "", "agency", "name the law-enforcement agency")
	case reference == "":
		return nil, fault.Errorf(fault.Invalid, "", "reference", "give the agency's reference")
	case err != nil:
		return nil, fault.Errorf(fault.Invalid, "", "requested_on", "requested_on must be a date, YYYY-MM-DD")
	case day.After(latestToday(m.Now())):
		return nil, fault.Errorf(fault.Invalid, "", "requested_on", "requested_on %s is in the future: give the date of the agency's request", requestedOn)
	}
	d := &DestructionRequest{ID: events.NewID(), ReportID: reportID, Agency: agency, Reference: reference,
		RequestedOn: requestedOn, RequestedBy: s.Subject, RecordedAt: m.Now()}
	err = database.InTx(ctx, m.pool, func(tx pgx.Tx) error {
		if err := lockLiveReport(ctx, tx, reportID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO destruction_requests (id, report_id, agency, reference, requested_on, requested_by, recorded_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, d.ID, reportID, agency, reference, day, s.Subject, d.RecordedAt); err != nil {
			return err
		}
		ev, err := events.New(reportID, s.Actor(), &pb.EvidenceDestructionRequested{
			RequestId: d.ID, Agency: agency, Reference: reference, RequestedOn: timestamppb.New(day)})
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// latestToday is the latest date it is anywhere on Earth at now (UTC+14):
// an agency's request dated by its own calendar is never after it, and
// one dated later is a typo or a forgery in the permanent record.
func latestToday(now time.Time) time.Time {
	y, m, d := now.UTC().Add(14 * time.Hour).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// ApproveDestruction approves a recorded request as a second evidence-admin
// and destroys the report's evidence: every S3 version of every file is
// removed (bypassing governance retention), and the report's wrapped data
// key is destroyed, so that any copy of the ciphertext left anywhere (a
// version under compliance retention, a backup) cannot be decrypted. The
// evidence.destroyed event is the certificate in the audit log. A report
// under legal hold is not destroyed: lift the hold first, deliberately.
func (m *Manager) ApproveDestruction(ctx context.Context, s auth.Staff, requestID string) (*DestructionRequest, error) {
	var d DestructionRequest
	err := database.InTx(ctx, m.pool, func(tx pgx.Tx) error {
		var day time.Time
		err := tx.QueryRow(ctx, `SELECT report_id::text, agency, reference, requested_on, requested_by, recorded_at, coalesce(approved_by, '')
			FROM destruction_requests WHERE id = $1 FOR UPDATE`, requestID).
			Scan(&d.ReportID, &d.Agency, &d.Reference, &day, &d.RequestedBy, &d.RecordedAt, &d.ApprovedBy)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		d.ID, d.RequestedOn = requestID, day.Format(time.DateOnly)
		if d.ApprovedBy != "" {
			return fault.Errorf(fault.Conflict, "", "", "the request was already approved by %s", d.ApprovedBy)
		}
		if s.Subject == d.RequestedBy {
			return ErrSamePerson
		}
		if err := lockReport(ctx, tx, d.ReportID); err != nil {
			return err
		}
		var held bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM holds WHERE report_id = $1 AND lifted_at IS NULL)`, d.ReportID).Scan(&held); err != nil {
			return err
		}
		if held {
			return fault.Errorf(fault.Conflict, "held", "", "the report is under legal hold; lift the hold before destroying its evidence")
		}
		files, err := store.LiveFiles(ctx, tx, d.ReportID)
		if err != nil {
			return err
		}
		now := m.Now()
		d.ApprovedBy, d.ApprovedAt, d.Files = s.Subject, &now, nil
		for _, f := range files {
			method := "deleted"
			if err := m.evidence.Destroy(ctx, f.Key); err != nil {
				if evidence.IsUnavailable(err) {
					return fmt.Errorf("destroy file %s: %w", f.ID, err)
				}
				// Refused: compliance retention, which nobody can lift.
				// The bytes stay but are unreadable once the key is gone.
				m.log.Warn("destruction: object not removable; its data key is destroyed instead", logging.KeyReportID, d.ReportID, logging.KeyFileID, f.ID, logging.KeyErr, err)
				method = "key_destroyed"
			}
			d.Files = append(d.Files, &pb.DestroyedFile{FileId: f.ID, Sha256: f.SHA256, Method: method})
			if err := store.FileDestroyed(ctx, tx, f.ID, "law_enforcement_request", now); err != nil {
				return err
			}
		}
		if err := store.DropDataKey(ctx, tx, d.ReportID, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE destruction_requests SET approved_by = $2, approved_at = $3 WHERE id = $1`, requestID, s.Subject, now); err != nil {
			return err
		}
		ev, err := events.New(d.ReportID, s.Actor(), &pb.EvidenceDestroyed{
			Reason: "law_enforcement_request", RequestId: requestID, Agency: d.Agency, Reference: d.Reference,
			RequestedBy: d.RequestedBy, ApprovedBy: s.Subject, Files: d.Files, DataKeyDestroyed: true})
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	m.log.Info("evidence destroyed on a law-enforcement request", logging.KeyReportID, d.ReportID, logging.KeyRequestID, requestID, "files", len(d.Files))
	// The submitted events still carry the wrapped key; the lifecycle job
	// retries what this cannot do now.
	if _, err := m.PurgeStream(ctx); err != nil {
		m.log.Warn("stream purge after destruction; the lifecycle job will retry", logging.KeyReportID, d.ReportID, logging.KeyErr, err)
	}
	return &d, nil
}
