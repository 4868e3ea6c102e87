package app_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
)

// listSite is a site with three reports: a (filing), b (NCMEC report 7001
// opened) and c, a test report whose filing failed before NCMEC opened
// anything, the one report in the attention queue; and a browser signed in
// as rita.
func listSite(t *testing.T) (s *site, ctx context.Context, a, b, c string) {
	t.Helper()
	s = startSite(t)
	a = s.submit(t, goodReport, file{"a.bin", []byte("a")})["id"].(string)
	b = s.submit(t, strings.Replace(goodReport, `"username": "u1"`, `"username": "mallory"`, 1), file{"b.bin", []byte("b")})["id"].(string)
	c = s.submit(t, strings.Replace(goodReport, `"legal_approved": true`, `"test": true, "legal_approved": true`, 1), file{"c.bin", []byte("c")})["id"].(string)
	s.publish(t, b, &pb.NcmecOpened{Filing: 1, NcmecReportId: 7001, Environment: "production"})
	s.publish(t, c, &pb.NcmecFailed{Filing: 1, Step: "submit", Code: 4100, Description: "invalid URL"})
	s.await(t, b, 2)
	s.await(t, c, 2)

	ctx = chrome(t)
	s.user("rita", "reporter", "retractor", "auditor")
	run(t, ctx, "sign in",
		chromedp.Navigate(s.url+"/reports"),
		chromedp.WaitVisible("#signin"),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#f-q"),
	)
	return s, ctx, a, b, c
}

// rows are the report ids the list shows, in order ("" while a page loads).
func rows(ctx context.Context) string {
	got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](
		`[...document.querySelectorAll('#reports tbody tr')].map(r => r.dataset.report).join(' ')`))
	return got
}

// click clicks the element sel in the page as it is now. chromedp's Click
// goes by the node ids of the document it tracks, which can still be the
// page before the last navigation (-32000 "Could not find node").
func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`document.querySelector(` + strconv.Quote(sel) + `).click()`)
}

// fill sets the value of the input sel in the page as it is now.
func fill(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`document.querySelector(` + strconv.Quote(sel) + `).value = ` + strconv.Quote(v))
}

// showsRows waits until the list shows want (ids in order), after a click
// that loads another page.
func showsRows(t *testing.T, ctx context.Context, step, want string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if got := rows(ctx); got != want {
			return fmt.Errorf("%s: the list shows %q, want %q", step, got, want)
		}
		return nil
	})
	// The DOM can hold the rows before the page is laid out; wait for that too.
	run(t, ctx, step, chromedp.WaitVisible("#f-apply"))
}

// The list hides the test report until asked, finds a report by NCMEC's id
// and by uploader, filters by status, pages by cursor both ways, links the
// CSV of what it shows, and the header shows the attention count.
func TestBrowserReportsListFiltersSearchesAndPages(t *testing.T) {
	s, ctx, a, b, c := listSite(t)

	showsRows(t, ctx, "default list: the production reports, test hidden", b+" "+a)
	if n := value(t, ctx, "count", chromedp.Text("#attention-count")); strings.TrimSpace(n) != "1" {
		t.Errorf("header attention count %q, want 1", n)
	}
	csv := value(t, ctx, "csv link", chromedp.AttributeValue("#csv-link", "href")).Value
	if !strings.Contains(csv, "environment=production") {
		t.Errorf("CSV link %q does not carry the page's environment", csv)
	}
	// The link works with the browser's session: the production reports.
	export := value(t, ctx, "fetch the CSV", chromedp.Evaluate[string](
		`fetch(document.querySelector('#csv-link').href).then(async r => r.status + "\n" + r.headers.get('content-type') + "\n" + await r.text())`,
		chromedp.EvalAwaitPromise))
	if !strings.HasPrefix(export, "200\ntext/csv") || !strings.Contains(export, a) || !strings.Contains(export, b) || strings.Contains(export, c) {
		t.Errorf("the CSV link's export, with the session, is not the production reports:\n%s", export)
	}

	run(t, ctx, "show test reports",
		click("#f-show-test"),
		click("#f-apply"),
	)
	showsRows(t, ctx, "with test reports", c+" "+b+" "+a)
	run(t, ctx, "test marker", chromedp.WaitVisible(`tr[data-report="`+c+`"] .tag-test`))
	screenshot(t, ctx, "list-with-test.png")

	run(t, ctx, "search by NCMEC report id",
		fill("#f-q", "7001"),
		click("#f-apply"),
	)
	showsRows(t, ctx, "q=7001", b)
	screenshot(t, ctx, "list-search.png")

	run(t, ctx, "search by uploader and status",
		fill("#f-q", "u1"),
		click(`input[name="status"][value="failed"]`),
		click("#f-apply"),
	)
	showsRows(t, ctx, "q=u1, status failed, test shown", c)

	run(t, ctx, "page by one", chromedp.Navigate(s.url+"/reports?limit=1&environment=all"))
	showsRows(t, ctx, "page 1", c)
	run(t, ctx, "page 2", click("#page-next"))
	showsRows(t, ctx, "page 2", b)
	run(t, ctx, "page 3", click("#page-next"))
	showsRows(t, ctx, "page 3", a)
	if n := value(t, ctx, "next on the last page", chromedp.Evaluate[int](`document.querySelectorAll('#page-next').length`)); n != 0 {
		t.Errorf("the last page links a next page")
	}
	run(t, ctx, "previous page", click("#page-prev"))
	showsRows(t, ctx, "back to page 2", b)

	run(t, ctx, "bad filter",
		chromedp.Navigate(s.url+"/reports?from=yesterday"),
		chromedp.WaitVisible("#filter-problem"),
	)
	if msg := value(t, ctx, "problem", chromedp.Text("#filter-problem")); !strings.Contains(msg, "from must be") {
		t.Errorf("bad filter says %q", msg)
	}
}

// The attention page lists the failed report with what happened, what to
// do, and a link to the action's form on the report's page.
func TestBrowserAttentionPageLeadsToTheAction(t *testing.T) {
	_, ctx, _, _, c := listSite(t)
	run(t, ctx, "open the queue",
		chromedp.Click("#nav-attention"),
		chromedp.WaitVisible(`li[data-report="`+c+`"]`),
	)
	entry := `li[data-report="` + c + `"] `
	what := value(t, ctx, "what", chromedp.Text(entry+".what"))
	do := value(t, ctx, "do", chromedp.Text(entry+".do"))
	if !strings.Contains(what, "NCMEC opened nothing") || !strings.Contains(do, "file the report again") {
		t.Errorf("entry says %q / %q", what, do)
	}
	if n := value(t, ctx, "entries", chromedp.Evaluate[int](`document.querySelectorAll('#attention > li').length`)); n != 1 {
		t.Errorf("%d entries, want 1", n)
	}
	screenshot(t, ctx, "attention.png")
	run(t, ctx, "follow the action",
		chromedp.Click(entry+`a[href$="#h-refile"]`),
		chromedp.WaitVisible("#h-refile"),
	)
	if loc := value(t, ctx, "location", chromedp.Location()); !strings.HasSuffix(loc, "/reports/"+c+"#h-refile") {
		t.Errorf("the action link led to %s", loc)
	}
}
