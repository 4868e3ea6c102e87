package web

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"takedown/pkg/auth"
	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
)

// canDecideLegal reports whether s may take legal's decision on rep now:
// it waits for one, s holds the legal role and did not submit it.
func canDecideLegal(s auth.Staff, rep *report.Report) bool {
	return rep.Legal.State == report.LegalAwaiting && s.Has(auth.RoleLegal) && s.Subject != rep.SubmittedBy
}

// legalDecision takes legal's decision from the status page's form
// (decision=approve|reject, reason) through the API's own DecideLegal.
func (w *Web) legalDecision(rw http.ResponseWriter, r *http.Request) {
	s, _ := auth.FromContext(r.Context())
	approve := r.PostFormValue("decision") == "approve"
	reason := r.PostFormValue("reason")
	if d := r.PostFormValue("decision"); d != "approve" && d != "reject" {
		w.legalProblem(rw, r, reason, "Choose approve or reject.")
		return
	}
	rep, err := w.reports.DecideLegal(r.Context(), s, chi.URLParam(r, "id"), approve, reason)
	if ae, ok := server.AsAPIError(err); ok && ae.Status == http.StatusBadRequest {
		w.legalProblem(rw, r, reason, "Say why: "+ae.Message)
		return
	}
	if err != nil {
		w.fail(rw, r, err)
		return
	}
	flash := "Rejected: the report is kept and will not be filed."
	if approve {
		flash = "Approved: the filing with NCMEC starts now. This page follows it."
	}
	w.sessions.PutFlash(r.Context(), flash)
	http.Redirect(rw, r, "/reports/"+rep.ID, http.StatusSeeOther)
}

func (w *Web) legalProblem(rw http.ResponseWriter, r *http.Request, reason, msg string) {
	cur, ok := w.loadReport(rw, r)
	if !ok {
		return
	}
	d := w.status(r, cur)
	d.Reason = reason
	d.Problems = []problem{{Field: "reason", ID: "f-legal-reason", Message: msg}}
	w.render(rw, r, http.StatusBadRequest, "status", d)
}
