package web

// The evidence pages for the evidence-admin role: the expiry preview, the
// destruction requests waiting for a second person, and one report's holds
// and requests. Every action is a step of package lifecycle, the same the
// API's evidence-admin endpoints take (and audited by the same events);
// this file only turns forms into those calls and their errors into words.

import (
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"takedown/pkg/auth"
	"takedown/pkg/server"
	"takedown/services/intake/internal/lifecycle"
)

// scheduleLimit bounds the expiry preview: the soonest come first.
const scheduleLimit = 200

// evidenceData is the /evidence page.
type evidenceData struct {
	Title    string
	Flash    string
	Problem  string // why the last action was refused, in plain words
	Now      time.Time
	Me       string // the staff member's subject: they cannot approve their own requests
	Schedule []lifecycle.Expiry
	Requests []lifecycle.DestructionRequest // open, every report's
	Keys     []lifecycle.KeyUse             // master keys by id (never their material) and what they wrap
	Report   *lifecycle.ReportEvidence      // when ?report= names one
	Form     url.Values                     // the refused form's values, to fill in again
	Today    string                         // the default date of an agency's request
}

// evidenceRoutes mounts the evidence pages when the site has a lifecycle.
func (w *Web) evidenceRoutes(r chi.Router) {
	if w.cfg.Lifecycle == nil {
		return
	}
	admin := func(h http.HandlerFunc) http.HandlerFunc { return w.page(h, auth.RoleEvidenceAdmin) }
	r.Get("/evidence", admin(w.evidencePage))
	r.Post("/evidence/reports/{id}/holds", admin(w.form(w.placeHold)))
	r.Post("/evidence/reports/{id}/holds/{hold}/lift", admin(w.form(w.liftHold)))
	r.Post("/evidence/reports/{id}/destruction-requests", admin(w.form(w.requestDestruction)))
	r.Post("/evidence/destruction-requests/{req}/approve", admin(w.form(w.approveDestruction)))
}

func (w *Web) evidencePage(rw http.ResponseWriter, r *http.Request) {
	d := evidenceData{Flash: w.sessions.Flash(r.Context())}
	w.renderEvidence(rw, r, http.StatusOK, r.URL.Query().Get("report"), d)
}

// renderEvidence fills d with the preview, the open requests and, when
// reportID is set, that report's evidence, and renders it with status.
func (w *Web) renderEvidence(rw http.ResponseWriter, r *http.Request, status int, reportID string, d evidenceData) {
	ctx := r.Context()
	m := w.cfg.Lifecycle
	s, _ := auth.FromContext(ctx)
	d.Title, d.Me, d.Now = "Evidence", s.Subject, m.Now()
	d.Today = d.Now.UTC().Format(time.DateOnly)
	if reportID != "" {
		if _, err := uuid.Parse(reportID); err != nil {
			w.fail(rw, r, server.Errorf(http.StatusNotFound, "not_found", "report", "there is no report %q; give a report id as shown on its page", reportID))
			return
		}
		e, err := m.Report(ctx, reportID)
		if err != nil {
			w.fail(rw, r, err)
			return
		}
		d.Report, d.Title = e, "Evidence of report "+reportID
	}
	var err error
	if d.Schedule, err = m.Schedule(ctx, scheduleLimit); err == nil {
		d.Requests, err = m.OpenRequests(ctx)
	}
	if err == nil {
		d.Keys, err = m.KeysInUse(ctx)
	}
	if err != nil {
		w.fail(rw, r, err)
		return
	}
	w.render(rw, r, status, "evidence", d)
}

// done keeps msg for the next page and shows the report's evidence.
func (w *Web) done(rw http.ResponseWriter, r *http.Request, reportID, msg string) {
	w.sessions.PutFlash(r.Context(), msg)
	http.Redirect(rw, r, "/evidence?report="+url.QueryEscape(reportID), http.StatusSeeOther)
}

// refused shows the report's evidence again with why the step was refused
// (the input, a hold, the second-person rule) and the form's values; our
// own failures go to the error page.
func (w *Web) refused(rw http.ResponseWriter, r *http.Request, reportID string, err error) {
	ae, ok := server.AsAPIError(err)
	if !ok || ae.Status >= http.StatusInternalServerError {
		w.fail(rw, r, err)
		return
	}
	if ae.Status == http.StatusNotFound {
		w.fail(rw, r, ae)
		return
	}
	w.renderEvidence(rw, r, ae.Status, reportID, evidenceData{Problem: ae.Message, Form: r.PostForm})
}

// reportParam is the {id} of the path, or false after a 404.
func (w *Web) reportParam(rw http.ResponseWriter, r *http.Request, name string) (string, bool) {
	id := chi.URLParam(r, name)
	if _, err := uuid.Parse(id); err != nil {
		w.fail(rw, r, server.Errorf(http.StatusNotFound, "not_found", "", "there is no such report, hold or request"))
		return "", false
	}
	return id, true
}

func (w *Web) placeHold(rw http.ResponseWriter, r *http.Request) {
	id, ok := w.reportParam(rw, r, "id")
	if !ok {
		return
	}
	s, _ := auth.FromContext(r.Context())
	if _, err := w.cfg.Lifecycle.PlaceHold(r.Context(), s, id, r.PostFormValue("reason")); err != nil {
		w.refused(rw, r, id, err)
		return
	}
	w.done(rw, r, id, "Hold placed: none of this report's evidence is deleted or destroyed while it stands.")
}

func (w *Web) liftHold(rw http.ResponseWriter, r *http.Request) {
	id, ok := w.reportParam(rw, r, "id")
	if !ok {
		return
	}
	hold, ok := w.reportParam(rw, r, "hold")
	if !ok {
		return
	}
	s, _ := auth.FromContext(r.Context())
	if err := w.cfg.Lifecycle.LiftHold(r.Context(), s, id, hold, r.PostFormValue("lift_reason")); err != nil {
		w.refused(rw, r, id, err)
		return
	}
	w.done(rw, r, id, "Hold lifted. If no other hold stands, the evidence expires when its retention ends.")
}

func (w *Web) requestDestruction(rw http.ResponseWriter, r *http.Request) {
	id, ok := w.reportParam(rw, r, "id")
	if !ok {
		return
	}
	s, _ := auth.FromContext(r.Context())
	_, err := w.cfg.Lifecycle.RequestDestruction(r.Context(), s, id,
		r.PostFormValue("agency"), r.PostFormValue("reference"), r.PostFormValue("requested_on"))
	if err != nil {
		w.refused(rw, r, id, err)
		return
	}
	w.done(rw, r, id, "Destruction request recorded. Nothing is destroyed until another evidence-admin approves it.")
}

func (w *Web) approveDestruction(rw http.ResponseWriter, r *http.Request) {
	req, ok := w.reportParam(rw, r, "req")
	if !ok {
		return
	}
	s, _ := auth.FromContext(r.Context())
	d, err := w.cfg.Lifecycle.ApproveDestruction(r.Context(), s, req)
	if err != nil {
		w.refused(rw, r, r.PostFormValue("report"), err)
		return
	}
	w.done(rw, r, d.ReportID, "Approved: the report's evidence is destroyed and its key with it. The report, its hashes and its history stay.")
}
