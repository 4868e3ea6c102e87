package reports

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"takedown/pkg/auth"
	"takedown/pkg/events"
	"takedown/pkg/fault"
	"takedown/pkg/keyring"
	"takedown/pkg/logging"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/intake/internal/report"
)

// The legal gate (LEGAL_APPROVAL=required, Service.HoldForLegal): a submitted
// report is stored and hashed at once and then waits, with nothing sent to
// NCMEC, until a staff member with the legal role who did not submit it
// approves or rejects it. An approval starts the filing; a rejection ends
// the report (kept and listed, never filed). The 2017 tool filed only
// approved reports; a free-text "approved" field the submitter fills in
// let a report marked "not approved" be filed.

// heldForLegal refuses legal fields in a submission the gate holds: there
// the decision is a second person's, recorded by DecideLegal, never the
// submitter's word.
func heldForLegal(in *report.Input) error {
	if in.LegalApproved || in.Approver != "" || in.NotApprovedReason != "" {
		return invalid("decided_by_legal", "legal_approved",
			"legal's decision is taken in takedown by a second person with the legal role, after the report is submitted "+
				"(LEGAL_APPROVAL=required): leave legal_approved, approver and not_approved_reason out")
	}
	return nil
}

// DecideLegal records legal's decision on a report waiting for it: who
// decided (the sign-in's subject and name), when and why go to the report,
// to takedown.report.legal_decided and so to the audit log; an approval
// also sends takedown.report.submitted, which starts the filing and carries
// the approver and time to the Salesforce case. The submitter may not
// decide (fault.SecondPerson); a report not waiting is a Conflict.
func (s *Service) DecideLegal(ctx context.Context, staff auth.Staff, id string, approve bool, reason string) (*report.Report, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errNotFound(id)
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, invalid("invalid", "reason", "say why legal approves or rejects the report")
	}
	if len(reason) > maxReason {
		return nil, invalid("invalid", "reason", "the reason is longer than %d bytes", maxReason)
	}
	ctx, log := logging.With(ctx, logging.KeyReportID, id)
	rep, err := s.store.Decide(ctx, id, func(r *report.Report, key keyring.WrappedKey) ([]*pb.Envelope, error) {
		if r.Legal.State != report.LegalAwaiting {
			return nil, fault.Errorf(fault.Conflict, "conflict", "", "the report is not waiting for a legal decision: %s", decidedWords(r.Legal))
		}
		if r.SubmittedBy == staff.Subject {
			return nil, fault.Errorf(fault.SecondPerson, "second_person_required", "",
				"you submitted this report: a second person with the legal role must decide on it")
		}
		now := s.now().UTC()
		r.Legal = report.Legal{State: report.LegalRejected, DecidedBy: staff.Subject, DecidedByName: staff.Name, DecidedByEmail: staff.Email, DecidedAt: &now, Reason: reason}
		actor := staff.Actor()
		decided, err := events.New(r.ID, actor, &pb.ReportLegalDecided{Approved: approve, Reason: reason})
		if err != nil || !approve {
			return []*pb.Envelope{decided}, err
		}
		r.Legal.State = report.LegalApproved
		r.Details.LegalApproved, r.Details.Approver, r.Details.NotApprovedReason = true, approverName(staff), ""
		prior, err := s.store.PriorNCMECReports(ctx, r.Details)
		if err != nil {
			return nil, err
		}
		submitted, err := events.New(r.ID, actor, &pb.ReportSubmitted{
			Report:  toProto(r, prior),
			Files:   filesToProto(r.Files),
			DataKey: &pb.WrappedKey{MasterKeyId: key.MasterKeyID, Ciphertext: key.Ciphertext},
		})
		return []*pb.Envelope{decided, submitted}, err
	})
	if err := changeError(log, id, "decided on", err); err != nil {
		return nil, err
	}
	log.Info("legal decision", "approved", approve, logging.KeySubject, staff.Subject)
	return rep, nil
}

// approverName is how the report names its approver to NCMEC's reader and
// the case: the sign-in's name, with the e-mail-like subject when the name
// says nothing more.
func approverName(s auth.Staff) string {
	if s.Name == "" || s.Name == s.Subject {
		return s.Subject
	}
	return s.Name
}

// decidedWords says what legal decided on a report, for a refusal.
func decidedWords(l report.Legal) string {
	switch l.State {
	case report.LegalApproved, report.LegalRejected:
		at := ""
		if l.DecidedAt != nil {
			at = " at " + l.DecidedAt.UTC().Format(time.RFC3339)
		}
		return fmt.Sprintf("%s by %s%s", l.State, l.Decider(), at)
	}
	return "the submitter recorded legal's decision (LEGAL_APPROVAL=recorded)"
}
