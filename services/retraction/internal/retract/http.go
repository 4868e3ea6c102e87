package retract

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"takedown/pkg/auth"
	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/filing"
	"takedown/pkg/logging"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/server"
	"takedown/services/retraction/internal/store"
)

// Routes mounts the staff endpoints (DESIGN.md §8); authentication and the
// retractor role are the caller's.
func (r *Retractor) Routes(rt chi.Router) {
	rt.Post("/api/v1/reports/{id}/retraction", r.request)
	rt.Get("/api/v1/reports/{id}/retraction", r.status)
}

const maxReason = 2000

// retractionRequest is the body of POST /api/v1/reports/{id}/retraction.
type retractionRequest struct {
	Reason string `json:"reason"`
	// NCMECReportID names an NCMEC report this system lost track of (an
	// /submit whose answer was lost; staff learnt the id from NCMEC), to
	// retract instead of the report's own filing.
	NCMECReportID *int64 `json:"ncmec_report_id"`
	Environment   string `json:"environment"` // of NCMECReportID; default: the report's
}

// errAlready means another request recorded the same retraction first.
var errAlready = errors.New("already requested")

// request handles POST /api/v1/reports/{id}/retraction. It takes the
// filing's hand-over claim at once, so the answer is certain: 202 when the
// NCMEC submission is still open (or not yet opened, or its filing failed)
// and the retraction is now owed; 409 when the report is finished,
// finishing, already retracted or being retracted, or nothing is open at
// NCMEC. With ncmec_report_id it retracts that lost NCMEC report instead.
func (r *Retractor) request(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	id := chi.URLParam(req, "id")
	staff, _ := auth.FromContext(ctx)
	if _, err := uuid.Parse(id); err != nil {
		server.WriteError(w, server.Errorf(http.StatusNotFound, "not_found", "", "no report %q", id))
		return
	}
	var body retractionRequest
	raw, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err == nil {
		err = server.DecodeJSON(raw, &body)
	}
	if err != nil {
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid_json", "reason",
			`send {"reason": "why the report is retracted"}, and for an NCMEC report this system lost track of also "ncmec_report_id" (a number) and "environment" ("production" or "test")`))
		return
	}
	body.Reason = strings.TrimSpace(body.Reason)
	switch {
	case body.Reason == "":
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "reason", "a reason is required: it is kept in the audit log"))
		return
	case len(body.Reason) > maxReason || !utf8.ValidString(body.Reason):
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "reason", "the reason must be valid text of at most %d bytes", maxReason))
		return
	case body.NCMECReportID != nil && *body.NCMECReportID <= 0:
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "ncmec_report_id", "an NCMEC report id is a positive number"))
		return
	case body.Environment != "" && body.Environment != "production" && body.Environment != "test":
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "environment", `the environment is "production" or "test"`))
		return
	case body.Environment != "" && body.NCMECReportID == nil:
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "environment",
			"an environment is given only with ncmec_report_id: the report's own filing is retracted where it was filed"))
		return
	}
	rep, err := r.store.Get(ctx, r.store.Pool, id)
	if errors.Is(err, store.ErrNotFound) {
		server.WriteError(w, server.Errorf(http.StatusNotFound, "not_found", "", "no report %s is known to the retraction service", id))
		return
	}
	if err != nil {
		server.WriteError(w, err)
		return
	}
	if body.NCMECReportID != nil {
		r.requestLost(w, req, rep, staff, body.Reason, *body.NCMECReportID, body.Environment)
		return
	}
	st := rep.Status()
	if err := st.Allows(filing.Retract); err != nil {
		server.WriteError(w, refusal(err))
		return
	}
	if rep.Retraction == store.Pending && !slices.Contains(byService, rep.RequestedBy) {
		server.WriteError(w, server.Errorf(http.StatusConflict, "already_retracted", "", "the report is already being retracted at %s's request", rep.RequestedBy))
		return
	}
	claim, err := r.handover.ClaimRetract(ctx, id, rep.Filing, st.State == filing.Failed)
	if err != nil {
		r.log.Error("hand-over unavailable", logging.KeyReportID, id, logging.KeyErr, err)
		server.WriteError(w, server.Errorf(http.StatusServiceUnavailable, "unavailable", "", "the retraction cannot be started right now; nothing was changed. Try again in a minute"))
		return
	}
	switch claim {
	case filing.FinishInProgress, filing.FinishedFirst:
		server.WriteError(w, server.Errorf(http.StatusConflict, "finished", "",
			"the NCMEC report is finished (or being finished): only NCMEC can withdraw a finished report; contact NCMEC"))
		return
	case filing.RetractedBefore:
		server.WriteError(w, server.Errorf(http.StatusConflict, "already_retracted", "", "the report is already retracted"))
		return
	}
	err = database.InTx(ctx, r.store.Pool, func(tx pgx.Tx) error {
		ok, err := r.store.Request(ctx, tx, id, body.Reason, staff.Name, true, byService...)
		if err != nil {
			return err
		}
		if !ok {
			return errAlready
		}
		return r.publish(ctx, tx, events.Staff(staff.Subject, staff.Name), id, &pb.RetractionRequested{
			Reason: body.Reason, Filing: uint32(rep.Filing), Environment: rep.Environment})
	})
	switch {
	case errors.Is(err, errAlready):
		server.WriteError(w, server.Errorf(http.StatusConflict, "already_retracted", "", "the report is already being retracted"))
		return
	case err != nil:
		// The claim stays "retracting": the reporter stops and publishes
		// the filing's failure, which makes the retraction due all the same
		// (or the sweep finds the report); asking again records it.
		r.log.Error("record retraction request", logging.KeyReportID, id, logging.KeyErr, err)
		server.WriteError(w, server.Errorf(http.StatusServiceUnavailable, "unavailable", "", "the retraction could not be recorded; try again in a minute"))
		return
	}
	r.log.Info("retraction requested by staff", logging.KeyReportID, id, logging.KeyFiling, rep.Filing, "staff", staff.Subject)
	server.WriteJSON(w, http.StatusAccepted, map[string]any{"report_id": id, "filing": rep.Filing, "status": "retracting"})
}

// refusal answers a retraction the filing's state does not allow, in
// pkg/filing's words.
func refusal(err error) error {
	code := "not_allowed"
	var ref *filing.Refusal
	if errors.As(err, &ref) {
		switch {
		case ref.Action == filing.RetractLost:
			code = "no_ambiguous_submit"
		case ref.State == filing.Finished:
			code = "finished"
		case ref.State == filing.Retracted:
			code = "already_retracted"
		default:
			code = "nothing_to_retract"
		}
	}
	return server.Errorf(http.StatusConflict, code, "", "%s", err.Error())
}

// requestLost records the retraction of NCMEC report nid, one this system
// lost track of. It is allowed only for a report that had an ambiguous
// /submit: otherwise every NCMEC report of it is known, and an id typed
// from elsewhere would retract some other platform's or report's filing.
func (r *Retractor) requestLost(w http.ResponseWriter, req *http.Request, rep store.Report, staff auth.Staff, reason string, nid int64, env string) {
	ctx := req.Context()
	st := rep.Status()
	// An earlier filing's ambiguity counts too: its lost report may
	// outlive the filing by up to a day at NCMEC.
	if err := st.Allows(filing.RetractLost); err != nil && !rep.EverAmbiguous {
		server.WriteError(w, refusal(err))
		return
	}
	if nid == st.NCMECReportID {
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "ncmec_report_id",
			"NCMEC report %d is this report's current filing, not a lost one: retract it without ncmec_report_id", nid))
		return
	}
	switch {
	case env == "" && rep.Environment == "":
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "environment",
			`the report's NCMEC environment is not known yet: give "environment" ("production" or "test")`))
		return
	case env == "":
		env = rep.Environment
	case rep.Environment != "" && env != rep.Environment:
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "environment",
			"the report is filed in NCMEC's %s environment, so its lost /submit went there, not to %s", rep.Environment, env))
		return
	}
	if r.clients[env] == nil {
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "environment", "no NCMEC credentials are configured for the %s environment", env))
		return
	}
	err := database.InTx(ctx, r.store.Pool, func(tx pgx.Tx) error {
		ok, err := r.store.RequestLost(ctx, tx, store.Lost{ReportID: rep.ReportID, NCMECReportID: nid, Environment: env,
			Filing: rep.Filing, Reason: reason, RequestedBy: staff.Name}, true)
		if err != nil {
			return err
		}
		if !ok {
			return errAlready
		}
		return r.publish(ctx, tx, events.Staff(staff.Subject, staff.Name), rep.ReportID, &pb.RetractionRequested{
			Reason: reason, Filing: uint32(rep.Filing), NcmecReportId: nid, Environment: env})
	})
	switch {
	case errors.Is(err, errAlready):
		server.WriteError(w, server.Errorf(http.StatusConflict, "already_retracted", "", "NCMEC report %d is already retracted or being retracted", nid))
		return
	case err != nil:
		r.log.Error("record retraction of a lost NCMEC report", logging.KeyReportID, rep.ReportID, logging.KeyNCMECReportID, nid, logging.KeyErr, err)
		server.WriteError(w, server.Errorf(http.StatusServiceUnavailable, "unavailable", "", "the retraction could not be recorded; nothing was changed. Try again in a minute"))
		return
	}
	r.log.Info("retraction of a lost NCMEC report requested by staff", logging.KeyReportID, rep.ReportID, logging.KeyNCMECReportID, nid, logging.KeyEnvironment, env, "staff", staff.Subject)
	server.WriteJSON(w, http.StatusAccepted, map[string]any{"report_id": rep.ReportID, "ncmec_report_id": nid, "environment": env, "status": "retracting"})
}

// status handles GET /api/v1/reports/{id}/retraction.
func (r *Retractor) status(w http.ResponseWriter, req *http.Request) {
	id := chi.URLParam(req, "id")
	if _, err := uuid.Parse(id); err != nil {
		server.WriteError(w, server.Errorf(http.StatusNotFound, "not_found", "", "no report %q", id))
		return
	}
	rep, err := r.store.Get(req.Context(), r.store.Pool, id)
	if errors.Is(err, store.ErrNotFound) {
		server.WriteError(w, server.Errorf(http.StatusNotFound, "not_found", "", "no report %s is known to the retraction service", id))
		return
	}
	if err != nil {
		server.WriteError(w, err)
		return
	}
	lost, err := r.store.ListLost(req.Context(), id)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	lostOut := make([]map[string]any, 0, len(lost))
	for _, l := range lost {
		lostOut = append(lostOut, map[string]any{"ncmec_report_id": l.NCMECReportID, "environment": l.Environment,
			"outcome": l.Outcome, "reason": l.Reason, "requested_by": l.RequestedBy, "attempts": l.Attempts, "last_error": l.LastError})
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{
		"report_id": rep.ReportID, "filing": rep.Filing, "ncmec_report_id": rep.NCMECReportID, "environment": rep.Environment,
		"ncmec_state": rep.NCMECState, "retraction": rep.Retraction, "reason": rep.Reason,
		"requested_by": rep.RequestedBy, "attempts": rep.Attempts, "last_error": rep.LastError,
		"lost_retractions": lostOut,
	})
}
