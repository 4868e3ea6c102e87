package web

import (
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"takedown/pkg/auth"
	"takedown/pkg/fault"
	"takedown/pkg/reportrules"
	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/reports"
	"takedown/services/intake/internal/upload"
)

// problem is one entry of the form's error summary.
type problem struct {
	Field, ID, Message string
}

// formData is the report form: what was entered, and its problems.
type formData struct {
	Title           string
	Values          url.Values
	Problems        []problem
	IncidentTypes   []string
	Classifications []string
	Actions         []reportrules.Action
	// MaxPrivateNote is shown, not enforced, by the page: a maxlength
	// would count UTF-16 units, not the characters the rule counts.
	MaxPrivateNote int
	// HoldForLegal: the report will wait for a second person's legal
	// decision, so the form asks nothing about legal (LEGAL_APPROVAL).
	HoldForLegal bool
	Limits       reports.Limits
	Default      string // the default incident type
}

// Get returns an entered value.
func (f formData) Get(name string) string { return f.Values.Get(name) }

// Has reports whether the checkbox name with value was ticked.
func (f formData) Has(name, value string) bool { return slices.Contains(f.Values[name], value) }

func (w *Web) newForm(vals url.Values) formData {
	if vals == nil {
		vals = url.Values{}
	}
	return formData{
		Title: "Report to NCMEC", Values: vals, IncidentTypes: report.IncidentTypes, Default: report.DefaultIncidentType,
		Classifications: report.Classifications, Actions: reportrules.Actions, MaxPrivateNote: reportrules.MaxPrivateNote, Limits: w.reports.Limits(), HoldForLegal: w.reports.HoldForLegal,
	}
}

func (w *Web) formPage(rw http.ResponseWriter, r *http.Request) {
	w.render(rw, r, http.StatusOK, "form", w.newForm(nil))
}

// submit takes the report form, posted by the browser alone or by the page
// script (which asks for JSON). It goes through the same use case as the
// API's submission (reports.Service.Submit): the same validation and the
// same streaming, encrypted storage.
func (w *Web) submit(rw http.ResponseWriter, r *http.Request) {
	var vals url.Values
	describe := func(mr *multipart.Reader) (*report.Input, *multipart.Part, error) {
		var first *multipart.Part
		var err error
		vals, first, err = w.readFields(r, mr)
		if err != nil {
			return nil, nil, err
		}
		in, err := formInput(vals)
		return in, first, err
	}
	rep, err := upload.Submit(rw, r, w.reports, describe)
	if err != nil {
		w.formFailed(rw, r, vals, err)
		return
	}
	if wantsJSON(r) {
		rw.Header().Set("Location", "/reports/"+rep.ID)
		server.WriteJSON(rw, http.StatusCreated, map[string]string{"id": rep.ID, "status_page": "/reports/" + rep.ID})
		return
	}
	http.Redirect(rw, r, "/reports/"+rep.ID, http.StatusSeeOther)
}

func (w *Web) formFailed(rw http.ResponseWriter, r *http.Request, vals url.Values, err error) {
	if errors.Is(err, auth.ErrCSRF) {
		s, _ := auth.FromContext(r.Context())
		w.recordDenied(r, s, "403 Forbidden: missing or wrong forgery protection token")
		w.fail(rw, r, err)
		return
	}
	ae, ok := server.AsAPIError(err)
	if !ok || vals == nil {
		w.fail(rw, r, err)
		return
	}
	var probs []problem
	if inv, ok := fieldProblems(err); ok {
		for _, p := range inv {
			probs = append(probs, problem{Field: p.Field, ID: fieldID(p.Field), Message: label(p.Field) + p.Message})
		}
	} else {
		field := ae.Field
		if field == "" || field == "file" || strings.HasPrefix(field, "files[") && !strings.Contains(field, ".") {
			field = "file"
		}
		probs = []problem{{Field: field, ID: fieldID(field), Message: ae.Message}}
	}
	if wantsJSON(r) {
		server.WriteJSON(rw, ae.Status, map[string]any{"error": ae, "problems": probs})
		return
	}
	f := w.newForm(vals)
	f.Problems = probs
	f.Values.Del("csrf_token")
	w.render(rw, r, ae.Status, "form", f)
}

// fieldProblems are every problem of an input that broke the report rules
// (a fault.Invalid listing its Fields); false for any other error.
func fieldProblems(err error) ([]fault.FieldProblem, bool) {
	var fe *fault.Error
	if errors.As(err, &fe) && len(fe.Fields) > 0 {
		return fe.Fields, true
	}
	return nil, false
}

var labels = map[string]string{
	"incident_type": "Incident type", "incident_time": "When it happened", "platform": "Platform", "urls": "URLs",
	"uploader.username": "Username", "uploader.email": "E-mail", "uploader.ip": "IP address",
	"approver": "Approved by", "not_approved_reason": "Reason not approved", "notes": "Comments for NCMEC", "private_note": "Private note", "escalate": "Escalate",
	"upload_time": "Upload time", "location_url": "Location URL", "uploader_ip": "Uploader IP", "industry_classification": "Classification",
}

// label names a field the way the form does, for the error summary.
func label(field string) string {
	if m := fileField.FindStringSubmatch(field); m != nil {
		n, _ := strconv.Atoi(m[1])
		return "File " + strconv.Itoa(n+1) + ", " + strings.ToLower(labels[m[2]]) + ": "
	}
	if strings.HasPrefix(field, "urls[") {
		field = "urls"
	}
	if l, ok := labels[field]; ok {
		return l + ": "
	}
	return ""
}

// readFields reads the form's fields, which come before its files (the
// file input is the form's last control). The forgery protection token
// must be the first field: it is checked before any file is read.
func (w *Web) readFields(r *http.Request, mr *multipart.Reader) (url.Values, *multipart.Part, error) {
	vals := url.Values{}
	total := 0
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			return vals, nil, nil
		}
		if err != nil {
			return vals, nil, reports.BodyError(err)
		}
		name := part.FormName()
		if i == 0 && name != "csrf_token" {
			return nil, nil, auth.ErrCSRF
		}
		if name == "file" {
			return vals, part, nil
		}
		b, err := io.ReadAll(io.LimitReader(part, int64(reports.MaxDescription-total+1)))
		if err != nil {
			return vals, nil, reports.BodyError(err)
		}
		total += len(b)
		if total > reports.MaxDescription {
			return vals, nil, fault.Errorf(fault.TooLarge, "report_too_large", "", "the form's text is longer than %d bytes in all", reports.MaxDescription)
		}
		if i == 0 {
			if err := w.sessions.CheckCSRF(r.Context(), string(b)); err != nil {
				return nil, nil, err
			}
			continue
		}
		vals.Add(name, string(b))
	}
}

var fileField = regexp.MustCompile(`^files\[(\d{1,4})\]\.([a-z_]+)$`)

// formInput turns the form's fields into the API's report JSON. Field names
// are the JSON's paths, so the API's error about a field names the input.
// Times come from datetime-local inputs in the browser's zone, given by the
// tz field (minutes behind UTC, as JavaScript's getTimezoneOffset); without
// the script they are UTC.
func formInput(v url.Values) (*report.Input, error) {
	offset, _ := strconv.Atoi(v.Get("tz"))
	in := &report.Input{
		IncidentType:      v.Get("incident_type"),
		IncidentTime:      localTime(v.Get("incident_time"), offset),
		Platform:          strings.TrimSpace(v.Get("platform")),
		URLs:              lines(v.Get("urls")),
		Uploader:          report.Uploader{Username: strings.TrimSpace(v.Get("uploader.username")), Email: strings.TrimSpace(v.Get("uploader.email")), IP: strings.TrimSpace(v.Get("uploader.ip"))},
		LegalApproved:     v.Get("legal_approved") != "",
		Approver:          strings.TrimSpace(v.Get("approver")),
		NotApprovedReason: strings.TrimSpace(v.Get("not_approved_reason")),
		ActionsTaken:      v["actions_taken"],
		Notes:             v.Get("notes"),
		PrivateNote:       v.Get("private_note"),
		Escalate:          strings.TrimSpace(v.Get("escalate")),
		Test:              v.Get("test") != "",
	}
	n := -1
	for k := range v {
		if m := fileField.FindStringSubmatch(k); m != nil {
			i, _ := strconv.Atoi(m[1])
			n = max(n, i)
		}
	}
	if n >= 0 {
		in.Files = make([]report.FileInput, n+1)
	}
	yes := func(k string) *bool {
		if _, ok := v[k]; !ok {
			return nil
		}
		b := v.Get(k) != "" && v.Get(k) != "no"
		return &b
	}
	for i := range in.Files {
		p := "files[" + strconv.Itoa(i) + "]."
		in.Files[i] = report.FileInput{
			Name:              v.Get(p + "name"),
			LocationURL:       strings.TrimSpace(v.Get(p + "location_url")),
			UploadTime:        localTime(v.Get(p+"upload_time"), offset),
			UploaderIP:        strings.TrimSpace(v.Get(p + "uploader_ip")),
			ViewedByStaff:     yes(p + "viewed_by_staff"),
			PubliclyAvailable: yes(p + "publicly_available"),
			Classification:    v.Get(p + "industry_classification"),
		}
	}
	return in, nil
}

// localTime converts a datetime-local value to RFC 3339; anything else is
// passed on for validation to explain.
func localTime(s string, offsetMinutes int) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return s
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Add(time.Duration(offsetMinutes) * time.Minute).UTC().Format(time.RFC3339)
		}
	}
	return s
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
