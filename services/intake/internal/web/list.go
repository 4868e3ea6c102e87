package web

// The reports list (/reports: filters, search, paging by cursor, test
// reports hidden unless asked for, the CSV of the same filter) and the
// attention queue (/attention), with the queue's count in every page's
// header.

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"takedown/pkg/filing"
	"takedown/pkg/logging"
	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/reports"
	"takedown/services/intake/internal/store"
)

// listData is what the list page shows.
type listData struct {
	Title    string
	Query    url.Values // the filter as asked, to fill the form again
	Filter   store.ReportFilter
	Statuses []statusChoice
	ShowTest bool
	Reports  []report.Report
	Problem  *server.APIError // a bad filter
	// Next, Prev and CSV are links: the following and preceding pages, and
	// the export of the whole filtered list.
	Next, Prev, CSV string
}

type statusChoice struct {
	Status  report.Status
	Text    string
	Checked bool
}

func (w *Web) listPage(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// Test reports are hidden unless the checkbox asks for every
	// environment (environment=all) or a link names one.
	f, err := reports.ParseFilter(q, store.EnvProduction)
	d := listData{Title: "Reports", Query: q, Filter: f}
	d.ShowTest = f.Environment != store.EnvProduction
	for _, s := range report.Statuses() {
		d.Statuses = append(d.Statuses, statusChoice{s, statusText(s), slices.Contains(f.Statuses, s)})
	}
	status := http.StatusOK
	if err == nil {
		var page store.SearchPage
		if page, err = w.reports.Search(r.Context(), f); err == nil {
			d.Reports = page.Reports
			if page.Next != "" {
				d.Next = "/reports?" + reports.WithCursor(q, page.Next)
			}
			if page.Prev != "" {
				d.Prev = "/reports?" + reports.WithCursor(q, page.Prev)
			}
			d.CSV = "/api/v1/reports.csv?" + csvQuery(q, f)
		}
	}
	if err != nil {
		ae, ok := server.AsAPIError(err)
		if !ok {
			w.fail(rw, r, err)
			return
		}
		d.Problem, status = ae, ae.Status
	}
	w.render(rw, r, status, "list", d)
}

// csvQuery is the list's filter for the export: every page of it, in the
// environment the page shows (the API's default is every environment).
func csvQuery(q url.Values, f store.ReportFilter) string {
	q = maps.Clone(q)
	q.Del("cursor")
	q.Del("limit")
	q.Set("environment", string(f.Environment))
	return q.Encode()
}

// attentionData is what the attention page shows: each report owed
// something, what happened, what to do, and links to the actions.
type attentionData struct {
	Title   string
	Entries []attentionEntry
}

type attentionEntry struct {
	reports.OwedEntry
	Links []actionLink
}

// actionLink leads to an action's form on the report's page.
type actionLink struct{ Label, Href string }

// actionAnchors are the headings of the actions' forms on the status page.
var actionAnchors = map[filing.Action]actionLink{
	filing.FileAgain:   {"Correct and file again", "#h-refile"},
	filing.Retract:     {"Retract", "#h-retract"},
	filing.RetractLost: {"Retract a lost NCMEC report", "#h-retract-lost"},
	filing.Close:       {"Close with a reason", "#h-close"},
}

func (w *Web) attentionPage(rw http.ResponseWriter, r *http.Request) {
	owed, err := w.reports.Attention(r.Context())
	if err != nil {
		w.fail(rw, r, err)
		return
	}
	d := attentionData{Title: "Needs attention"}
	for _, o := range owed {
		e := attentionEntry{OwedEntry: o}
		page := "/reports/" + o.ReportID
		for _, a := range o.Actions {
			if l, ok := actionAnchors[a]; ok {
				e.Links = append(e.Links, actionLink{l.Label, page + l.Href})
			}
		}
		if o.Reason == store.ReasonAwaitingLegal {
			e.Links = append(e.Links, actionLink{"Decide (legal)", page + "#h-legal"})
		}
		if len(e.Links) == 0 {
			e.Links = []actionLink{{"Open the report", page}}
		}
		d.Entries = append(d.Entries, e)
	}
	w.render(rw, r, http.StatusOK, "attention", d)
}

// attentionCacheFor is how long the header's count is reused: every page
// view of every staff member shows it, and the queue changes over minutes.
const attentionCacheFor = 5 * time.Second

// countCache keeps a count for a few seconds, so that only one page view in
// that time pays for the query.
type countCache struct {
	load func(context.Context) (int, error)
	ttl  time.Duration
	now  func() time.Time

	mu   sync.Mutex
	n    int
	at   time.Time
	have bool
}

// get returns the count, loading it when the kept one is older than ttl. A
// failed load keeps the last count (or none: ok false).
func (c *countCache) get(ctx context.Context) (n int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.have && c.now().Sub(c.at) < c.ttl {
		return c.n, true
	}
	n, err := c.load(ctx)
	if err != nil {
		logging.FromContext(ctx).Warn("attention count left out of the header", logging.KeyErr, err)
		return c.n, c.have
	}
	c.n, c.at, c.have = n, c.now(), true
	return n, true
}

// attentionCountWait bounds the header's count query: page views wait for
// one load at a time (countCache), and a slow database must not hold every
// page up; the header then keeps the last count.
const attentionCountWait = 2 * time.Second

// attentionCount is the size of the attention queue.
func (w *Web) attentionCount(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, attentionCountWait)
	defer cancel()
	counts, err := w.store.AttentionCounts(ctx, w.cfg.Attention)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range counts {
		n += c.Reports
	}
	return n, nil
}
