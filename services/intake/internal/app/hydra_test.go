package app_test

import (
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"takedown/pkg/auth"
	"takedown/pkg/config"
	"takedown/pkg/events"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/app"
)

// startHydraSite is startSite signing staff in through a real OpenID
// Connect provider (Ory Hydra) instead of mockoidc: roles, name and e-mail
// come from its ID token's claims.
func startHydraSite(t *testing.T, opts ...func(*app.Config)) (*site, *testenv.Hydra) {
	t.Helper()
	var h *testenv.Hydra
	s := startSite(t, append([]func(*app.Config){func(c *app.Config) {
		callback := c.PublicURL + "/auth/callback"
		h = testenv.StartHydra(t, callback)
		c.OIDC = &auth.OIDCConfig{Issuer: h.Issuer, ClientID: h.ClientID, ClientSecret: config.Secret(h.ClientSecret),
			RedirectURL: callback, Scopes: []string{"profile", "email"}}
	}}, opts...)...)
	return s, h
}

// A sign-in the provider refuses (consent denied) ends on a page that says
// so, and signs nobody in.
func TestHydraRefusedConsentShowsAnErrorPage(t *testing.T) {
	t.Parallel()
	s, h := startHydraSite(t)
	h.QueueUser("Rita Reporter", "rita@example.org", auth.RoleReporter)
	h.RefuseConsent()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	status, body := page(t, c, s.url+"/auth/login?next=/reports")
	if status != http.StatusUnauthorized || !strings.Contains(body, "the sign-in was refused (access_denied)") {
		t.Fatalf("refused consent: %d, page:\n%s", status, body)
	}
	if status, _ := page(t, c, s.url+"/api/v1/reports"); status != http.StatusUnauthorized {
		t.Fatalf("after a refused sign-in the reports answer %d, want 401", status)
	}
}

// The legal gate in a real browser with two people signed in through a
// real provider: Ada submits and cannot approve her own report (though she
// holds the legal role); Lena, in legal, approves with a reason; the
// report's page, its events and the header name both by name and e-mail.
// Screenshots: test-artifacts/legal-waiting.png, legal-approved.png.
func TestBrowserLegalGateTwoPeopleThroughHydra(t *testing.T) {
	s, h := startHydraSite(t, func(c *app.Config) { c.HoldForLegal = true })
	ctx := chrome(t)
	evidence := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(evidence, random(64), 0o600); err != nil {
		t.Fatal(err)
	}

	ada := h.QueueUser("Ada Reporter", "ada@example.org", auth.RoleReporter, auth.RoleLegal)
	run(t, ctx, "Ada signs in",
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible("#signin"),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#report-form"),
		chromedp.WaitVisible("#drop-zone"), // shown by the page script: it has run
	)
	if n, e := value(t, ctx, "name", chromedp.Text("#staff-name")), value(t, ctx, "email", chromedp.Text("#staff-email")); n != "Ada Reporter" || e != "ada@example.org" {
		t.Errorf("header names %q <%q>", n, e)
	}
	run(t, ctx, "Ada submits",
		chromedp.WaitVisible("#legal-gate"),
		chromedp.SetValue("#f-incident_time", "2026-01-02T15:04"),
		chromedp.SendKeys("#f-platform", "Example"),
		chromedp.Click("#f-action-0"),
		chromedp.SetUploadFiles("#f-file", []string{evidence}),
		chromedp.Click("#submit"),
		chromedp.WaitVisible("#report-status"),
		chromedp.WaitVisible("#legal-waiting"),
	)
	loc := value(t, ctx, "location", chromedp.Location())
	id := loc[strings.LastIndex(loc, "/")+1:]
	waiting := value(t, ctx, "waiting", chromedp.Text("#legal-waiting"))
	if !strings.Contains(waiting, "other than you, its submitter") {
		t.Errorf("the page does not tell Ada someone else must decide: %q", waiting)
	}
	if got := value(t, ctx, "submitter", chromedp.Text("#submitted-by")); got != "Ada Reporter <ada@example.org>" {
		t.Errorf("submitted by %q", got)
	}
	if n := value(t, ctx, "approve buttons", chromedp.Evaluate[int](`document.querySelectorAll("#legal-approve").length`)); n != 0 {
		t.Error("Ada is offered the approval of her own report")
	}
	if n := s.count(`reports WHERE id = '` + id + `' AND legal_state = 'awaiting'`); n != 1 {
		t.Fatalf("the report is not awaiting legal")
	}
	screenshot(t, ctx, "legal-waiting.png")

	h.QueueUser("Lena Legal", "lena@example.org", auth.RoleLegal)
	run(t, ctx, "Ada signs out, Lena signs in",
		chromedp.Click("form.signout button"),
		chromedp.WaitVisible("#signin"),
		chromedp.Navigate(s.url+"/auth/login?next=/reports/"+id),
		chromedp.WaitVisible("#legal-approve"),
	)
	if n := value(t, ctx, "name", chromedp.Text("#staff-name")); n != "Lena Legal" {
		t.Errorf("header names %q after Lena signed in", n)
	}
	run(t, ctx, "Lena approves",
		chromedp.SendKeys("#f-legal-reason", "apparent CSAM, file it"),
		chromedp.Click("#legal-approve"),
		chromedp.WaitVisible(`//dd[@id="legal" and contains(., "Approved by Lena Legal")]`),
	)
	legal := value(t, ctx, "legal", chromedp.Text("#legal"))
	if !strings.Contains(legal, "Approved by Lena Legal <lena@example.org>") || !strings.Contains(legal, "apparent CSAM, file it") {
		t.Errorf("the decision does not name Lena by name and e-mail, or lacks its reason: %q", legal)
	}
	// The history names who did what by name and e-mail.
	run(t, ctx, "history", chromedp.WaitVisible(`//li[contains(., "(Lena Legal <lena@example.org>)")]`))
	screenshot(t, ctx, "legal-approved.png")

	// The filing names both people: the submitter by subject, name and
	// e-mail, the approver by name; the decision's actor is Lena.
	sub := s.eventOf(events.ReportSubmitted, id)
	r := sub.GetReportSubmitted().GetReport()
	if r.SubmittedBy != ada || r.SubmittedByName != "Ada Reporter" || r.SubmittedByEmail != "ada@example.org" || r.Approver != "Lena Legal" {
		t.Errorf("report.submitted: by %q %q %q, approver %q", r.SubmittedBy, r.SubmittedByName, r.SubmittedByEmail, r.Approver)
	}
	if a := s.eventOf(events.ReportLegalDecided, id).GetActor(); a.GetName() != "Lena Legal" || a.GetEmail() != "lena@example.org" {
		t.Errorf("legal decision's actor %v", a)
	}
}
