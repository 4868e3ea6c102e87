// Package httpapi is intake's JSON API (DESIGN.md §8), a thin adapter over
// the use cases of package reports: submit a report with its files, read
// one report with its progress, find reports (filters, search, the
// attention queue, the CSV export), file again, close, legal's decision.
package httpapi

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"takedown/pkg/auth"
	"takedown/pkg/fault"
	"takedown/pkg/server"
	"takedown/pkg/staffaction"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/reports"
	"takedown/services/intake/internal/store"
	"takedown/services/intake/internal/upload"
)

// API serves intake's endpoints.
type API struct {
	reports *reports.Service
	log     *slog.Logger
	now     func() time.Time
}

// New returns the API over the use cases.
func New(svc *reports.Service, log *slog.Logger) *API {
	return &API{reports: svc, log: log, now: time.Now}
}

// Guard returns the middleware that admits staff holding one of roles;
// the caller decides how requests authenticate.
type Guard func(roles ...string) func(http.Handler) http.Handler

// Routes mounts the endpoints on r behind guard.
func (a *API) Routes(r chi.Router, guard Guard) {
	r.With(guard(auth.RoleReporter)).Post("/api/v1/reports", a.submit)
	r.With(guard(reports.ReadRoles...)).Get("/api/v1/reports", a.list)
	r.With(guard(reports.ReadRoles...)).Get("/api/v1/reports.csv", a.exportCSV)
	r.With(guard(reports.ReadRoles...)).Get("/api/v1/reports/{id}", a.get)
	r.With(guard(auth.RoleReporter)).Post("/api/v1/reports/{id}/refile", a.refile)
	r.With(guard(auth.RoleReporter)).Post("/api/v1/reports/{id}/close", a.close)
	r.With(guard(auth.RoleLegal)).Post("/api/v1/reports/{id}/legal-decision", a.legalDecision)
}

// submit handles POST /api/v1/reports: a multipart body whose first part is
// the report JSON and whose further parts are the files.
func (a *API) submit(w http.ResponseWriter, r *http.Request) {
	rep, err := upload.Submit(w, r, a.reports, describeJSON)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/reports/"+rep.ID)
	server.WriteJSON(w, http.StatusCreated, rep)
}

// describeJSON reads the API's report part, the submission's first, and
// returns the first file part (nil when there is none).
func describeJSON(mr *multipart.Reader) (*report.Input, *multipart.Part, error) {
	in, err := readReportPart(mr)
	if err != nil {
		return nil, nil, err
	}
	first, err := mr.NextPart()
	if err == io.EOF {
		return in, nil, nil
	}
	if err != nil {
		return nil, nil, reports.BodyError(err)
	}
	return in, first, nil
}

func readReportPart(mr *multipart.Reader) (*report.Input, error) {
	part, err := mr.NextPart()
	if err != nil {
		return nil, reports.BodyError(err)
	}
	if part.FormName() != "report" {
		return nil, badRequest("invalid", "report", "the first part must be named report and hold the report JSON (got %q)", part.FormName())
	}
	raw, err := io.ReadAll(io.LimitReader(part, reports.MaxDescription+1))
	if err != nil {
		return nil, reports.BodyError(err)
	}
	if len(raw) > reports.MaxDescription {
		return nil, fault.Errorf(fault.TooLarge, "report_too_large", "report", "the report JSON is larger than %d bytes", reports.MaxDescription)
	}
	var in report.Input
	if err := server.DecodeJSON(raw, &in); err != nil {
		return nil, badRequest("invalid_json", "report", "the report JSON is malformed: %v", err)
	}
	return &in, nil
}

func badRequest(code, field, format string, args ...any) error {
	return fault.Errorf(fault.Invalid, code, field, format, args...)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	rep, err := a.reports.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		server.WriteError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, rep)
}

func (a *API) refile(w http.ResponseWriter, r *http.Request) {
	staff, _ := auth.FromContext(r.Context())
	var corr *reports.Correction
	// The body is optional: without one the report is filed again as it is.
	raw, err := io.ReadAll(io.LimitReader(r.Body, reports.MaxDescription+1))
	if err != nil {
		server.WriteError(w, badRequest("invalid", "", "the corrections could not be read: %v", err))
		return
	}
	if len(raw) > reports.MaxDescription {
		server.WriteError(w, fault.Errorf(fault.TooLarge, "too_large", "", "the corrections are larger than %d bytes", reports.MaxDescription))
		return
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		var fields map[string]json.RawMessage
		if err := server.DecodeJSON(raw, &fields); err != nil {
			server.WriteError(w, badRequest("invalid", "", "the corrections are not a report JSON object: %v", err))
			return
		}
		corr = reports.CorrectionJSON(raw)
	}
	rep, err := a.reports.Refile(r.Context(), staff, chi.URLParam(r, "id"), corr)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusAccepted, rep)
}

func (a *API) close(w http.ResponseWriter, r *http.Request) {
	staff, _ := auth.FromContext(r.Context())
	var body struct {
		Reason string `json:"reason"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || server.DecodeJSON(raw, &body) != nil {
		server.WriteError(w, badRequest("invalid", "reason", `send {"reason": "..."}`))
		return
	}
	rep, err := a.reports.Close(r.Context(), staff, chi.URLParam(r, "id"), body.Reason)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, rep)
}

// legalDecision serves POST /api/v1/reports/{id}/legal-decision
// {"approve": true|false, "reason": "…"}.
func (a *API) legalDecision(w http.ResponseWriter, r *http.Request) {
	staff, _ := auth.FromContext(r.Context())
	var body struct {
		Approve *bool  `json:"approve"`
		Reason  string `json:"reason"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		server.WriteError(w, badRequest("invalid", "", "the body could not be read"))
		return
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Approve == nil {
		server.WriteError(w, badRequest("invalid", "approve", `send {"approve": true or false, "reason": "why"}`))
		return
	}
	rep, err := a.reports.DecideLegal(r.Context(), staff, chi.URLParam(r, "id"), *body.Approve, body.Reason)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, rep)
}

// listAnswer is the answer of GET /api/v1/reports.
type listAnswer struct {
	Reports []report.Report `json:"reports"`
	// NextCursor (PrevCursor) goes back as cursor for the following, older
	// (preceding, newer) page; Next and Prev are those pages' URLs. Empty
	// when there is no such page.
	NextCursor string `json:"next_cursor,omitempty"`
	PrevCursor string `json:"prev_cursor,omitempty"`
	Next       string `json:"next,omitempty"`
	Prev       string `json:"prev,omitempty"`
}

// list serves GET /api/v1/reports with its filters (reports.ParseFilter),
// and ?attention=true, the attention queue.
func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if v := q.Get("attention"); v != "" {
		a.attention(w, r, v)
		return
	}
	f, err := reports.ParseFilter(q, store.EnvAll)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	page, err := a.reports.Search(r.Context(), f)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	out := listAnswer{Reports: page.Reports, NextCursor: page.Next, PrevCursor: page.Prev}
	if out.Reports == nil {
		out.Reports = []report.Report{}
	}
	if page.Next != "" {
		out.Next = "/api/v1/reports?" + reports.WithCursor(q, page.Next)
	}
	if page.Prev != "" {
		out.Prev = "/api/v1/reports?" + reports.WithCursor(q, page.Prev)
	}
	server.WriteJSON(w, http.StatusOK, out)
}

func (a *API) attention(w http.ResponseWriter, r *http.Request, v string) {
	if v != "true" {
		server.WriteError(w, badRequest("invalid", "attention", "attention must be true (the queue) or left out (the list)"))
		return
	}
	owed, err := a.reports.Attention(r.Context())
	if err != nil {
		server.WriteError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"attention": owed})
}

// exportCSV serves GET /api/v1/reports.csv: the filtered list (every page
// of it, limit and cursor ignored) as CSV for legal; the export is
// recorded for the audit log.
func (a *API) exportCSV(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := reports.ParseFilter(q, store.EnvAll)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	f.Cursor, f.Limit = "", store.MaxSearchLimit
	page, err := a.reports.Search(r.Context(), f)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="takedown-reports-%s.csv"`, a.now().UTC().Format("20060102-150405")))
	cw := csv.NewWriter(w)
	cw.Write(reports.CSVColumns)
	n := 0
	for {
		for _, rep := range page.Reports {
			cw.Write(reports.CSVRow(rep))
			n++
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
		if page, err = a.reports.Search(r.Context(), f); err != nil {
			break // the answer has begun: the audit entry says it is cut short
		}
	}
	cw.Flush()
	detail := fmt.Sprintf("%d reports", n)
	if err != nil || cw.Error() != nil {
		detail += ", cut short by an error"
	}
	staff, _ := auth.FromContext(r.Context())
	a.reports.RecordAction(r.Context(), "", staff, staffaction.Of(r, staff.Actor(), reports.ActionExportCSV, detail))
}
