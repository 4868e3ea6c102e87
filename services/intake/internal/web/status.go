package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"takedown/pkg/auth"
	"takedown/pkg/logging"
	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// statusData is the status page of one report.
type statusData struct {
	Title        string
	Report       *report.Report
	Flash        string
	Problems     []problem
	Reason       string
	CanRetract   bool // the staff member may retract, and the NCMEC report is open
	CanRefile    bool
	Terminal     bool // nothing more will happen by itself: stop polling
	FilesOnNCMEC int
}

func (w *Web) loadReport(rw http.ResponseWriter, r *http.Request) (*report.Report, bool) {
	id := chi.URLParam(r, "id")
	if _, err := uuid.Parse(id); err != nil {
		w.fail(rw, r, server.Errorf(http.StatusNotFound, "not_found", "", "there is no report %q", id))
		return nil, false
	}
	rep, err := w.store.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		w.fail(rw, r, server.Errorf(http.StatusNotFound, "not_found", "", "there is no report %s", id))
		return nil, false
	}
	if err == nil {
		err = w.api.ReportedBefore(r.Context(), rep)
	}
	if err != nil {
		w.fail(rw, r, err)
		return nil, false
	}
	return rep, true
}

// ncmecOpen reports whether the report's NCMEC submission is open: opened
// and neither finished nor retracted. Only then can it be retracted.
func ncmecOpen(rep *report.Report) bool {
	return rep.NCMEC.ReportID != 0 && rep.NCMEC.State != "finished" && rep.NCMEC.State != "retracted"
}

// settled reports whether nothing more will happen to the report by itself:
// NCMEC finished or retracted it, and the Salesforce case shows that (its
// last write may come after NCMEC's answer) or could not be written.
func settled(rep *report.Report) bool {
	switch rep.Status {
	case report.StatusFinished, report.StatusRetracted:
		return rep.Case.State == string(rep.Status) || rep.Case.Error != ""
	}
	return false
}

func (w *Web) status(r *http.Request, rep *report.Report) statusData {
	s, _ := auth.FromContext(r.Context())
	d := statusData{
		Title: "Report " + rep.ID, Report: rep,
		CanRetract: s.Has(auth.RoleRetractor) && ncmecOpen(rep),
		CanRefile:  s.Has(auth.RoleReporter) && rep.Status == report.StatusRetracted,
		Terminal:   settled(rep),
	}
	for _, f := range rep.Files {
		if f.NCMECFileID != "" {
			d.FilesOnNCMEC++
		}
	}
	return d
}

func (w *Web) statusPage(rw http.ResponseWriter, r *http.Request) {
	rep, ok := w.loadReport(rw, r)
	if !ok {
		return
	}
	s, _ := auth.FromContext(r.Context())
	w.record(r, rep.ID, s, "view_report", "")
	d := w.status(r, rep)
	d.Flash = w.sessions.Flash(r.Context())
	w.render(rw, r, http.StatusOK, "status", d)
}

// livePart is the changing part of the status page, which the page script
// fetches every few seconds. Polls are not recorded as page views.
func (w *Web) livePart(rw http.ResponseWriter, r *http.Request) {
	rep, ok := w.loadReport(rw, r)
	if !ok {
		return
	}
	w.renderTemplate(rw, r, http.StatusOK, "status", "live", w.status(r, rep))
}

func (w *Web) listPage(rw http.ResponseWriter, r *http.Request) {
	reps, err := w.store.List(r.Context(), "", 50)
	if err != nil {
		w.fail(rw, r, err)
		return
	}
	w.render(rw, r, http.StatusOK, "list", map[string]any{"Title": "Recent reports", "Reports": reps})
}

// retract asks the retraction service to retract the report's open NCMEC
// submission. The browser posts here, not there: forgery protection and
// roles are checked in one place, and the request is forwarded with the
// staff member's own token so the retraction service checks them again
// and records who asked.
func (w *Web) retract(rw http.ResponseWriter, r *http.Request) {
	rep, ok := w.loadReport(rw, r)
	if !ok {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		d := w.status(r, rep)
		d.Problems = []problem{{Field: "reason", ID: "f-reason", Message: "Say why the report is being retracted."}}
		w.render(rw, r, http.StatusBadRequest, "status", d)
		return
	}
	log := logging.FromContext(r.Context()).With("report_id", rep.ID)
	if err := w.forwardRetraction(r, rep.ID, reason); err != nil {
		var ae *server.APIError
		if !errors.As(err, &ae) {
			log.Error("forward retraction", "err", err)
			err = server.Errorf(http.StatusBadGateway, "retraction_unavailable", "", "the retraction service cannot be reached; nothing was retracted. Try again in a minute")
		}
		d := w.status(r, rep)
		d.Reason = reason
		errors.As(err, &ae)
		d.Problems = []problem{{Field: "reason", ID: "f-reason", Message: ae.Message}}
		w.render(rw, r, ae.Status, "status", d)
		return
	}
	log.Info("retraction requested")
	w.sessions.PutFlash(r.Context(), "Retraction requested. This page shows when NCMEC confirms it.")
	http.Redirect(rw, r, "/reports/"+rep.ID, http.StatusSeeOther)
}

func (w *Web) forwardRetraction(r *http.Request, id, reason string) error {
	token := w.sessions.Bearer(r.Context())
	if token == "" {
		return server.Errorf(http.StatusForbidden, "forbidden", "", "your sign-in carries no token the retraction service accepts; sign in again")
	}
	body, _ := json.Marshal(map[string]string{"reason": reason})
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost,
		strings.TrimSuffix(w.cfg.RetractionURL, "/")+"/api/v1/reports/"+id+"/retraction", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var e struct {
		Error server.APIError `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
		return fmt.Errorf("retraction service answered %s", resp.Status)
	}
	status := resp.StatusCode
	if status == http.StatusUnauthorized {
		e.Error.Message = "your sign-in has expired for the retraction service; sign out and in again, then retry"
	}
	if status >= 500 {
		status = http.StatusBadGateway
	}
	return server.Errorf(status, e.Error.Code, "reason", "%s", e.Error.Message)
}

// refile files a retracted report again (the API's own refile).
func (w *Web) refile(rw http.ResponseWriter, r *http.Request) {
	s, _ := auth.FromContext(r.Context())
	rep, err := w.api.Refile(r.Context(), s, chi.URLParam(r, "id"))
	if err != nil {
		w.fail(rw, r, err)
		return
	}
	w.sessions.PutFlash(r.Context(), fmt.Sprintf("Filed again (filing %d). This page follows the new filing.", rep.Filing))
	http.Redirect(rw, r, "/reports/"+rep.ID, http.StatusSeeOther)
}
