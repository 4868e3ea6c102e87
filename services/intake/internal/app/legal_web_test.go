package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"takedown/pkg/events"
	"takedown/services/intake/internal/app"
)

// The legal gate in the pages: the form says the report will wait for
// legal and asks nothing about it; the submitter, even one with the legal
// role, gets no decision form; a second person in legal approves on the
// report's page, which then names them.
func TestLegalDecisionInThePages(t *testing.T) {
	t.Parallel()
	s := startSite(t, func(c *app.Config) { c.HoldForLegal = true })

	rita := s.signIn(t, "rita", "reporter", "legal")
	_, form := page(t, rita, s.url+"/")
	if !strings.Contains(form, `id="legal-gate"`) || strings.Contains(form, `id="f-legal_approved"`) {
		t.Fatal("the form does not say the report waits for legal, or still asks whether legal approved")
	}
	ct, body := formBody(t, csrfOf(t, form), "2026-01-02T15:04", file{"a.jpg", []byte("evidence")})
	resp := postForm(t, rita, s.url+"/reports", ct, body)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("form post: %d", resp.StatusCode)
	}
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/reports/")
	_, own := page(t, rita, s.url+"/reports/"+id)
	if strings.Contains(own, `id="legal-approve"`) || !strings.Contains(own, "other than you, its submitter") {
		t.Fatal("the submitter is offered the legal decision, or not told that someone else must take it")
	}
	// Even posted by hand, the submitter's approval is refused.
	decide := func(c *http.Client, csrf string, v url.Values) *http.Response {
		v.Set("csrf_token", csrf)
		return postForm(t, c, s.url+"/reports/"+id+"/legal-decision", "application/x-www-form-urlencoded", []byte(v.Encode()))
	}
	if resp := decide(rita, csrfOf(t, own), url.Values{"decision": {"approve"}, "reason": {"mine"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the submitter's approval: %d, want 403", resp.StatusCode)
	}

	lena := s.signIn(t, "lena", "legal")
	_, html := page(t, lena, s.url+"/reports/"+id)
	if !strings.Contains(html, `id="legal-approve"`) || !strings.Contains(html, "Waiting for a second person in legal") {
		t.Fatal("a second person in legal is not offered the decision")
	}
	if resp := decide(lena, csrfOf(t, html), url.Values{"decision": {"approve"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an approval without a reason: %d, want 400", resp.StatusCode)
	}
	if resp := decide(lena, csrfOf(t, html), url.Values{"decision": {"approve"}, "reason": {"apparent CSAM"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approval: %d, want 303", resp.StatusCode)
	}
	// mockoidc's users are named by preferred_username (no name claim).
	_, after := page(t, lena, s.url+"/reports/"+id)
	if !strings.Contains(after, "Approved by lena &lt;lena@example.com&gt;") || strings.Contains(after, `id="legal-approve"`) {
		t.Fatal("the page does not name the approver after the approval")
	}
	if sub := s.eventOf(events.ReportSubmitted, id).GetReportSubmitted().GetReport(); sub.Approver != "lena" || sub.SubmittedBy != "rita" {
		t.Fatalf("report.submitted: approver %q, submitted by %q", sub.Approver, sub.SubmittedBy)
	}
}
