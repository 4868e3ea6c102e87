package reports_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/reports"
	"takedown/services/intake/internal/store"
)

// ParseFilter reads every parameter, keeps the caller's default
// environment (the page's hides test reports) unless one is named, takes a
// date as a whole day, and names the field of a bad parameter.
func TestParseFilter(t *testing.T) {
	q, _ := url.ParseQuery("status=failed,retracted&status=finished&submitted_by=rita&from=2026-01-01&to=2026-01-31&q=+abc+&sort=changed&limit=10&cursor=xyz")
	got, err := reports.ParseFilter(q, store.EnvProduction)
	if err != nil {
		t.Fatal(err)
	}
	want := store.ReportFilter{
		Statuses:    []report.Status{report.StatusFailed, report.StatusRetracted, report.StatusFinished},
		Environment: store.EnvProduction, SubmittedBy: "rita",
		From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		Q: "abc", Sort: store.SortChanged, Limit: 10, Cursor: "xyz",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-want +got\n%s", diff)
	}
	if f, _ := reports.ParseFilter(url.Values{"environment": {"all"}}, store.EnvProduction); f.Environment != store.EnvAll {
		t.Errorf("environment=all: %q", f.Environment)
	}
	if f, _ := reports.ParseFilter(url.Values{"to": {"2026-01-31T10:00:00+01:00"}}, store.EnvAll); !f.To.Equal(time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("to as a time: %v", f.To)
	}
	for _, c := range []struct{ query, field string }{
		{"status=failed,nope", "status"},
		{"environment=prod", "environment"},
		{"sort=asc", "sort"},
		{"from=31/01/2026", "from"},
		{"to=tomorrow", "to"},
		{"from=2026-02-01&to=2026-02-01T00:00:00Z", "to"},
		{"limit=abc", "limit"},
		{"limit=1000", "limit"},
		{"submitted_by=" + string(make([]byte, 300)), "submitted_by"},
	} {
		q, _ := url.ParseQuery(c.query)
		_, err := reports.ParseFilter(q, store.EnvAll)
		ae, ok := server.AsAPIError(err)
		if !ok || ae.Status != 400 || ae.Field != c.field {
			t.Errorf("%s: %v, want a 400 naming %s", c.query, err, c.field)
		}
	}
}
