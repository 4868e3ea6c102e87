// Package progress keeps each report's status and history up to date from
// the events of the other services, for the status page and the API, and
// the state of the NCMEC connection the reporter announces, for the form and
// the reports list.
package progress

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/auth"
	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/services/intake/internal/lifecycle"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// Consumer is the durable consumer intake reads every event with.
// It lingers (the status page may be that much behind) so that the database
// does a fraction of the work.
var Consumer = stream.ConsumerConfig{Durable: "intake-progress", Concurrency: 4, Linger: stream.OffPathLinger}

// Apply is Applier under the legal preservation period.
var Apply = Applier(lifecycle.Policy{Retention: lifecycle.LegalFloor, Retracted: lifecycle.LegalFloor})

// Applier returns the handler that records a batch of events in their
// reports' histories and folds each into its report's filing (pkg/filing):
// events may arrive in any order, and an earlier filing's events go into
// the history but move nothing. Events about a report intake does not know
// are recorded and otherwise ignored. A finish or retraction of the current
// filing sets the evidence's retention under p (package lifecycle).
//
// However many events and reports a batch holds, the history costs one
// statement, the filings one load and one save per report a filing event
// touched; the other effects (a file's NCMEC id, retention, the case) cost
// theirs per event. A report's events must come in stream order, as the
// consumer keeps them.
func Applier(p lifecycle.Policy) stream.BatchHandler {
	return func(ctx context.Context, tx pgx.Tx, ms []stream.Message) error {
		var history []store.Event
		var ids []string
		seen := map[string]bool{}
		for _, m := range ms {
			if m.GetNcmecConnection() != nil || m.ReportId == "" {
				continue
			}
			history = append(history, store.Event{ID: m.EventId, ReportID: m.ReportId, Type: m.Type,
				OccurredAt: m.OccurredAt.AsTime(), Actor: actor(m.Actor), Summary: describe(m.Envelope)})
			if !seen[m.ReportId] {
				seen[m.ReportId] = true
				ids = append(ids, m.ReportId)
			}
		}
		if err := store.RecordEvents(ctx, tx, history); err != nil {
			return err
		}
		sts, err := store.LoadFilings(ctx, tx, ids)
		if err != nil {
			return err
		}
		// The effects below read and write none of the filing's columns, so
		// that each report's filing is saved once, after its last event.
		touched := map[string]bool{}
		for _, m := range ms {
			if c := m.GetNcmecConnection(); c != nil {
				at := c.CheckedAt
				if at == nil {
					at = m.OccurredAt
				}
				if err := store.ApplyConnection(ctx, tx, store.Connection{Environment: c.Environment, State: c.State,
					Detail: c.Detail, CheckedAt: at.AsTime()}); err != nil {
					return err
				}
				continue
			}
			st, known := sts[m.ReportId]
			if !known {
				continue
			}
			ev, ok := filing.Of(m.Envelope)
			if !ok {
				if err := other(ctx, tx, m.Envelope); err != nil {
					return err
				}
				continue
			}
			current := st.Apply(ev)
			sts[m.ReportId] = st
			// Saved even when the event moved nothing, as each event's save
			// did: updated_at says the filing is alive (attention's stall).
			touched[m.ReportId] = true
			if current {
				if err := currentFiling(ctx, tx, p, m, ev); err != nil {
					return err
				}
			}
		}
		for _, id := range ids {
			if touched[id] {
				if err := store.SaveFiling(ctx, tx, id, sts[id]); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// currentFiling makes the rest of what an event of the report's current
// filing changes.
func currentFiling(ctx context.Context, tx pgx.Tx, p lifecycle.Policy, m stream.Message, ev filing.Event) error {
	if u := m.GetNcmecFileUploaded(); u != nil {
		return store.RecordNCMECFile(ctx, tx, m.ReportId, u.FileId, u.NcmecFileId, u.NcmecMd5)
	}
	switch ev.State {
	case filing.Finished:
		return lifecycle.Finished(ctx, tx, p, m.ReportId, ev.FinishedAt)
	case filing.Retracted:
		return lifecycle.Retracted(ctx, tx, p, m.ReportId, ev.At)
	}
	return nil
}

// other applies the events that are not about the filing itself: the
// Salesforce case's.
func other(ctx context.Context, tx pgx.Tx, ev *pb.Envelope) error {
	switch p := ev.Payload.(type) {
	case *pb.Envelope_CaseUpserted:
		c := p.CaseUpserted
		curFiling, curState, err := store.CaseShown(ctx, tx, ev.ReportId)
		if err != nil {
			return err
		}
		// The consumer handles events concurrently and case-writer may
		// write an earlier filing's case last: the state shown never
		// gives way to an older one.
		n := max(int(c.Filing), 1)
		if curState != "" && !filing.Newer(n, filing.State(c.State), curFiling, filing.State(curState)) {
			return store.SetCaseID(ctx, tx, ev.ReportId, c.CaseId)
		}
		return store.SetCase(ctx, tx, ev.ReportId, c.CaseId, c.State, n)
	case *pb.Envelope_CaseFailed:
		return store.SetCaseError(ctx, tx, ev.ReportId, "Salesforce case could not be written: "+p.CaseFailed.Message)
	}
	return nil
}

func actor(a *pb.Actor) string {
	switch {
	case a == nil:
		return ""
	case a.Kind == pb.Actor_KIND_STAFF:
		return auth.Label(a.Id, a.Name, a.Email)
	default:
		return a.Id
	}
}

// describe says in plain words what an event means for the report.
func describe(ev *pb.Envelope) string {
	switch p := ev.Payload.(type) {
	case *pb.Envelope_ReportSubmitted:
		r := p.ReportSubmitted
		if n := r.GetReport().GetFiling(); n > 1 {
			return fmt.Sprintf("Report filed again (filing %d) with %d file(s).", n, len(r.Files))
		}
		return fmt.Sprintf("Report submitted with %d file(s).", len(r.Files))
	case *pb.Envelope_NcmecOpened:
		o := p.NcmecOpened
		return fmt.Sprintf("NCMEC report %d opened (%s).", o.NcmecReportId, o.Environment)
	case *pb.Envelope_NcmecFileUploaded:
		return fmt.Sprintf("File uploaded to NCMEC as %s.", p.NcmecFileUploaded.NcmecFileId)
	case *pb.Envelope_NcmecFinished:
		f := p.NcmecFinished
		msg := fmt.Sprintf("NCMEC report %d finished with %d file(s).", f.NcmecReportId, len(f.NcmecFileIds))
		if f.LearnedFrom != "" && f.LearnedFrom != filing.FromReceipt {
			msg += " NCMEC answered that it was already finished (5102); its receipt was lost."
		}
		if len(f.ExtraCopiesOf) > 0 || len(f.ExtraNcmecFileIds) > 0 {
			// The protocol cannot name a copy an /upload with a lost answer
			// left: staff should know NCMEC holds it without details.
			msg += fmt.Sprintf(" NCMEC may hold an extra copy without details of file(s) %s (an upload whose answer was lost was repeated)",
				strings.Join(f.ExtraCopiesOf, ", "))
			if len(f.ExtraNcmecFileIds) > 0 {
				msg += "; NCMEC file id(s) " + strings.Join(f.ExtraNcmecFileIds, ", ")
			}
			msg += "."
		}
		return msg
	case *pb.Envelope_NcmecFailed:
		return filing.FailureText(p.NcmecFailed) + "."
	case *pb.Envelope_NcmecRetracted:
		r := p.NcmecRetracted
		return fmt.Sprintf("NCMEC report %d retracted: %s", r.NcmecReportId, r.Reason)
	case *pb.Envelope_NcmecRetractionFailed:
		r := p.NcmecRetractionFailed
		if r.AlreadyFinished {
			return fmt.Sprintf("NCMEC report %d could not be retracted: NCMEC holds it finished.", r.NcmecReportId)
		}
		return fmt.Sprintf("Retracting NCMEC report %d failed: %s", r.NcmecReportId, r.Description)
	case *pb.Envelope_NcmecSubmitAmbiguous:
		a := p.NcmecSubmitAmbiguous
		return fmt.Sprintf("NCMEC's answer to opening the report was lost (attempt %d): %s; %s.", a.Attempt, a.Description, report.AmbiguousNote)
	case *pb.Envelope_ReportClosed:
		return "Closed by staff: " + p.ReportClosed.Reason
	case *pb.Envelope_ReportLegalDecided:
		if p.ReportLegalDecided.Approved {
			return "Legal approved the report for filing: " + p.ReportLegalDecided.Reason
		}
		return "Legal rejected the report; it is not filed: " + p.ReportLegalDecided.Reason
	case *pb.Envelope_CaseUpserted:
		c := p.CaseUpserted
		return fmt.Sprintf("Salesforce case %s written (%s).", c.CaseId, c.State)
	case *pb.Envelope_CaseFailed:
		return "Salesforce case could not be written: " + p.CaseFailed.Message
	case *pb.Envelope_RetractionRequested:
		return "Retraction requested: " + p.RetractionRequested.Reason
	case *pb.Envelope_EvidenceAccessed:
		return fmt.Sprintf("Evidence file %s read: %s.", p.EvidenceAccessed.FileId, p.EvidenceAccessed.Purpose)
	case *pb.Envelope_EvidenceHoldPlaced:
		return "Legal hold placed: " + p.EvidenceHoldPlaced.Reason
	case *pb.Envelope_EvidenceHoldLifted:
		return "Legal hold lifted: " + p.EvidenceHoldLifted.Reason
	case *pb.Envelope_EvidenceDestructionRequested:
		d := p.EvidenceDestructionRequested
		return fmt.Sprintf("Destruction requested by %s (reference %s); awaiting a second approval.", d.Agency, d.Reference)
	case *pb.Envelope_EvidenceDestroyed:
		d := p.EvidenceDestroyed
		return fmt.Sprintf("Evidence destroyed (%s): %d file(s); hashes and NCMEC receipt kept.", d.Reason, len(d.Files))
	case *pb.Envelope_StaffAction:
		return fmt.Sprintf("Staff action: %s", p.StaffAction.Action)
	}
	return "Event " + ev.Type + "."
}
