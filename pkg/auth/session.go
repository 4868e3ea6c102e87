package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/postgresstore"
	"github.com/alexedwards/scs/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"takedown/pkg/keyring"
	"takedown/pkg/logging"
	"takedown/pkg/server"
)

// SessionsTable is the table the sessions live in, in the service's own
// schema; the service's migrations create it (token holds the SHA-256 of
// the cookie's token, data the session sealed under the master keys):
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
	// Keys seal what the sessions table holds: whoever can read the table
	// must not be able to act as a staff member with the bearer token it
	// keeps for forwarding.
	Keys *keyring.Keyring
}

// Sessions keeps signed-in staff in server-side sessions in PostgreSQL. The
// browser holds only a random token in an HttpOnly cookie; signing out or an
// expiry deletes the row, so a stolen cookie dies with the session.
//
// A row is of no use to whoever can read the table: it is keyed by the
// token's SHA-256, and its data (roles, forgery protection token, the
// bearer token forwarded on the staff member's behalf) is sealed under the
// master keys. A session ends when the ID token it came from expires (or
// Lifetime, whichever is first), so its roles are never older than the
// provider's word. Only a sign-in makes a row: someone not signed in costs
// no storage (a sign-in in progress waits in a sealed cookie instead).
type Sessions struct {
	m     *scs.SessionManager
	store *postgresstore.PostgresStore
	keys  *keyring.Keyring
}

// Session keys.
const (
	keySubject   = "sub"
	keyName      = "name"
	keyEmail     = "email"
	keyRoles     = "roles"
	keyCSRF      = "csrf"
	keyBearer    = "bearer"
	keyFlash     = "flash"
	cookieName   = "takedown_session"
	cleanupEvery = 5 * time.Minute

	// A sign-in in progress: its cookie, and how long the staff member
	// has at the provider.
	signinCookie = "takedown_signin"
	signinTime   = 10 * time.Minute

	// Purposes of sealed values (keyring.Seal).
	sealSession = "takedown/session"
	sealSignin  = "takedown/signin"
)

// NewSessions keeps sessions in the sessions table of pool's schema, sealed
// under cfg.Keys.
func NewSessions(pool *pgxpool.Pool, cfg SessionConfig) (*Sessions, error) {
	if pool == nil || cfg.Keys == nil {
		return nil, errors.New("sessions: a pool and the master keys are required")
	}
	store := postgresstore.NewWithCleanupInterval(sqlDB(pool), cleanupEvery)
	m := scs.New()
	m.Store = store
	m.HashTokenInStore = true
	m.Codec = sealedCodec{keys: cfg.Keys}
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
		logging.FromContext(r.Context()).Error("session store", logging.KeyErr, err)
		server.WriteError(w, server.Errorf(http.StatusServiceUnavailable, "session_unavailable", "", "sessions cannot be read right now; try again in a minute"))
	}
	return &Sessions{m: m, store: store, keys: cfg.Keys}, nil
}

// sealedCodec seals the session data at rest (scs's gob encoding inside).
type sealedCodec struct{ keys *keyring.Keyring }

func (c sealedCodec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	b, err := scs.GobCodec{}.Encode(deadline, values)
	if err != nil {
		return nil, err
	}
	return c.keys.Seal(sealSession, b)
}

// Decode opens a session. One that no longer opens (its master key
// retired) is an empty session that has already ended: its staff member
// signs in again, rather than seeing an error until the cookie goes.
func (c sealedCodec) Decode(b []byte) (time.Time, map[string]any, error) {
	plain, err := c.keys.Open(sealSession, b)
	if err != nil {
		return time.Now(), map[string]any{}, nil
	}
	return scs.GobCodec{}.Decode(plain)
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
	return Staff{
		Subject: sub, Name: s.m.GetString(ctx, keyName), Email: s.m.GetString(ctx, keyEmail),
		Roles: strings.Fields(s.m.GetString(ctx, keyRoles)),
	}, true
}

// SignIn records st in the session under a new token (the old one, which
// may have been planted before sign-in, stops working) with a fresh forgery
// protection token. bearer is the token to forward to sibling services on
// the staff member's behalf (their ID token; the development token), and
// the session ends when it expires (zero: it does not, as the development
// token; the session's Lifetime applies).
func (s *Sessions) SignIn(ctx context.Context, st Staff, bearer string, expires time.Time) error {
	if err := s.m.RenewToken(ctx); err != nil {
		return err
	}
	if !expires.IsZero() && expires.Before(s.m.Deadline(ctx)) {
		s.m.SetDeadline(ctx, expires)
	}
	s.m.Put(ctx, keySubject, st.Subject)
	s.m.Put(ctx, keyName, st.Name)
	s.m.Put(ctx, keyEmail, st.Email)
	s.m.Put(ctx, keyRoles, strings.Join(st.Roles, " "))
	s.m.Put(ctx, keyBearer, bearer)
	s.m.Put(ctx, keyCSRF, randomToken())
	return nil
}

// SignOut deletes the session.
func (s *Sessions) SignOut(ctx context.Context) error { return s.m.Destroy(ctx) }

// Bearer returns the token SignIn recorded for forwarding.
func (s *Sessions) Bearer(ctx context.Context) string { return s.m.GetString(ctx, keyBearer) }

// CSRFToken returns the signed-in session's forgery protection token for
// forms and the X-CSRF-Token header; "" for someone not signed in, who
// gets no session (and so nothing a form of theirs could change).
func (s *Sessions) CSRFToken(ctx context.Context) string { return s.m.GetString(ctx, keyCSRF) }

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

// signin is a sign-in in progress, as its cookie holds it.
type signin struct {
	Challenge
	ReturnTo string
	Expires  time.Time
}

func (s *Sessions) signinCookie() *http.Cookie {
	c := &http.Cookie{Name: signinCookie, Path: "/", HttpOnly: true, Secure: s.m.Cookie.Secure,
		// Lax: the provider sends the browser back with a top-level GET.
		SameSite: http.SameSiteLaxMode}
	if c.Secure {
		c.Name = "__Host-" + c.Name
	}
	return c
}

// PutChallenge remembers a sign-in in progress and where to go after it,
// in a sealed cookie of its own: someone who starts a sign-in and never
// finishes it costs no session row.
func (s *Sessions) PutChallenge(w http.ResponseWriter, c Challenge, returnTo string) error {
	b, err := json.Marshal(signin{Challenge: c, ReturnTo: returnTo, Expires: time.Now().Add(signinTime)})
	if err != nil {
		return err
	}
	sealed, err := s.keys.Seal(sealSignin, b)
	if err != nil {
		return err
	}
	ck := s.signinCookie()
	ck.Value = base64.RawURLEncoding.EncodeToString(sealed)
	ck.MaxAge = int(signinTime / time.Second)
	http.SetCookie(w, ck)
	return nil
}

// PopChallenge returns and forgets the sign-in in progress: a callback is
// good once. Without one (none, expired, altered) the challenge is empty,
// which no callback matches.
func (s *Sessions) PopChallenge(w http.ResponseWriter, r *http.Request) (Challenge, string) {
	ck := s.signinCookie()
	got, err := r.Cookie(ck.Name)
	ck.MaxAge = -1
	http.SetCookie(w, ck)
	if err != nil {
		return Challenge{}, ""
	}
	sealed, err := base64.RawURLEncoding.DecodeString(got.Value)
	if err != nil {
		return Challenge{}, ""
	}
	b, err := s.keys.Open(sealSignin, sealed)
	if err != nil {
		return Challenge{}, ""
	}
	var in signin
	if json.Unmarshal(b, &in) != nil || time.Now().After(in.Expires) {
		return Challenge{}, ""
	}
	return in.Challenge, in.ReturnTo
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
