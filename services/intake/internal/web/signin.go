package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"takedown/pkg/auth"
	"takedown/pkg/logging"
	"takedown/pkg/server"
)

// localPath returns next when it is a path on this site, else "/": the
// sign-in must not become a redirect to anywhere. Browsers read a URL more
// loosely than Go does: they drop TAB, CR and LF anywhere and leading
// controls and spaces, and read a backslash as "/", so "/\t/evil.example"
// is the other origin "//evil.example" to them. Only a path that parses as
// a relative URL without scheme or host, and holds no control or space
// character at all, is kept.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') ||
		strings.ContainsFunc(next, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	return next
}

func (w *Web) signinPage(rw http.ResponseWriter, r *http.Request) {
	w.render(rw, r, http.StatusOK, "signin", map[string]any{
		"Next": localPath(r.URL.Query().Get("next")), "OIDC": w.oidc != nil, "Dev": w.cfg.DevSignIn,
		"Roles": []string{auth.RoleReporter, auth.RoleRetractor, auth.RoleAuditor},
	})
}

// login sends the browser to the identity provider, remembering in the
// session what the callback must find again.
func (w *Web) login(rw http.ResponseWriter, r *http.Request) {
	if w.oidc == nil {
		w.fail(rw, r, server.Errorf(http.StatusNotFound, "not_found", "", "no identity provider is configured; use the development sign-in"))
		return
	}
	c := auth.NewChallenge()
	w.sessions.PutChallenge(r.Context(), c, localPath(r.URL.Query().Get("next")))
	http.Redirect(rw, r, w.oidc.AuthCodeURL(c), http.StatusFound)
}

func (w *Web) callback(rw http.ResponseWriter, r *http.Request) {
	if w.oidc == nil {
		w.fail(rw, r, server.Errorf(http.StatusNotFound, "not_found", "", "no identity provider is configured"))
		return
	}
	c, next := w.sessions.PopChallenge(r.Context())
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		w.recordDenied(r, auth.Staff{}, "sign-in refused by the identity provider: "+e)
		w.fail(rw, r, server.Errorf(http.StatusUnauthorized, "unauthenticated", "", "the sign-in was refused (%s); try again or ask your administrator", e))
		return
	}
	s, idToken, err := w.oidc.Exchange(r.Context(), c, q.Get("state"), q.Get("code"))
	if err != nil {
		logging.FromContext(r.Context()).Warn("sign-in failed", "err", err)
		w.recordDenied(r, auth.Staff{}, "sign-in failed")
		w.fail(rw, r, server.Errorf(http.StatusUnauthorized, "unauthenticated", "", "the sign-in did not complete; start again"))
		return
	}
	w.signIn(rw, r, s, idToken, localPath(next))
}

func (w *Web) signIn(rw http.ResponseWriter, r *http.Request, s auth.Staff, bearer, next string) {
	if err := w.sessions.SignIn(r.Context(), s, bearer); err != nil {
		w.fail(rw, r, err)
		return
	}
	w.record(r, "", s, "sign_in", "roles: "+strings.Join(s.Roles, " "))
	logging.FromContext(r.Context()).Info("staff signed in", "subject", s.Subject, "roles", s.Roles)
	http.Redirect(rw, r, next, http.StatusSeeOther)
}

// devSignIn signs in as the development user, with the roles ticked (all
// by default), so the local stack can show each role's view.
func (w *Web) devSignIn(rw http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(rw, r.Body, 16<<10)
	if err := w.sessions.CheckCSRF(r.Context(), r.PostFormValue("csrf_token")); err != nil {
		w.fail(rw, r, err)
		return
	}
	var roles []string
	for _, role := range r.PostForm["role"] {
		if slices.Contains([]string{auth.RoleReporter, auth.RoleRetractor, auth.RoleAuditor}, role) && !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	s := auth.Staff{Subject: "dev", Name: "development sign-in", Roles: roles}
	w.signIn(rw, r, s, w.cfg.DevToken, localPath(r.PostFormValue("next")))
}

func (w *Web) logout(rw http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(rw, r.Body, 16<<10)
	if err := w.sessions.CheckCSRF(r.Context(), r.PostFormValue("csrf_token")); err != nil {
		w.fail(rw, r, err)
		return
	}
	if err := w.sessions.SignOut(r.Context()); err != nil {
		w.fail(rw, r, err)
		return
	}
	http.Redirect(rw, r, "/auth/signin", http.StatusSeeOther)
}
