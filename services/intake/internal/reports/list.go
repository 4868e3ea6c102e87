package reports

// Finding reports: the list with its filters (store.Search), the attention
// queue, and the rows of the CSV export for legal. ParseFilter reads the
// filter from a query for the API and the /reports page alike.

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"takedown/pkg/fault"
	"takedown/pkg/filing"
	"takedown/pkg/logging"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// maxFilterText bounds a free-text parameter (q, submitted_by).
const maxFilterText = 256

// ParseFilter reads a store.ReportFilter from the query parameters status
// (comma list), environment (test, production, all; default env), sort
// (submitted, changed), submitted_by, from and to (RFC 3339, or a date: to
// a date includes that day), q, limit and cursor. A bad parameter is a 400
// naming it (fault.Invalid).
func ParseFilter(q url.Values, env store.Environment) (store.ReportFilter, error) {
	f := store.ReportFilter{Environment: env, SubmittedBy: q.Get("submitted_by"), Q: strings.TrimSpace(q.Get("q")), Cursor: q.Get("cursor")}
	// status=a,b or status=a&status=b (the page's checkboxes).
	for _, s := range strings.Split(strings.Join(q["status"], ","), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(report.Statuses(), report.Status(s)) {
			return f, invalidParam("status", "unknown status %q; the statuses are %s", s, joinStatuses())
		}
		f.Statuses = append(f.Statuses, report.Status(s))
	}
	if v := q.Get("environment"); v != "" {
		f.Environment = store.Environment(v)
		if !slices.Contains([]store.Environment{store.EnvTest, store.EnvProduction, store.EnvAll}, f.Environment) {
			return f, invalidParam("environment", "environment must be test, production or all")
		}
	}
	if v := q.Get("sort"); v != "" {
		f.Sort = store.Sort(v)
		if f.Sort != store.SortSubmitted && f.Sort != store.SortChanged {
			return f, invalidParam("sort", "sort must be submitted or changed")
		}
	}
	for _, p := range []struct {
		name, v string
	}{{"q", f.Q}, {"submitted_by", f.SubmittedBy}} {
		if len(p.v) > maxFilterText {
			return f, invalidParam(p.name, "%s is longer than %d bytes", p.name, maxFilterText)
		}
	}
	var err error
	if f.From, err = parseTime(q.Get("from"), "from", false); err != nil {
		return f, err
	}
	if f.To, err = parseTime(q.Get("to"), "to", true); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, invalidParam("to", "to must be after from")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxSearchLimit {
			return f, invalidParam("limit", "limit must be a number from 1 to %d", store.MaxSearchLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// parseTime reads an RFC 3339 time or a date (UTC midnight); a date as the
// end of a range (to) means the end of that day.
func parseTime(s, field string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, invalidParam(field, "%s must be a time (RFC 3339, e.g. 2026-01-31T14:00:00Z) or a date (2026-01-31)", field)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

func invalidParam(field, format string, args ...any) error {
	return invalid("invalid", field, format, args...)
}

func joinStatuses() string {
	var s []string
	for _, st := range report.Statuses() {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

// Search returns the page of the list f selects; a cursor the list did not
// give is Invalid.
func (s *Service) Search(ctx context.Context, f store.ReportFilter) (store.SearchPage, error) {
	page, err := s.store.Search(ctx, f, s.similar.Distance)
	if errors.Is(err, store.ErrBadCursor) {
		return page, invalidParam("cursor", "%v", err)
	}
	if err != nil {
		logging.FromContext(ctx).Error("search reports", logging.KeyErr, err)
		return page, fault.Errorf(fault.Unavailable, "database_unavailable", "", "the reports cannot be read now; try again in a minute")
	}
	return page, nil
}

// WithCursor is the query q with its cursor replaced by c (removed when
// empty): the link to another page of the same list.
func WithCursor(q url.Values, c string) string {
	q = maps.Clone(q) // Set and Del replace the slices, never write into them
	q.Del("cursor")
	if c != "" {
		q.Set("cursor", c)
	}
	return q.Encode()
}

// OwedEntry is one report of the attention queue as the API shows it: why
// it is owed something, and in plain words what happened and what to do
// (store.Explain), with the actions that do it.
type OwedEntry struct {
	ReportID    string          `json:"report_id"`
	Reason      store.Reason    `json:"reason"`
	What        string          `json:"what"`
	Do          string          `json:"do"`
	Actions     []filing.Action `json:"actions"`
	SubmittedAt time.Time       `json:"submitted_at"`
	SubmittedBy string          `json:"submitted_by"`
	Test        bool            `json:"test"`
	Status      string          `json:"ncmec_state"`
	NCMECReport int64           `json:"ncmec_report_id,omitempty"`
}

// MaxAttention bounds the queue one answer lists, oldest first.
const MaxAttention = 500

// Attention returns the attention queue, oldest first, each entry explained.
func (s *Service) Attention(ctx context.Context) ([]OwedEntry, error) {
	owed, err := s.store.Attention(ctx, s.AttentionPolicy, MaxAttention)
	if err != nil {
		logging.FromContext(ctx).Error("attention queue", logging.KeyErr, err)
		return nil, fault.Errorf(fault.Unavailable, "database_unavailable", "", "the attention queue cannot be read now; try again in a minute")
	}
	out := make([]OwedEntry, len(owed))
	for i, o := range owed {
		adv := store.Explain(o)
		out[i] = OwedEntry{ReportID: o.ReportID, Reason: o.Reason, What: adv.What, Do: adv.Do, Actions: adv.Actions,
			SubmittedAt: o.SubmittedAt, SubmittedBy: o.SubmittedBy, Test: o.Test,
			Status: string(o.Filing.State), NCMECReport: o.Filing.NCMECReportID}
		if out[i].Actions == nil {
			out[i].Actions = []filing.Action{}
		}
	}
	return out, nil
}

// CSVColumns are the export's columns: the report's metadata, never its
// evidence (no file names, hashes or content), keys or secrets.
var CSVColumns = []string{"report_id", "submitted_at", "submitted_by", "status", "environment", "filing",
	"ncmec_report_id", "ncmec_state", "incident_type", "incident_time", "platform",
	"uploader_username", "uploader_email", "legal_state", "legal_decided_by", "legal_decided_at",
	"escalated", "case_id", "case_state"}

// CSVRow is r's row of the export, each cell safe for a spreadsheet
// (CSVCell).
func CSVRow(r report.Report) []string {
	row := csvRow(r)
	for i := range row {
		row[i] = CSVCell(row[i])
	}
	return row
}

func csvRow(r report.Report) []string {
	env := r.Environment()
	var ncmecID, decidedAt string
	if r.NCMEC.ReportID != 0 {
		ncmecID = strconv.FormatInt(r.NCMEC.ReportID, 10)
	}
	if r.Legal.DecidedAt != nil {
		decidedAt = r.Legal.DecidedAt.UTC().Format(time.RFC3339)
	}
	return []string{r.ID, r.SubmittedAt.UTC().Format(time.RFC3339), r.SubmittedBy, string(r.Status), env,
		strconv.Itoa(r.Filing), ncmecID, string(r.FilingStatus.State), r.IncidentType, r.IncidentTime.UTC().Format(time.RFC3339),
		r.Platform, r.Uploader.Username, r.Uploader.Email, string(r.Legal.State), r.Legal.DecidedByName, decidedAt,
		strconv.FormatBool(r.Escalate != ""), r.Case.ID, r.Case.State}
}

// CSVCell neutralises a cell a spreadsheet would run as a formula (one
// starting with = + - @, or a tab or carriage return that hides one): a
// leading apostrophe makes it text (OWASP, "CSV Injection").
func CSVCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// ActionExportCSV is the audit log's action of a CSV export.
const ActionExportCSV = "export_reports_csv"
