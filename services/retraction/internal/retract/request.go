package retract

import (
	"context"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"takedown/pkg/auth"
	"takedown/pkg/fault"
	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/retraction/internal/store"
)

const maxReason = 2000

// Request is a staff member's retraction of a report (the body of POST
// /api/v1/reports/{id}/retraction, DESIGN.md §8).
type Request struct {
	Reason string `json:"reason"`
	// NCMECReportID names an NCMEC report this system lost track of (an
	// /submit whose answer was lost; staff learnt the id from NCMEC), to
	// retract instead of the report's own filing.
	NCMECReportID *int64 `json:"ncmec_report_id"`
	Environment   string `json:"environment"` // of NCMECReportID; default: the report's
}

// Requested is a retraction now owed: of the report's filing, or of the
// lost NCMEC report NCMECReportID (non-zero) in Environment.
type Requested struct {
	ReportID      string
	Filing        int
	NCMECReportID int64
	Environment   string
}

// errAlready means another request recorded the same retraction first.
var errAlready = errors.New("already requested")

func errNoReport(id string) error {
	return fault.Errorf(fault.NotFound, "", "", "no report %q", id)
}

// Request records staff's retraction of report id. It takes the filing's
// hand-over claim at once, so the answer is certain: the retraction is
// owed when the NCMEC submission is still open (or not yet opened, or its
// filing failed); a fault.Conflict or fault.Finished refuses it when the
// report is finished, finishing, already retracted or being retracted, or
// nothing is open at NCMEC. With NCMECReportID it retracts that lost NCMEC
// report instead.
func (r *Retractor) Request(ctx context.Context, staff auth.Staff, id string, in Request) (*Requested, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errNoReport(id)
	}
	in.Reason = strings.TrimSpace(in.Reason)
	switch {
	case in.Reason == "":
		return nil, fault.Errorf(fault.Invalid, "", "reason", "a reason is required: it is kept in the audit log")
	case len(in.Reason) > maxReason || !utf8.ValidString(in.Reason):
		return nil, fault.Errorf(fault.Invalid, "", "reason", "the reason must be valid text of at most %d bytes", maxReason)
	case in.NCMECReportID != nil && *in.NCMECReportID <= 0:
		return nil, fault.Errorf(fault.Invalid, "", "ncmec_report_id", "an NCMEC report id is a positive number")
	case in.Environment != "" && in.Environment != "production" && in.Environment != "test":
		return nil, fault.Errorf(fault.Invalid, "", "environment", `the environment is "production" or "test"`)
	case in.Environment != "" && in.NCMECReportID == nil:
		return nil, fault.Errorf(fault.Invalid, "", "environment",
			"an environment is given only with ncmec_report_id: the report's own filing is retracted where it was filed")
	}
	rep, err := r.report(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.NCMECReportID != nil {
		return r.requestLost(ctx, rep, staff, in.Reason, *in.NCMECReportID, in.Environment)
	}
	st := rep.Status()
	if err := st.Allows(filing.Retract); err != nil {
		return nil, refusal(err)
	}
	if rep.Retraction == store.Pending && !slices.Contains(byService, rep.RequestedBy) {
		return nil, fault.Errorf(fault.Conflict, "already_retracted", "", "the report is already being retracted at %s's request", rep.RequestedBy)
	}
	claim, err := r.handover.ClaimRetract(ctx, id, rep.Filing, st.State == filing.Failed)
	if err != nil {
		r.log.Error("hand-over unavailable", "report_id", id, "err", err)
		return nil, fault.Errorf(fault.Unavailable, "", "", "the retraction cannot be started right now; nothing was changed. Try again in a minute")
	}
	switch claim {
	case filing.FinishInProgress, filing.FinishedFirst:
		return nil, fault.Errorf(fault.Finished, "", "",
			"the NCMEC report is finished (or being finished): only NCMEC can withdraw a finished report; contact NCMEC")
	case filing.RetractedBefore:
		return nil, fault.Errorf(fault.Conflict, "already_retracted", "", "the report is already retracted")
	}
	err = r.store.InTx(ctx, func(tx pgx.Tx) error {
		ok, err := r.store.Request(ctx, tx, id, in.Reason, staff.Name, true, byService...)
		if err != nil {
			return err
		}
		if !ok {
			return errAlready
		}
		return r.publish(ctx, tx, staff.Actor(), id, &pb.RetractionRequested{
			Reason: in.Reason, Filing: uint32(rep.Filing), Environment: rep.Environment})
	})
	switch {
	case errors.Is(err, errAlready):
		return nil, fault.Errorf(fault.Conflict, "already_retracted", "", "the report is already being retracted")
	case err != nil:
		// The claim stays "retracting": the reporter stops and publishes
		// the filing's failure, which makes the retraction due all the same
		// (or the sweep finds the report); asking again records it.
		r.log.Error("record retraction request", "report_id", id, "err", err)
		return nil, fault.Errorf(fault.Unavailable, "", "", "the retraction could not be recorded; try again in a minute")
	}
	r.log.Info("retraction requested by staff", "report_id", id, "filing", rep.Filing, "staff", staff.Subject)
	return &Requested{ReportID: id, Filing: rep.Filing}, nil
}

// report is the retraction service's record of report id.
func (r *Retractor) report(ctx context.Context, id string) (store.Report, error) {
	rep, err := r.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return rep, fault.Errorf(fault.NotFound, "", "", "no report %s is known to the retraction service", id)
	}
	return rep, err
}

// refusal is a retraction the filing's state does not allow, in
// pkg/filing's words.
func refusal(err error) error {
	kind, code := fault.Conflict, "not_allowed"
	var ref *filing.Refusal
	if errors.As(err, &ref) {
		switch {
		case ref.Action == filing.RetractLost:
			code = "no_ambiguous_submit"
		case ref.State == filing.Finished:
			kind, code = fault.Finished, ""
		case ref.State == filing.Retracted:
			code = "already_retracted"
		default:
			code = "nothing_to_retract"
		}
	}
	return fault.Errorf(kind, code, "", "%s", err.Error())
}

// requestLost records the retraction of NCMEC report nid, one this system
// lost track of. It is allowed only for a report that had an ambiguous
// /submit: otherwise every NCMEC report of it is known, and an id typed
// from elsewhere would retract some other platform's or report's filing.
func (r *Retractor) requestLost(ctx context.Context, rep store.Report, staff auth.Staff, reason string, nid int64, env string) (*Requested, error) {
	st := rep.Status()
	// An earlier filing's ambiguity counts too: its lost report may
	// outlive the filing by up to a day at NCMEC.
	if err := st.Allows(filing.RetractLost); err != nil && !rep.EverAmbiguous {
		return nil, refusal(err)
	}
	if nid == st.NCMECReportID {
		return nil, fault.Errorf(fault.Invalid, "", "ncmec_report_id",
			"NCMEC report %d is this report's current filing, not a lost one: retract it without ncmec_report_id", nid)
	}
	switch {
	case env == "" && rep.Environment == "":
		return nil, fault.Errorf(fault.Invalid, "", "environment",
			`the report's NCMEC environment is not known yet: give "environment" ("production" or "test")`)
	case env == "":
		env = rep.Environment
	case rep.Environment != "" && env != rep.Environment:
		return nil, fault.Errorf(fault.Invalid, "", "environment",
			"the report is filed in NCMEC's %s environment, so its lost /submit went there, not to %s", rep.Environment, env)
	}
	if r.clients[env] == nil {
		return nil, fault.Errorf(fault.Invalid, "", "environment", "no NCMEC credentials are configured for the %s environment", env)
	}
	err := r.store.InTx(ctx, func(tx pgx.Tx) error {
		ok, err := r.store.RequestLost(ctx, tx, store.Lost{ReportID: rep.ReportID, NCMECReportID: nid, Environment: env,
			Filing: rep.Filing, Reason: reason, RequestedBy: staff.Name}, true)
		if err != nil {
			return err
		}
		if !ok {
			return errAlready
		}
		return r.publish(ctx, tx, staff.Actor(), rep.ReportID, &pb.RetractionRequested{
			Reason: reason, Filing: uint32(rep.Filing), NcmecReportId: nid, Environment: env})
	})
	switch {
	case errors.Is(err, errAlready):
		return nil, fault.Errorf(fault.Conflict, "already_retracted", "", "NCMEC report %d is already retracted or being retracted", nid)
	case err != nil:
		r.log.Error("record retraction of a lost NCMEC report", "report_id", rep.ReportID, "ncmec_report_id", nid, "err", err)
		return nil, fault.Errorf(fault.Unavailable, "", "", "the retraction could not be recorded; nothing was changed. Try again in a minute")
	}
	r.log.Info("retraction of a lost NCMEC report requested by staff", "report_id", rep.ReportID, "ncmec_report_id", nid, "environment", env, "staff", staff.Subject)
	return &Requested{ReportID: rep.ReportID, Filing: rep.Filing, NCMECReportID: nid, Environment: env}, nil
}

// Status is report id's retraction and those of its lost NCMEC reports.
func (r *Retractor) Status(ctx context.Context, id string) (store.Report, []store.Lost, error) {
	if _, err := uuid.Parse(id); err != nil {
		return store.Report{}, nil, errNoReport(id)
	}
	rep, err := r.report(ctx, id)
	if err != nil {
		return rep, nil, err
	}
	lost, err := r.store.ListLost(ctx, id)
	return rep, lost, err
}
