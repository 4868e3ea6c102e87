package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"takedown/pkg/auth"
	"takedown/pkg/filing"
	"takedown/pkg/logging"
	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/reports"
	"takedown/services/intake/internal/store"
)

// statusData is the status page of one report.
type statusData struct {
	Title    string
	Report   *report.Report
	Flash    string
	Problems []problem
	Reason   string
	// The next steps (filing.Status.NextSteps) this staff member may take.
	CanRetract     bool
	CanRetractLost bool
	CanRefile      bool
	CanCorrect     bool // filing again may correct the report: nothing was opened at NCMEC
	CanClose       bool
	CanDecideLegal bool       // legal's decision, where the report waits for it (legal.go)
	Correct        url.Values // the correction form's values
	Terminal       bool       // nothing more will happen by itself: stop polling
	FilesOnNCMEC   int
	// Advice says in plain words what happened and what to do, while the
	// report is in the attention queue (store.Explain): one wording for the
	// page and the queue.
	Advice *store.Advice
	// History is the report's events with files named, not numbered.
	History []report.Event
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
		err = w.reports.ReportedBefore(r.Context(), rep)
	}
	if err != nil {
		w.fail(rw, r, err)
		return nil, false
	}
	return rep, true
}

// settled reports whether nothing more will happen to the report by itself:
// its current filing is settled (finished, retracted or closed), or failed
// before NCMEC opened anything (no service acts on that: it waits for staff
// to correct and file again, or close), and the Salesforce case shows that
// filing's state (its last write may come after NCMEC's answer), or the
// case could not be written. A filing that failed after NCMEC opened a
// report is not: the retraction service withdraws it.
func settled(rep *report.Report) bool {
	if rep.Legal.State == report.LegalRejected {
		return true // never filed
	}
	st := rep.FilingStatus
	waitsForStaff := st.State == filing.Failed && st.NCMECReportID == 0
	if !st.State.Settled() && !waitsForStaff {
		return false
	}
	return (rep.Case.Filing == rep.Filing && rep.Case.State == string(rep.NCMEC.State)) || rep.Case.Error != ""
}

func (w *Web) status(r *http.Request, rep *report.Report) statusData {
	s, _ := auth.FromContext(r.Context())
	st := rep.FilingStatus
	d := statusData{
		Title: "Report " + rep.ID, Report: rep,
		CanRetract:     s.Has(auth.RoleRetractor) && st.Allows(filing.Retract) == nil,
		CanRetractLost: s.Has(auth.RoleRetractor) && st.Allows(filing.RetractLost) == nil,
		CanRefile:      s.Has(auth.RoleReporter) && st.Allows(filing.FileAgain) == nil,
		CanClose:       s.Has(auth.RoleReporter) && st.Allows(filing.Close) == nil,
		CanDecideLegal: canDecideLegal(s, rep),
		Terminal:       settled(rep),
	}
	d.CanCorrect = d.CanRefile && st.State == filing.Failed && st.NCMECReportID == 0
	d.Correct = url.Values{
		"platform": {rep.Platform}, "urls": {strings.Join(rep.URLs, "\n")}, "notes": {rep.Notes}, "private_note": {rep.PrivateNote},
		"uploader.username": {rep.Uploader.Username}, "uploader.email": {rep.Uploader.Email}, "uploader.ip": {rep.Uploader.IP},
	}
	for _, f := range rep.Files {
		if f.NCMECFileID != "" {
			d.FilesOnNCMEC++
		}
	}
	d.History = namedHistory(rep)
	if o, owed, err := w.store.AttentionOf(r.Context(), w.cfg.Attention, rep.ID); err != nil {
		// The page shows the rest; the advice comes back with the database.
		logging.FromContext(r.Context()).Warn("attention of the report", logging.KeyErr, err)
	} else if owed {
		a := store.Explain(o)
		d.Advice = &a
	}
	return d
}

// namedHistory is rep's history with each file's id replaced by its name
// and number, as staff know the files ("a.jpg (#2)").
func namedHistory(rep *report.Report) []report.Event {
	var pairs []string
	for _, f := range rep.Files {
		name := f.Name
		if name == "" {
			name = "file"
		}
		pairs = append(pairs, f.ID, fmt.Sprintf("%s (#%d)", name, f.Index))
	}
	names := strings.NewReplacer(pairs...)
	out := make([]report.Event, len(rep.Events))
	for i, e := range rep.Events {
		e.Summary = names.Replace(e.Summary)
		out[i] = e
	}
	return out
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

// retract asks the retraction service to retract the report's open NCMEC
// submission. The browser posts here, not there: forgery protection and
// roles are checked in one place, and the request is forwarded with the
// staff member's own token so the retraction service checks them again
// and records who asked.
func (w *Web) retract(rw http.ResponseWriter, r *http.Request) {
	w.retraction(rw, r, false)
}

// retractLost asks the retraction service to retract an NCMEC report this
// system lost track of (an ambiguous /submit), named by staff with its
// environment, the same way as retract.
func (w *Web) retractLost(rw http.ResponseWriter, r *http.Request) {
	w.retraction(rw, r, true)
}

func (w *Web) retraction(rw http.ResponseWriter, r *http.Request, lost bool) {
	rep, ok := w.loadReport(rw, r)
	if !ok {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	reasonID := "f-reason"
	body := map[string]any{"reason": reason}
	var probs []problem
	if lost {
		reasonID = "f-lost-reason"
		id, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("ncmec_report_id")), 10, 64)
		if err != nil || id <= 0 {
			probs = append(probs, problem{Field: "ncmec_report_id", ID: "f-lost-id", Message: "Enter the NCMEC report id NCMEC gave you (a number)."})
		}
		env := r.PostFormValue("environment")
		if env != report.EnvTest && env != report.EnvProduction {
			probs = append(probs, problem{Field: "environment", ID: "f-lost-env", Message: "Choose the NCMEC environment: test or production."})
		}
		body["ncmec_report_id"], body["environment"] = id, env
	}
	if reason == "" {
		probs = append(probs, problem{Field: "reason", ID: reasonID, Message: "Say why the report is being retracted."})
	}
	if len(probs) > 0 {
		d := w.status(r, rep)
		d.Problems, d.Reason = probs, reason
		w.render(rw, r, http.StatusBadRequest, "status", d)
		return
	}
	log := logging.FromContext(r.Context()).With(logging.KeyReportID, rep.ID)
	if err := w.forwardRetraction(r, rep.ID, body); err != nil {
		var ae *server.APIError
		if !errors.As(err, &ae) {
			log.Error("forward retraction", logging.KeyErr, err)
			err = server.Errorf(http.StatusBadGateway, "retraction_unavailable", "", "the retraction service cannot be reached; nothing was retracted. Try again in a minute")
		}
		d := w.status(r, rep)
		d.Reason = reason
		errors.As(err, &ae)
		d.Problems = []problem{{Field: "reason", ID: reasonID, Message: ae.Message}}
		w.render(rw, r, ae.Status, "status", d)
		return
	}
	log.Info("retraction requested", "lost_report", lost)
	w.sessions.PutFlash(r.Context(), "Retraction requested. This page shows when NCMEC confirms it.")
	http.Redirect(rw, r, "/reports/"+rep.ID, http.StatusSeeOther)
}

func (w *Web) forwardRetraction(r *http.Request, id string, fields map[string]any) error {
	token := w.sessions.Bearer(r.Context())
	if token == "" {
		return server.Errorf(http.StatusForbidden, "forbidden", "", "your sign-in carries no token the retraction service accepts; sign in again")
	}
	body, _ := json.Marshal(fields)
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

// refile files a report again (the API's own refile); the correction form
// of a report that failed before NCMEC opened anything posts correct=1
// with the fields to correct.
func (w *Web) refile(rw http.ResponseWriter, r *http.Request) {
	s, _ := auth.FromContext(r.Context())
	var corr *reports.Correction
	if r.PostFormValue("correct") == "1" {
		var urls []string
		for _, u := range strings.Split(r.PostFormValue("urls"), "\n") {
			if u = strings.TrimSpace(u); u != "" {
				urls = append(urls, u)
			}
		}
		var err error
		corr, err = reports.NewCorrection(map[string]any{
			"platform": strings.TrimSpace(r.PostFormValue("platform")), "urls": urls, "notes": r.PostFormValue("notes"),
			"private_note": r.PostFormValue("private_note"),
			"uploader": map[string]string{"username": strings.TrimSpace(r.PostFormValue("uploader.username")),
				"email": strings.TrimSpace(r.PostFormValue("uploader.email")), "ip": strings.TrimSpace(r.PostFormValue("uploader.ip"))},
		})
		if err != nil {
			w.fail(rw, r, err)
			return
		}
	}
	rep, err := w.reports.Refile(r.Context(), s, chi.URLParam(r, "id"), corr)
	if inv, ok := fieldProblems(err); ok {
		// Show the correction form again with what was typed and every problem.
		cur, ok := w.loadReport(rw, r)
		if !ok {
			return
		}
		d := w.status(r, cur)
		for k := range d.Correct {
			d.Correct.Set(k, r.PostFormValue(k))
		}
		for _, p := range inv {
			d.Problems = append(d.Problems, problem{Field: p.Field, ID: "f-c-" + correctionField(p.Field), Message: label(p.Field) + p.Message})
		}
		w.render(rw, r, http.StatusBadRequest, "status", d)
		return
	}
	if err != nil {
		w.fail(rw, r, err)
		return
	}
	w.sessions.PutFlash(r.Context(), fmt.Sprintf("Filed again (filing %d). This page follows the new filing.", rep.Filing))
	http.Redirect(rw, r, "/reports/"+rep.ID, http.StatusSeeOther)
}

// correctionField names the correction form's field of an API field
// ("urls[2]" is the URLs box).
func correctionField(field string) string {
	if i := strings.IndexByte(field, '['); i >= 0 {
		field = field[:i]
	}
	return strings.ReplaceAll(field, ".", "-")
}

// closeReport settles a failed filing that staff resolved outside the tool.
func (w *Web) closeReport(rw http.ResponseWriter, r *http.Request) {
	s, _ := auth.FromContext(r.Context())
	reason := r.PostFormValue("reason")
	rep, err := w.reports.Close(r.Context(), s, chi.URLParam(r, "id"), reason)
	if ae, ok := server.AsAPIError(err); ok && ae.Status == http.StatusBadRequest {
		cur, ok := w.loadReport(rw, r)
		if !ok {
			return
		}
		d := w.status(r, cur)
		d.Problems = []problem{{Field: "reason", ID: "f-close-reason", Message: "Say why the report is closed: " + ae.Message}}
		w.render(rw, r, http.StatusBadRequest, "status", d)
		return
	}
	if err != nil {
		w.fail(rw, r, err)
		return
	}
	w.sessions.PutFlash(r.Context(), "Report closed.")
	http.Redirect(rw, r, "/reports/"+rep.ID, http.StatusSeeOther)
}
