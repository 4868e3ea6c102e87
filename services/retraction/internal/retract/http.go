package retract

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"takedown/pkg/auth"
	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/handover"
	"takedown/pkg/outbox"
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

// request handles POST /api/v1/reports/{id}/retraction {"reason": "..."}.
// It takes the report's handover claim at once, so the answer is certain:
// 202 when the NCMEC submission is still open (or not yet opened, or its
// filing failed) and the retraction is now owed; 409 when the report is
// finished, finishing, or already retracted or being retracted.
func (r *Retractor) request(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	id := chi.URLParam(req, "id")
	staff, _ := auth.FromContext(ctx)
	if _, err := uuid.Parse(id); err != nil {
		server.WriteError(w, server.Errorf(http.StatusNotFound, "not_found", "", "no report %q", id))
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	dec := json.NewDecoder(io.LimitReader(req.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid_json", "reason", `send {"reason": "why the report is retracted"}`))
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
	key := handover.Key(id, rep.Filing)
	ok, cur, err := r.handover.Claim(ctx, key, claimable(rep), handover.Retracting)
	if err != nil {
		r.log.Error("handover unavailable", "report_id", id, "err", err)
		server.WriteError(w, server.Errorf(http.StatusServiceUnavailable, "unavailable", "", "the retraction cannot be started right now; nothing was changed. Try again in a minute"))
		return
	}
	if !ok {
		server.WriteError(w, conflict(cur))
		return
	}
	err = database.InTx(ctx, r.store.Pool, func(tx pgx.Tx) error {
		if _, err := r.store.Request(ctx, tx, id, body.Reason, staff.Name); err != nil {
			return err
		}
		ev, err := events.New(id, events.Staff(staff.Subject, staff.Name), &pb.RetractionRequested{Reason: body.Reason})
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
	if err != nil {
		// Give the claim back so the reporter may go on.
		if _, _, herr := r.handover.Claim(ctx, key, []handover.State{handover.Retracting}, handover.Filing); herr != nil {
			r.log.Error("retraction not recorded and its claim not given back; the sweep will retract the report", "report_id", id, "err", herr)
		}
		r.log.Error("record retraction request", "report_id", id, "err", err)
		server.WriteError(w, server.Errorf(http.StatusServiceUnavailable, "unavailable", "", "the retraction could not be recorded; try again in a minute"))
		return
	}
	r.log.Info("retraction requested by staff", "report_id", id, "staff", staff.Subject)
	server.WriteJSON(w, http.StatusAccepted, map[string]string{"report_id": id, "status": "retracting"})
}

func conflict(cur handover.State) error {
	switch cur {
	case handover.Finishing, handover.Finished:
		return server.Errorf(http.StatusConflict, "finished", "", "the NCMEC report is finished (or being finished): only NCMEC can withdraw a finished report; contact NCMEC")
	default:
		return server.Errorf(http.StatusConflict, "already_retracted", "", "the NCMEC report is already retracted or being retracted")
	}
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
	server.WriteJSON(w, http.StatusOK, map[string]any{
		"report_id": rep.ReportID, "filing": rep.Filing, "ncmec_report_id": rep.NCMECReportID,
		"ncmec_state": rep.NCMECState, "retraction": rep.Retraction, "reason": rep.Reason,
		"requested_by": rep.RequestedBy, "attempts": rep.Attempts, "last_error": rep.LastError,
	})
}
