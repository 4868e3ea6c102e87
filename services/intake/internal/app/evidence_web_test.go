package app_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"takedown/pkg/events"
)

// dueReport submits a report, finishes its filing and ends its retention,
// so that expiry would delete it at the next run unless a hold keeps it.
func (s *site) dueReport(t *testing.T) string {
	t.Helper()
	id := s.submitOne(random(5000))
	s.finish(id)
	var one int
	s.query(`UPDATE intake.reports SET retain_until = now() - interval '1 hour' WHERE id = $1 RETURNING 1`, []any{id}, &one)
	return id
}

// postValues posts a urlencoded form with the page's forgery protection
// token, without following the redirect, and returns the answer and its page.
func postValues(t *testing.T, c *http.Client, u, csrf string, v url.Values) (*http.Response, string) {
	t.Helper()
	if v == nil {
		v = url.Values{}
	}
	if csrf != "" {
		v.Set("csrf_token", csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c2 := *c
	c2.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// fateOf is what the expiry preview says will happen to the report.
func fateOf(t *testing.T, html, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr data-report="` + id + `">.*?<td class="expiry-fate">([^<]*)</td>`).FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("report %s is not in the expiry preview", id)
	}
	return m[1]
}

// TestEvidencePages: only evidence-admin staff reach the pages and their
// actions; a hold shows in the preview and keeps the evidence from the
// job; the one who records a destruction request cannot approve it, a
// second person can once no hold stands; each step is audited as the API's.
func TestEvidencePages(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	id := s.dueReport(t)
	base := s.url + "/evidence/reports/" + id

	rita := s.signIn(t, "rita", "reporter", "retractor", "auditor", "legal")
	if code, _ := page(t, rita, s.url+"/evidence"); code != http.StatusForbidden {
		t.Errorf("GET /evidence without the role: %d, want 403", code)
	}
	_, rhtml := page(t, rita, s.url+"/reports/"+id)
	if strings.Contains(rhtml, `id="nav-evidence"`) || strings.Contains(rhtml, `id="evidence-link"`) {
		t.Error("the evidence pages are offered to staff without the role")
	}
	if resp, _ := postValues(t, rita, base+"/holds", csrfOf(t, rhtml), url.Values{"reason": {"mine"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a hold placed without the role: %d, want 403", resp.StatusCode)
	}

	ann := s.signIn(t, "ann", "evidence-admin")
	code, html := page(t, ann, s.url+"/reports/"+id)
	if code != http.StatusOK || !strings.Contains(html, `id="nav-evidence"`) || !strings.Contains(html, `href="/evidence?report=`+id+`"`) {
		t.Fatalf("evidence-admin on the report's page: %d, or no link to its evidence", code)
	}
	if !strings.Contains(html, "<title>Report "+id+" · takedown</title>") {
		t.Error("the report's page is not titled with the report")
	}
	for u, says := range map[string]string{"/evidence?report=" + uuid.NewString(): "no such report",
		"/evidence?report=junk": "there is no report &#34;junk&#34;"} {
		if code, body := page(t, ann, s.url+u); code != http.StatusNotFound || !strings.Contains(body, says) {
			t.Errorf("GET %s: %d, want 404 saying %q", u, code, says)
		}
	}
	csrf := csrfOf(t, html)
	if resp, _ := postValues(t, ann, base+"/holds", "", url.Values{"reason": {"no token"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a hold without the forgery protection token: %d, want 403", resp.StatusCode)
	}
	if resp, body := postValues(t, ann, base+"/holds", csrf, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "give a reason") {
		t.Errorf("a hold without a reason: %d, want 400 saying to give a reason", resp.StatusCode)
	}
	if n := s.count("holds"); n != 0 {
		t.Fatalf("%d holds recorded by refused requests", n)
	}
	if resp, _ := postValues(t, ann, base+"/holds", csrf, url.Values{"reason": {"litigation 2026-17"}}); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/evidence?report="+id {
		t.Fatalf("place a hold: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, ev := page(t, ann, s.url+"/evidence?report="+id)
	if !regexp.MustCompile(`<td class="mono">k1</td><td>1</td><td>current`).MatchString(ev) {
		t.Error("the keys report does not show the current master key wrapping the one report's data key")
	}
	if fate := fateOf(t, ev, id); !strings.HasPrefix(fate, "kept: 1 hold standing") {
		t.Errorf("preview of the held report: %q", fate)
	}
	if c, err := s.app.Lifecycle.Expire(t.Context(), true); err != nil || len(c) != 0 {
		t.Errorf("the job would delete %v (%v) despite the hold", c, err)
	}

	if resp, _ := postValues(t, ann, base+"/destruction-requests", csrf, url.Values{"agency": {"FBI"}, "reference": {"LE-7"},
		"requested_on": {time.Now().UTC().Format(time.DateOnly)}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("record a destruction request: %d", resp.StatusCode)
	}
	open, err := s.app.Lifecycle.OpenRequests(t.Context())
	if err != nil || len(open) != 1 {
		t.Fatalf("open requests: %v %v", open, err)
	}
	req := open[0].ID
	approve := s.url + "/evidence/destruction-requests/" + req + "/approve"
	_, own := page(t, ann, s.url+"/evidence")
	if strings.Contains(own, `id="approve-`+req+`"`) || !strings.Contains(own, "You recorded this request: another evidence-admin must approve it.") {
		t.Error("the requester is offered the approval, or not told someone else must give it")
	}
	if resp, body := postValues(t, ann, approve, csrf, url.Values{"report": {id}}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "different evidence-admin") {
		t.Errorf("the requester's own approval: %d, want 403 saying a different evidence-admin must approve", resp.StatusCode)
	}

	bob := s.signIn(t, "bob", "evidence-admin")
	_, bhtml := page(t, bob, s.url+"/evidence?report="+id)
	bcsrf := csrfOf(t, bhtml)
	if !strings.Contains(bhtml, `id="approve-`+req+`"`) {
		t.Error("a second evidence-admin is not offered the approval")
	}
	if resp, body := postValues(t, bob, approve, bcsrf, url.Values{"report": {id}}); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "under legal hold") {
		t.Errorf("approval while a hold stands: %d, want 409 saying it is under legal hold", resp.StatusCode)
	}
	if e, err := s.app.Lifecycle.Report(t.Context(), id); err != nil || e.Destroyed() || len(e.Holds) != 1 {
		t.Fatalf("after refused approvals: %+v %v", e, err)
	}
	hold := s.eventOf(events.EvidenceHoldPlaced, id).GetEvidenceHoldPlaced().HoldId
	if resp, _ := postValues(t, bob, base+"/holds/"+hold+"/lift", bcsrf, url.Values{"lift_reason": {"case closed"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("lift the hold: %d", resp.StatusCode)
	}
	_, ev = page(t, bob, s.url+"/evidence?report="+id)
	if fate := fateOf(t, ev, id); fate != "deleted at the next run of the job" {
		t.Errorf("preview after the hold was lifted: %q", fate)
	}
	if resp, _ := postValues(t, bob, approve, bcsrf, url.Values{"report": {id}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second person's approval: %d", resp.StatusCode)
	}
	_, ev = page(t, bob, s.url+"/evidence?report="+id)
	if !regexp.MustCompile(`id="evidence-state">destroyed `).MatchString(ev) || strings.Contains(ev, `id="hold-form"`) {
		t.Error("the evidence page does not say the evidence is destroyed, or still offers a hold")
	}
	if resp, body := postValues(t, bob, base+"/holds", bcsrf, url.Values{"reason": {"too late"}}); resp.StatusCode != http.StatusConflict ||
		!strings.Contains(body, "already destroyed") {
		t.Errorf("a hold on destroyed evidence: %d, want 409 saying it is already destroyed", resp.StatusCode)
	}

	// Audited as the API's steps are: each event names the staff member.
	for typ, who := range map[string]string{events.EvidenceHoldPlaced: "ann", events.EvidenceDestructionRequested: "ann",
		events.EvidenceHoldLifted: "bob", events.EvidenceDestroyed: "bob"} {
		if got := s.eventOf(typ, id).GetActor().GetId(); got != who {
			t.Errorf("%s by %q, want %q", typ, got, who)
		}
	}
}

// TestBrowserEvidencePages: in real Chromium, one evidence-admin places a
// hold, lifts it and records a destruction request; a second signs in and
// approves it. Clicks and inputs go through the page as it is (click,
// fill): each step follows a navigation, after which chromedp's node ids
// may still name the page before.
func TestBrowserEvidencePages(t *testing.T) {
	s := startSite(t)
	id := s.dueReport(t)
	ctx := chrome(t)

	s.user("ann", "evidence-admin")
	run(t, ctx, "sign in as ann",
		chromedp.Navigate(s.url+"/reports/"+id),
		chromedp.WaitVisible("#signin"),
		click("#signin"),
		chromedp.WaitVisible("#evidence-link"),
		click("#evidence-link"),
		chromedp.WaitVisible("#hold-form"),
		fill("#f-hold-reason", "litigation 2026-17"),
		click("#place-hold"),
		chromedp.WaitVisible(`//td[@class="expiry-fate" and starts-with(., "kept: 1 hold standing")]`),
	)
	screenshot(t, ctx, "evidence-held.png")
	run(t, ctx, "lift the hold",
		fill(`#holds input[name="lift_reason"]`, "case closed"),
		click(`#holds .lift-hold`),
		chromedp.WaitVisible(`//td[@class="expiry-fate" and .="deleted at the next run of the job"]`),
		chromedp.WaitVisible(`//tr[@class="lifted"]`),
	)
	run(t, ctx, "request destruction",
		fill("#f-agency", "FBI Field Office"),
		fill("#f-reference", "LE-2026-0042"),
		click("#request-destruction"),
		chromedp.WaitVisible(`//span[@class="own-request"]`),
	)
	screenshot(t, ctx, "evidence-requested.png")

	s.user("bob", "evidence-admin")
	run(t, ctx, "sign out and in as bob",
		click(".signout button"),
		chromedp.WaitVisible("#signin"),
		chromedp.Navigate(s.url+"/evidence?report="+id),
		chromedp.WaitVisible("#signin"),
		click("#signin"),
		chromedp.WaitVisible(".approve-destruction"),
		click(".confirm-destruction"),
		click(".approve-destruction"),
		chromedp.WaitVisible(`//dd[@id="evidence-state" and starts-with(., "destroyed")]`),
	)
	screenshot(t, ctx, "evidence-destroyed.png")
	e, err := s.app.Lifecycle.Report(t.Context(), id)
	if err != nil || !e.Destroyed() || len(e.Requests) != 1 || e.Requests[0].ApprovedBy != "bob" || e.Requests[0].RequestedBy != "ann" {
		t.Fatalf("after the browser's approval: %+v %v", e, err)
	}
}
