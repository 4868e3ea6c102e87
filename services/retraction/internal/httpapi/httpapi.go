// Package httpapi is the retraction service's staff API (DESIGN.md §8)
// over package retract: it reads requests, calls the use cases and writes
// their answers; pkg/server turns their kinds of failure into statuses.
package httpapi

import (
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"takedown/pkg/auth"
	"takedown/pkg/server"
	"takedown/services/retraction/internal/retract"
)

// Routes mounts the staff endpoints of r on rt; authentication and the
// retractor role are the caller's.
func Routes(rt chi.Router, r *retract.Retractor) {
	rt.Post("/api/v1/reports/{id}/retraction", request(r))
	rt.Get("/api/v1/reports/{id}/retraction", status(r))
}

// request handles POST /api/v1/reports/{id}/retraction: 202 when the
// retraction is now owed (retract.Retractor.Request).
func request(r *retract.Retractor) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		staff, _ := auth.FromContext(req.Context())
		var body retract.Request
		raw, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
		if err == nil {
			err = server.DecodeJSON(raw, &body)
		}
		if err != nil {
			server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid_json", "reason",
				`send {"reason": "why the report is retracted"}, and for an NCMEC report this system lost track of also "ncmec_report_id" (a number) and "environment" ("production" or "test")`))
			return
		}
		done, err := r.Request(req.Context(), staff, chi.URLParam(req, "id"), body)
		if err != nil {
			server.WriteError(w, err)
			return
		}
		if done.NCMECReportID != 0 {
			server.WriteJSON(w, http.StatusAccepted, map[string]any{"report_id": done.ReportID, "ncmec_report_id": done.NCMECReportID,
				"environment": done.Environment, "status": "retracting"})
			return
		}
		server.WriteJSON(w, http.StatusAccepted, map[string]any{"report_id": done.ReportID, "filing": done.Filing, "status": "retracting"})
	}
}

// status handles GET /api/v1/reports/{id}/retraction.
func status(r *retract.Retractor) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		rep, lost, err := r.Status(req.Context(), chi.URLParam(req, "id"))
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
}
