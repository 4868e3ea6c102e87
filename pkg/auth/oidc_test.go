package auth_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"takedown/pkg/auth"
	"takedown/pkg/config"
	"takedown/pkg/testenv"
)

// codeCatcher stands in for the service's callback: it records the query
// the provider sends the browser back with.
func codeCatcher(t *testing.T) (*httptest.Server, chan url.Values) {
	got := make(chan url.Values, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// signInThroughHydra runs one authorization code flow against a real
// provider with a browser's redirects and cookies, and returns what the
// callback received.
func signInThroughHydra(t *testing.T, o *auth.OIDC, c auth.Challenge, got chan url.Values) url.Values {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := browser.Get(o.AuthCodeURL(c))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case q := <-got:
		return q
	default:
		t.Fatalf("the provider did not send the browser back to the callback; ended at %s with %s", resp.Request.URL, resp.Status)
		return nil
	}
}

// Signed in through a real OpenID Connect provider, a staff member is known
// by their ID token's subject (the id), name, e-mail and roles.
func TestHydraSignInNamesTheStaffMember(t *testing.T) {
	t.Parallel()
	cb, got := codeCatcher(t)
	h := testenv.StartHydra(t, cb.URL+"/auth/callback")
	ctx := context.Background()
	o, err := auth.NewOIDC(ctx, auth.OIDCConfig{Issuer: h.Issuer, ClientID: h.ClientID, ClientSecret: config.Secret(h.ClientSecret),
		RedirectURL: cb.URL + "/auth/callback", Scopes: []string{"profile", "email"}})
	if err != nil {
		t.Fatal(err)
	}

	sub := h.QueueUser("Lena Legal", "lena@example.org", auth.RoleLegal, "not-a-takedown-role", auth.RoleAuditor)
	c := auth.NewChallenge()
	q := signInThroughHydra(t, o, c, got)
	s, idt, err := o.Exchange(ctx, c, q.Get("state"), q.Get("code"))
	if err != nil {
		t.Fatalf("exchange: %v (callback query %v)", err, q)
	}
	want := auth.Staff{Subject: sub, Name: "Lena Legal", Email: "lena@example.org", Roles: []string{auth.RoleLegal, auth.RoleAuditor}}
	if d := cmp.Diff(want, s); d != "" {
		t.Errorf("staff (-want +got):\n%s", d)
	}
	if got := s.Actor(); got.GetId() != sub || got.GetName() != "Lena Legal" || got.GetEmail() != "lena@example.org" {
		t.Errorf("actor %v", got)
	}

	// The same ID token as a bearer token names the same staff member.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+idt.Raw)
	bs, ok, err := o.Bearer()(r)
	if !ok || err != nil {
		t.Fatalf("bearer: ok %v, err %v", ok, err)
	}
	if d := cmp.Diff(want, bs); d != "" {
		t.Errorf("bearer staff (-want +got):\n%s", d)
	}

	// A refused consent comes back as access_denied, with no code.
	h.QueueUser("Rita Reporter", "rita@example.org", auth.RoleReporter)
	h.RefuseConsent()
	c = auth.NewChallenge()
	q = signInThroughHydra(t, o, c, got)
	if q.Get("error") != "access_denied" || q.Get("code") != "" {
		t.Fatalf("refused consent: callback query %v", q)
	}
}
