// Package web is intake's staff-facing site: sign-in (OIDC, or the local
// stack's development sign-in), the report form at /, the live status page
// of each report with its retract and file-again actions, the reports list
// with its filters and search, and the attention queue. Pages are
// server-rendered and work without JavaScript; a small embedded script adds
// drag-and-drop, per-file metadata, checks before upload, an upload
// progress bar and live status updates.
//
// The uploaded media is never shown back: pages carry names, sizes, types
// and hashes only.
//
// Forgery protection is two layers, both on every state-changing request:
// http.CrossOriginProtection refuses requests a browser marks as coming
// from another origin (Sec-Fetch-Site, else Origin), and a per-session
// random token must come back with every form (a hidden field, checked
// before the body's files are read) or every session-authenticated API call
// (the X-CSRF-Token header). Bearer-token API clients carry no ambient
// credentials and need no token.
package web

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"takedown/pkg/auth"
	"takedown/pkg/server"
	"takedown/pkg/staffaction"
	"takedown/services/intake/internal/lifecycle"
	"takedown/services/intake/internal/reports"
	"takedown/services/intake/internal/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Config configures the site.
type Config struct {
	// DevSignIn offers the development sign-in (every role, no password):
	// only the local stack turns it on.
	DevSignIn bool
	// DevToken is forwarded to the retraction service for development
	// sign-ins, which have no ID token of their own.
	DevToken string
	// RetractionURL is the retraction service's base URL.
	RetractionURL string
	// Attention is the attention queue's policy: a report's page says what
	// happened and what to do while the report is owed something.
	Attention store.AttentionPolicy
	// Lifecycle is the evidence lifecycle the evidence pages act through
	// (evidence.go); without it they are not served.
	Lifecycle *lifecycle.Manager
}

// Web serves the site.
type Web struct {
	cfg      Config
	reports  *reports.Service
	store    *store.Store
	sessions *auth.Sessions
	oidc     *auth.OIDC // nil when only the development sign-in is configured
	authn    []auth.Authenticator
	pages    map[string]*template.Template
	client   *http.Client
	denials  *staffaction.Denials
	// attention keeps the queue's count for the header (list.go).
	attention *countCache
	log       *slog.Logger
	now       func() time.Time
}

// New returns the site. oidc may be nil; bearer are the API's bearer token
// authenticators (OIDC ID tokens, the development token).
func New(cfg Config, svc *reports.Service, st *store.Store, sessions *auth.Sessions, oidc *auth.OIDC, bearer []auth.Authenticator, log *slog.Logger) (*Web, error) {
	if sessions == nil || svc == nil || st == nil {
		return nil, fmt.Errorf("web: sessions, reports and store are required")
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	w := &Web{cfg: cfg, reports: svc, store: st, sessions: sessions, oidc: oidc, pages: pages, log: log, now: time.Now,
		client: &http.Client{Timeout: 15 * time.Second}, denials: staffaction.NewDenials(st.RecordAction, log)}
	w.attention = &countCache{load: w.attentionCount, ttl: attentionCacheFor, now: func() time.Time { return w.now() }}
	w.authn = append(append([]auth.Authenticator(nil), bearer...), w.apiSession)
	return w, nil
}

// RecordDenials writes the aggregate audit entries of refused requests
// (package staffaction) until ctx ends.
func (w *Web) RecordDenials(ctx context.Context) error { return w.denials.Run(ctx) }

// Handler wraps the whole site and API: forgery protection, then the
// session. Operational endpoints stay outside it.
func (w *Web) Handler(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.recordDenied(r, auth.Staff{}, "403 Forbidden: cross-origin request")
		server.WriteError(rw, server.Errorf(http.StatusForbidden, "cross_origin", "", "cross-origin requests are refused"))
	}))
	return cop.Handler(w.sessions.Middleware(securityHeaders(next)))
}

// securityHeaders replaces the services' policy (server.SecurityHeaders,
// which sets the other headers) with the pages' own: no inline script, no
// framing, nothing from elsewhere, since the machines this runs on may have
// no internet, and a page about abuse material must not be embeddable.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		next.ServeHTTP(rw, r)
	})
}

// filesOnly serves the files of an FS and not its directories, so that
// http.FileServer answers 404 for /static/ instead of listing what is there.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := file.Stat(); err != nil || st.IsDir() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return file, nil
}

// apiSession authenticates API calls with the browser session when they
// carry no Authorization header (a request with one is its token's alone).
// A state-changing call must carry the session's token in X-CSRF-Token.
func (w *Web) apiSession(r *http.Request) (auth.Staff, bool, error) {
	if r.Header.Get("Authorization") != "" {
		return auth.Staff{}, false, nil
	}
	s, ok, err := w.sessions.Authenticator()(r)
	if !ok || err != nil {
		return s, ok, err
	}
	if !safe(r.Method) {
		if err := w.sessions.CheckCSRF(r.Context(), r.Header.Get("X-CSRF-Token")); err != nil {
			return s, true, err
		}
	}
	return s, true, nil
}

func safe(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// Guard admits API requests from staff holding one of roles, by bearer
// token or session, and records the refusals for the audit log.
func (w *Web) Guard(roles ...string) func(http.Handler) http.Handler {
	require := auth.RequireOneOf(roles, w.authn...)
	return func(next http.Handler) http.Handler {
		h := require(next)
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: rw}
			h.ServeHTTP(sw, r)
			if sw.status == http.StatusUnauthorized || sw.status == http.StatusForbidden {
				who, _ := w.identify(r)
				w.recordDenied(r, who, fmt.Sprintf("%d %s", sw.status, http.StatusText(sw.status)))
			}
		})
	}
}

// identify names the caller of a refused request as far as its credentials tell.
func (w *Web) identify(r *http.Request) (auth.Staff, bool) {
	for _, a := range w.authn {
		if s, ok, err := a(r); ok && err == nil {
			return s, true
		}
	}
	return w.sessions.Staff(r.Context())
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Routes mounts the site on r (inside Handler).
func (w *Web) Routes(r chi.Router) {
	static, _ := fs.Sub(staticFiles, "static")
	r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(filesOnly{static})))

	r.Get("/auth/signin", w.signinPage)
	r.Get("/auth/login", w.login)
	r.Get("/auth/callback", w.callback)
	r.Post("/auth/logout", w.logout)
	if w.cfg.DevSignIn {
		r.Post("/auth/dev", w.devSignIn)
	}

	r.Get("/", w.page(w.formPage, auth.RoleReporter))
	r.Post("/reports", w.page(w.submit, auth.RoleReporter))
	r.Get("/reports", w.page(w.listPage, reports.ReadRoles...))
	r.Get("/attention", w.page(w.attentionPage, reports.ReadRoles...))
	r.Get("/reports/{id}", w.page(w.statusPage, reports.ReadRoles...))
	r.Get("/reports/{id}/live", w.page(w.livePart, reports.ReadRoles...))
	r.Post("/reports/{id}/retract", w.page(w.form(w.retract), auth.RoleRetractor))
	r.Post("/reports/{id}/retract-lost", w.page(w.form(w.retractLost), auth.RoleRetractor))
	r.Post("/reports/{id}/refile", w.page(w.form(w.refile), auth.RoleReporter))
	r.Post("/reports/{id}/close", w.page(w.form(w.closeReport), auth.RoleReporter))
	r.Post("/reports/{id}/legal-decision", w.page(w.form(w.legalDecision), auth.RoleLegal))
	w.evidenceRoutes(r)
}

// page admits a signed-in staff member holding one of roles to h. Someone
// not signed in is sent to sign in (a GET) or refused (anything else);
// someone without the role is refused with a page that says which role
// they need. Refusals are recorded for the audit log.
func (w *Web) page(h http.HandlerFunc, roles ...string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		s, ok := w.sessions.Staff(r.Context())
		if !ok {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/live") {
				http.Redirect(rw, r, "/auth/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.recordDenied(r, auth.Staff{}, "401 Unauthorized: not signed in")
			w.fail(rw, r, server.Errorf(http.StatusUnauthorized, "unauthenticated", "", "you are not signed in (or your session expired); sign in and try again"))
			return
		}
		for _, role := range roles {
			if s.Has(role) {
				h(rw, r.WithContext(auth.WithStaff(r.Context(), s)))
				return
			}
		}
		w.recordDenied(r, s, "403 Forbidden: lacks the "+strings.Join(roles, " or ")+" role")
		w.fail(rw, r, server.Errorf(http.StatusForbidden, "forbidden", "", "this needs the %s role, which your account does not have; ask your takedown administrator", strings.Join(roles, " or ")))
	}
}

// form checks the forgery protection token of a urlencoded form before h.
// (The report form is multipart and checks its token as its first part.)
func (w *Web) form(h http.HandlerFunc) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(rw, r.Body, 64<<10)
		if err := w.sessions.CheckCSRF(r.Context(), r.PostFormValue("csrf_token")); err != nil {
			s, _ := auth.FromContext(r.Context())
			w.recordDenied(r, s, "403 Forbidden: missing or wrong forgery protection token")
			w.fail(rw, r, err)
			return
		}
		h(rw, r)
	}
}

// record publishes a staff action for the audit log
// (reports.Service.RecordAction).
func (w *Web) record(r *http.Request, reportID string, s auth.Staff, action, detail string) {
	w.reports.RecordAction(r.Context(), reportID, s, staffaction.Of(r, s.Actor(), action, detail))
}

// recordDenied records a refused request, bounded and rate-limited per
// client (package staffaction): nothing a client that is refused sends may
// grow the audit log without bound.
func (w *Web) recordDenied(r *http.Request, s auth.Staff, detail string) {
	w.denials.Record(r, s.Actor(), detail)
}
