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
		"Roles": auth.Roles,
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
	if err := w.sessions.PutChallenge(rw, c, localPath(r.URL.Query().Get("next"))); err != nil {
		w.fail(rw, r, err)
		return
	}
	http.Redirect(rw, r, w.oidc.AuthCodeURL(c), http.StatusFound)
}

func (w *Web) callback(rw http.ResponseWriter, r *http.Request) {
	if w.oidc == nil {
		w.fail(rw, r, server.Errorf(http.StatusNotFound, "not_found", "", "no identity provider is configured"))
		return
	}
	c, next := w.sessions.PopChallenge(rw, r)
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		w.recordDenied(r, auth.Staff{}, "sign-in refused by the identity provider: "+errorCode(e))
		w.fail(rw, r, server.Errorf(http.StatusUnauthorized, "unauthenticated", "", "the sign-in was refused (%s); try again or ask your administrator", e))
		return
	}
	s, idToken, err := w.oidc.Exchange(r.Context(), c, q.Get("state"), q.Get("code"))
	if err != nil {
		logging.FromContext(r.Context()).Warn("sign-in failed", logging.KeyErr, err)
		w.recordDenied(r, auth.Staff{}, "sign-in failed")
		w.fail(rw, r, server.Errorf(http.StatusUnauthorized, "unauthenticated", "", "the sign-in did not complete; start again"))
		return
	}
	w.signIn(rw, r, s, idToken, localPath(next))
}

// errorCode returns the OAuth 2.0 error code of a callback (RFC 6749
// §4.1.2.1: "access_denied", "login_required"...) for the audit log, or
// "(not an error code)": the callback's query is anyone's to write, and its
// values stay out of the log.
func errorCode(e string) string {
	if len(e) > 64 || strings.Trim(e, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return "(not an error code)"
	}
	return e
}

// signIn starts s's session, ending when bearer does (a development
// sign-in's token does not expire: the session's lifetime applies).
func (w *Web) signIn(rw http.ResponseWriter, r *http.Request, s auth.Staff, bearer auth.IDToken, next string) {
	if err := w.sessions.SignIn(r.Context(), s, bearer.Raw, bearer.Expiry); err != nil {
		w.fail(rw, r, err)
		return
	}
	w.record(r, "", s, "sign_in", "roles: "+strings.Join(s.Roles, " "))
	logging.FromContext(r.Context()).Info("staff signed in", logging.KeySubject, s.Subject, "roles", s.Roles)
	http.Redirect(rw, r, next, http.StatusSeeOther)
}

// devSignIn signs in as a development user, with the roles ticked (all by
// default), so the local stack can show each role's view. The name typed in
// names the user, so that two people (a submitter and the legal approver
// who must be someone else) can be played in one browser, one after the
// other. Someone not signed in has no session and so no forgery protection
// token: the cross-origin protection around every request (Handler) keeps
// other sites from posting this form.
func (w *Web) devSignIn(rw http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(rw, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		w.fail(rw, r, server.Errorf(http.StatusBadRequest, "invalid", "", "the sign-in form could not be read"))
		return
	}
	var roles []string
	for _, role := range r.PostForm["role"] {
		if slices.Contains(auth.Roles, role) && !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	s, err := devStaff(r.PostFormValue("name"), roles)
	if err != nil {
		w.fail(rw, r, err)
		return
	}
	w.signIn(rw, r, s, auth.IDToken{Raw: w.cfg.DevToken}, localPath(r.PostFormValue("next")))
}

// devStaff is the development user named name: "dev" without a name, else
// "dev:<name>", so that each name is another person to the second-person
// rules.
func devStaff(name string, roles []string) (auth.Staff, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return auth.Staff{Subject: "dev", Name: "development sign-in", Roles: roles}, nil
	}
	if len(name) > 64 || strings.ContainsFunc(name, unicode.IsControl) {
		return auth.Staff{}, server.Errorf(http.StatusBadRequest, "invalid", "name", "the name must be at most 64 characters, without control characters")
	}
	return auth.Staff{Subject: "dev:" + name, Name: name, Roles: roles}, nil
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
