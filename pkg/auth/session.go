package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/postgresstore"
	"github.com/alexedwards/scs/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"takedown/pkg/logging"
	"takedown/pkg/server"
)

// SessionsTable is the table the sessions live in, in the service's own
// schema; the service's migrations create it:
//
//	CREATE TABLE sessions (token text PRIMARY KEY, data bytea NOT NULL, expiry timestamptz NOT NULL);
//	CREATE INDEX sessions_expiry_idx ON sessions (expiry);
const SessionsTable = "sessions"

// SessionConfig bounds a browser session.
type SessionConfig struct {
	IdleTimeout time.Duration // signed out after this long without a request
	Lifetime    time.Duration // signed out after this long in any case
	// Secure marks the cookie HTTPS-only (and names it with the __Host-
	// prefix, which pins it to this host and path /). Off only for the
	// local stack on plain http.
	Secure bool
}

// Sessions keeps signed-in staff in server-side sessions in PostgreSQL. The
// browser holds only a random token in an HttpOnly cookie; signing out or an
// expiry deletes the row, so a stolen cookie dies with the session.
type Sessions struct {
	m     *scs.SessionManager
	store *postgresstore.PostgresStore
}

// Session keys.
const (
	keySubject   = "sub"
	keyName      = "name"
	keyRoles     = "roles"
	keyCSRF      = "csrf"
	keyBearer    = "bearer"
	keyState     = "oidc_state"
	keyNonce     = "oidc_nonce"
	keyVerifier  = "oidc_verifier"
	keyReturnTo  = "return_to"
	keyFlash     = "flash"
	cookieName   = "takedown_session"
	cleanupEvery = 5 * time.Minute
)

// NewSessions keeps sessions in the sessions table of pool's schema.
func NewSessions(pool *pgxpool.Pool, cfg SessionConfig) *Sessions {
	store := postgresstore.NewWithCleanupInterval(sqlDB(pool), cleanupEvery)
	m := scs.New()
	m.Store = store
	m.IdleTimeout = cfg.IdleTimeout
	m.Lifetime = cfg.Lifetime
	m.Cookie.Name = cookieName
	if cfg.Secure {
		m.Cookie.Name = "__Host-" + cookieName
	}
	m.Cookie.Path = "/"
	m.Cookie.HttpOnly = true
	m.Cookie.Secure = cfg.Secure
	// Lax: the cookie comes along when the identity provider sends the
	// browser back (a top-level GET), never on another site's POST.
	m.Cookie.SameSite = http.SameSiteLaxMode
	// Not persisted: closing the browser ends the session.
	m.Cookie.Persist = false
	m.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		logging.FromContext(r.Context()).Error("session store", "err", err)
		server.WriteError(w, server.Errorf(http.StatusServiceUnavailable, "session_unavailable", "", "sessions cannot be read right now; try again in a minute"))
	}
	return &Sessions{m: m, store: store}
}

func sqlDB(pool *pgxpool.Pool) *sql.DB { return stdlib.OpenDBFromPool(pool) }

// Close stops the expired-session cleanup.
func (s *Sessions) Close() { s.store.StopCleanup() }

type loadedKey struct{}

// Middleware loads the request's session and saves it after the handler.
// Everything that uses the session (Authenticator included) runs inside it.
func (s *Sessions) Middleware(next http.Handler) http.Handler {
	return s.m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), loadedKey{}, true)))
	}))
}

func (s *Sessions) loaded(ctx context.Context) bool { return ctx.Value(loadedKey{}) != nil }

var errNoSessionMiddleware = server.Errorf(http.StatusInternalServerError, "internal", "", "sessions are not loaded for this route")

// Authenticator recognises a signed-in browser session. It needs Middleware
// around the handler. It does not check forgery protection: that is
// CheckCSRF's, where the request's token is at hand.
func (s *Sessions) Authenticator() Authenticator {
	return func(r *http.Request) (Staff, bool, error) {
		if !s.loaded(r.Context()) {
			return Staff{}, false, errNoSessionMiddleware
		}
		st, ok := s.Staff(r.Context())
		return st, ok, nil
	}
}

// Staff returns who is signed in to the request's session.
func (s *Sessions) Staff(ctx context.Context) (Staff, bool) {
	if !s.loaded(ctx) {
		return Staff{}, false
	}
	sub := s.m.GetString(ctx, keySubject)
	if sub == "" {
		return Staff{}, false
	}
	return Staff{Subject: sub, Name: s.m.GetString(ctx, keyName), Roles: strings.Fields(s.m.GetString(ctx, keyRoles))}, true
}

// SignIn records st in the session under a new token (the old one, which
// may have been planted before sign-in, stops working) with a fresh forgery
// protection token. bearer is the token to forward to sibling services on
// the staff member's behalf (their ID token; the development token).
func (s *Sessions) SignIn(ctx context.Context, st Staff, bearer string) error {
	if err := s.m.RenewToken(ctx); err != nil {
		return err
	}
	s.m.Put(ctx, keySubject, st.Subject)
	s.m.Put(ctx, keyName, st.Name)
	s.m.Put(ctx, keyRoles, strings.Join(st.Roles, " "))
	s.m.Put(ctx, keyBearer, bearer)
	s.m.Put(ctx, keyCSRF, randomToken())
	return nil
}

// SignOut deletes the session.
func (s *Sessions) SignOut(ctx context.Context) error { return s.m.Destroy(ctx) }

// Bearer returns the token SignIn recorded for forwarding.
func (s *Sessions) Bearer(ctx context.Context) string { return s.m.GetString(ctx, keyBearer) }

// CSRFToken returns the session's forgery protection token for forms and
// the X-CSRF-Token header, creating one for a session that has none yet
// (the sign-in page of someone not signed in).
func (s *Sessions) CSRFToken(ctx context.Context) string {
	t := s.m.GetString(ctx, keyCSRF)
	if t == "" {
		t = randomToken()
		s.m.Put(ctx, keyCSRF, t)
	}
	return t
}

// ErrCSRF refuses a state-changing request that does not carry the
// session's forgery protection token.
var ErrCSRF = server.Errorf(http.StatusForbidden, "csrf", "",
	"this form has expired or did not come from takedown's own page; reload the page and try again")

// CheckCSRF compares token with the session's, in constant time.
func (s *Sessions) CheckCSRF(ctx context.Context, token string) error {
	want := s.m.GetString(ctx, keyCSRF)
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(token)) != 1 {
		return ErrCSRF
	}
	return nil
}

// PutChallenge remembers a sign-in in progress and where to go after it.
func (s *Sessions) PutChallenge(ctx context.Context, c Challenge, returnTo string) {
	s.m.Put(ctx, keyState, c.State)
	s.m.Put(ctx, keyNonce, c.Nonce)
	s.m.Put(ctx, keyVerifier, c.Verifier)
	s.m.Put(ctx, keyReturnTo, returnTo)
}

// PopChallenge returns and forgets the sign-in in progress: a callback is
// good once.
func (s *Sessions) PopChallenge(ctx context.Context) (Challenge, string) {
	return Challenge{
		State:    s.m.PopString(ctx, keyState),
		Nonce:    s.m.PopString(ctx, keyNonce),
		Verifier: s.m.PopString(ctx, keyVerifier),
	}, s.m.PopString(ctx, keyReturnTo)
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// PutFlash keeps a message for the next page the staff member sees.
func (s *Sessions) PutFlash(ctx context.Context, msg string) { s.m.Put(ctx, keyFlash, msg) }

// Flash returns and forgets the message PutFlash kept.
func (s *Sessions) Flash(ctx context.Context) string { return s.m.PopString(ctx, keyFlash) }
