package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"reflect"
	"strings"
	"time"

	"takedown/pkg/auth"
	"takedown/pkg/logging"
	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
)

// view is what every page template gets.
type view struct {
	Title    string
	Staff    auth.Staff
	SignedIn bool
	CSRF     string
	Flash    string
	Data     any
	// NCMEC warns of environments that refuse our credentials or do not
	// answer, on the pages of warnsNCMEC.
	NCMEC []ncmecWarning
	// Attention is the size of the attention queue, for the header of
	// every signed-in page (HasAttention: it could be read).
	Attention    int
	HasAttention bool
}

var funcs = template.FuncMap{
	"fieldID":     fieldID,
	"size":        humanSize,
	"statusText":  statusText,
	"statusClass": func(s report.Status) string { return string(s) },
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"join": strings.Join,
	// yesno says an optional yes-or-no answer ("" when none was given).
	"yesno": func(b *bool) string {
		switch {
		case b == nil:
			return ""
		case *b:
			return "yes"
		}
		return "no"
	},
	"has": func(s auth.Staff, role string) bool { return s.Has(role) },
}

// fieldID is the HTML id of the input for a field of the report JSON
// ("files[0].upload_time" → "f-files-0-upload_time"), so an error about a
// field can link to its input.
func fieldID(field string) string {
	if strings.HasPrefix(field, "urls[") {
		return "f-urls" // one textarea holds them all
	}
	r := strings.NewReplacer(".", "-", "[", "-", "]", "")
	return "f-" + r.Replace(field)
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// statusText says where a report stands in plain words.
func statusText(s report.Status) string {
	switch s {
	case report.StatusAwaitingLegal:
		return "Stored; waiting for a legal decision before anything goes to NCMEC"
	case report.StatusRejected:
		return "Rejected by legal: kept here, not filed with NCMEC"
	case report.StatusSubmitted:
		return "Stored; waiting for the NCMEC filing to start"
	case report.StatusNcmecOpened:
		return "NCMEC report opened"
	case report.StatusUploading:
		return "Uploading files to NCMEC"
	case report.StatusFinished:
		return "Finished: reported to NCMEC"
	case report.StatusFailed:
		return "Failed: the NCMEC filing stopped"
	case report.StatusClosed:
		return "Closed by staff: settled outside this tool"
	case report.StatusRetracted:
		return "Retracted"
	}
	return string(s)
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "_") {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/_*.html", n)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// render writes page with data, whole (through the layout) or, for
// fragment pages such as the live status, alone.
func (w *Web) render(rw http.ResponseWriter, r *http.Request, status int, page string, data any) {
	w.renderTemplate(rw, r, status, page, "layout", data)
}

func (w *Web) renderTemplate(rw http.ResponseWriter, r *http.Request, status int, page, tmpl string, data any) {
	t, ok := w.pages[page]
	if !ok {
		panic("web: no page " + page)
	}
	ctx := r.Context()
	v := view{Data: data, CSRF: w.sessions.CSRFToken(ctx)}
	v.Staff, v.SignedIn = w.sessions.Staff(ctx)
	if warnsNCMEC[page] && tmpl == "layout" {
		v.NCMEC = w.ncmecWarnings(ctx)
	}
	if v.SignedIn && tmpl == "layout" {
		v.Attention, v.HasAttention = w.attention.get(ctx)
	}
	v.Title = titleOf(data)
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, tmpl, v); err != nil {
		logging.FromContext(ctx).Error("render page", "page", page, logging.KeyErr, err)
		http.Error(rw, "internal error; the details are in the service's log", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.WriteHeader(status)
	rw.Write(buf.Bytes())
}

// titleOf is the Title of a page's data, a map's entry or a struct's field
// (statusData, formData, evidenceData, listData, attentionData), for the document's <title>.
func titleOf(data any) string {
	if m, ok := data.(map[string]any); ok {
		t, _ := m["Title"].(string)
		return t
	}
	if v := reflect.Indirect(reflect.ValueOf(data)); v.Kind() == reflect.Struct {
		if f := v.FieldByName("Title"); f.Kind() == reflect.String {
			return f.String()
		}
	}
	return ""
}

// wantsJSON tells the page script's requests (and API clients) apart from
// a browser's plain form posts.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// fail answers with err: JSON for scripts, else a page that says what
// happened and what to do.
func (w *Web) fail(rw http.ResponseWriter, r *http.Request, err error) {
	// A use case's fault kinds (pkg/fault) map to a status as in the API.
	ae, ok := server.AsAPIError(err)
	if !ok {
		logging.FromContext(r.Context()).Error("request failed", "path", r.URL.Path, logging.KeyErr, err)
		ae = server.Errorf(http.StatusInternalServerError, "internal", "", "something went wrong on our side; try again, and tell the takedown team if it persists")
	}
	if wantsJSON(r) {
		server.WriteError(rw, ae)
		return
	}
	w.render(rw, r, ae.Status, "error", map[string]any{"Title": http.StatusText(ae.Status), "Error": ae, "SignIn": ae.Status == http.StatusUnauthorized})
}
