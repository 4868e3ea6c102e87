// Package progress keeps each report's status and history up to date from
// the events of the other services, for the status page and the API.
package progress

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/services/intake/internal/lifecycle"
	"takedown/services/intake/internal/report"
)

// Consumer is the durable consumer intake reads every event with.
var Consumer = stream.ConsumerConfig{Durable: "intake-progress", Concurrency: 4}

// Apply is Applier under the legal preservation period.
var Apply = Applier(lifecycle.Policy{Retention: lifecycle.LegalFloor, Retracted: lifecycle.LegalFloor})

// Applier returns the function that records ev in the report's history and
// moves its status. Events may arrive in any order; a status never moves
// backwards (report.Status.Advance). Events about a report intake does not
// know are recorded and otherwise ignored. A finished or retracted filing
// sets the evidence's retention under p (package lifecycle).
func Applier(p lifecycle.Policy) func(context.Context, pgx.Tx, stream.Message) error {
	return func(ctx context.Context, tx pgx.Tx, m stream.Message) error {
		if err := apply(ctx, tx, m); err != nil || m.ReportId == "" {
			return err
		}
		if stale, err := earlierFiling(ctx, tx, m.Envelope); err != nil || stale {
			return err
		}
		switch pl := m.Payload.(type) {
		case *pb.Envelope_NcmecFinished:
			at := m.OccurredAt.AsTime()
			if t := pl.NcmecFinished.FinishedAt; t != nil {
				at = t.AsTime()
			}
			return lifecycle.Finished(ctx, tx, p, m.ReportId, at)
		case *pb.Envelope_NcmecRetracted:
			return lifecycle.Retracted(ctx, tx, p, m.ReportId, m.OccurredAt.AsTime())
		}
		return nil
	}
}

func apply(ctx context.Context, tx pgx.Tx, m stream.Message) error {
	if m.ReportId == "" {
		return nil
	}
	summary, status, update := describe(m.Envelope)
	if _, err := tx.Exec(ctx, `INSERT INTO report_events (event_id, report_id, type, occurred_at, actor, summary)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING`,
		m.EventId, m.ReportId, m.Type, m.OccurredAt.AsTime(), actor(m.Actor), summary); err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	if stale, err := earlierFiling(ctx, tx, m.Envelope); err != nil || stale {
		return err
	}
	if status != "" {
		var cur report.Status
		err := tx.QueryRow(ctx, `SELECT status FROM reports WHERE id = $1 FOR UPDATE`, m.ReportId).Scan(&cur)
		if err == pgx.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE reports SET status = $2, updated_at = now() WHERE id = $1`, m.ReportId, cur.Advance(status)); err != nil {
			return err
		}
	}
	if update != nil {
		return update(ctx, tx)
	}
	return nil
}

// earlierFiling reports whether ev is about an earlier filing of a report
// that was filed again after a retraction: it stays in the history but moves
// neither status nor NCMEC state.
func earlierFiling(ctx context.Context, tx pgx.Tx, ev *pb.Envelope) (bool, error) {
	var ncmecID int64
	var filing uint32
	switch p := ev.Payload.(type) {
	case *pb.Envelope_NcmecOpened:
		ncmecID, filing = p.NcmecOpened.NcmecReportId, p.NcmecOpened.Filing
	case *pb.Envelope_NcmecFileUploaded:
		ncmecID = p.NcmecFileUploaded.NcmecReportId
	case *pb.Envelope_NcmecFinished:
		ncmecID = p.NcmecFinished.NcmecReportId
	case *pb.Envelope_NcmecFailed:
		ncmecID = p.NcmecFailed.NcmecReportId
	case *pb.Envelope_NcmecRetracted:
		ncmecID = p.NcmecRetracted.NcmecReportId
	case *pb.Envelope_NcmecRetractionFailed:
		ncmecID = p.NcmecRetractionFailed.NcmecReportId
	default:
		return false, nil
	}
	var stale bool
	err := tx.QueryRow(ctx, `SELECT ($2 <> 0 AND $2 = ANY(past_ncmec_report_ids)) OR ($3 <> 0 AND $3 < filing)
		FROM reports WHERE id = $1`, ev.ReportId, ncmecID, int64(filing)).Scan(&stale)
	if err == pgx.ErrNoRows {
		return false, nil
	}
	return stale, err
}

func actor(a *pb.Actor) string {
	switch {
	case a == nil:
		return ""
	case a.Kind == pb.Actor_KIND_STAFF && a.Name != "":
		return a.Name
	default:
		return a.Id
	}
}

type updateFunc func(context.Context, pgx.Tx) error

// caseStates ranks the NCMEC states a Salesforce case shows, as case-writer
// does: later ones win.
const caseStates = `ARRAY['pending', 'opened', 'failed', 'finished', 'retracted']`

// describe says in plain words what an event means for the report, which
// status it leads to, and what else it changes.
func describe(ev *pb.Envelope) (string, report.Status, updateFunc) {
	id := ev.ReportId
	exec := func(sql string, args ...any) updateFunc {
		return func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, sql, append([]any{id}, args...)...)
			return err
		}
	}
	switch p := ev.Payload.(type) {
	case *pb.Envelope_ReportSubmitted:
		return fmt.Sprintf("Report submitted with %d file(s).", len(p.ReportSubmitted.Files)), "", nil
	case *pb.Envelope_NcmecOpened:
		o := p.NcmecOpened
		return fmt.Sprintf("NCMEC report %d opened (%s).", o.NcmecReportId, o.Environment), report.StatusNcmecOpened,
			exec(`UPDATE reports SET ncmec_report_id = $2, ncmec_environment = $3,
				ncmec_state = CASE WHEN ncmec_state IS NULL THEN 'opened' ELSE ncmec_state END WHERE id = $1`, o.NcmecReportId, o.Environment)
	case *pb.Envelope_NcmecFileUploaded:
		u := p.NcmecFileUploaded
		return fmt.Sprintf("File uploaded to NCMEC as %s.", u.NcmecFileId), report.StatusUploading,
			exec(`UPDATE files SET ncmec_file_id = $3, ncmec_md5 = $4 WHERE report_id = $1 AND id = $2`, u.FileId, u.NcmecFileId, u.NcmecMd5)
	case *pb.Envelope_NcmecFinished:
		f := p.NcmecFinished
		return fmt.Sprintf("NCMEC report %d finished with %d file(s).", f.NcmecReportId, len(f.NcmecFileIds)), report.StatusFinished,
			exec(`UPDATE reports SET ncmec_report_id = $2, ncmec_state = 'finished', last_error = NULL WHERE id = $1`, f.NcmecReportId)
	case *pb.Envelope_NcmecFailed:
		f := p.NcmecFailed
		msg := fmt.Sprintf("Filing with NCMEC failed at %s: %s", f.Step, f.Description)
		if f.Code != 0 {
			msg += fmt.Sprintf(" (NCMEC code %d)", f.Code)
		}
		return msg + ".", report.StatusFailed,
			exec(`UPDATE reports SET last_error = $2,
				ncmec_state = CASE WHEN ncmec_state IN ('finished', 'retracted') THEN ncmec_state ELSE 'failed' END WHERE id = $1`, msg)
	case *pb.Envelope_NcmecRetracted:
		r := p.NcmecRetracted
		return fmt.Sprintf("NCMEC report %d retracted: %s", r.NcmecReportId, r.Reason), report.StatusRetracted,
			exec(`UPDATE reports SET ncmec_state = 'retracted' WHERE id = $1`)
	case *pb.Envelope_NcmecRetractionFailed:
		r := p.NcmecRetractionFailed
		msg := fmt.Sprintf("Retracting NCMEC report %d failed: %s", r.NcmecReportId, r.Description)
		return msg, "", exec(`UPDATE reports SET last_error = $2 WHERE id = $1`, msg)
	case *pb.Envelope_CaseUpserted:
		c := p.CaseUpserted
		return fmt.Sprintf("Salesforce case %s written (%s).", c.CaseId, c.State), "",
			// The consumer handles events concurrently, so an older write
			// of the case may come last: the state shown never moves back.
			exec(`UPDATE reports SET case_id = $2, case_error = NULL,
				case_state = CASE WHEN coalesce(array_position(`+caseStates+`, case_state), 0) > coalesce(array_position(`+caseStates+`, $3::text), 0)
					THEN case_state ELSE $3 END
				WHERE id = $1`, c.CaseId, c.State)
	case *pb.Envelope_CaseFailed:
		c := p.CaseFailed
		msg := fmt.Sprintf("Salesforce case could not be written: %s", c.Message)
		return msg, "", exec(`UPDATE reports SET case_error = $2 WHERE id = $1`, msg)
	case *pb.Envelope_RetractionRequested:
		return "Retraction requested: " + p.RetractionRequested.Reason, "", nil
	case *pb.Envelope_EvidenceAccessed:
		return fmt.Sprintf("Evidence file %s read: %s.", p.EvidenceAccessed.FileId, p.EvidenceAccessed.Purpose), "", nil
	case *pb.Envelope_EvidenceHoldPlaced:
		return "Legal hold placed: " + p.EvidenceHoldPlaced.Reason, "", nil
	case *pb.Envelope_EvidenceHoldLifted:
		return "Legal hold lifted: " + p.EvidenceHoldLifted.Reason, "", nil
	case *pb.Envelope_EvidenceDestructionRequested:
		d := p.EvidenceDestructionRequested
		return fmt.Sprintf("Destruction requested by %s (reference %s); awaiting a second approval.", d.Agency, d.Reference), "", nil
	case *pb.Envelope_EvidenceDestroyed:
		d := p.EvidenceDestroyed
		return fmt.Sprintf("Evidence destroyed (%s): %d file(s); hashes and NCMEC receipt kept.", d.Reason, len(d.Files)), "", nil
	case *pb.Envelope_StaffAction:
		return fmt.Sprintf("Staff action: %s", p.StaffAction.Action), "", nil
	}
	return "Event " + ev.Type + ".", "", nil
}
