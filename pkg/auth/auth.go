// Package auth authenticates staff requests and carries who they are and
// which roles they hold (DESIGN.md §7): reporter may submit, retractor may
// retract, auditor may read the audit log, legal decides whether a report
// goes to NCMEC, evidence-admin holds and destroys evidence.
//
// A request authenticates with one of the Authenticators a service lists:
// an OIDC ID token as a bearer token (OIDC.Bearer), the browser session of a
// signed-in staff member (Sessions.Authenticator), or the development token
// of the local stack (DevToken).
package auth

import (
	"context"
	"crypto/subtle"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"takedown/pkg/config"
	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/server"
	"takedown/pkg/staffaction"
)

// Roles.
const (
	RoleReporter  = "reporter"
	RoleRetractor = "retractor"
	RoleAuditor   = "auditor"
	// RoleEvidenceAdmin places legal holds on evidence and records and
	// approves its destruction on a law-enforcement request.
	RoleEvidenceAdmin = "evidence-admin"
	// RoleLegal approves or rejects a submitted report before it is filed
	// (intake's LEGAL_APPROVAL=required), never one they submitted.
	RoleLegal = "legal"
)

// Roles lists every role, the one list sign-in accepts roles from.
var Roles = []string{RoleReporter, RoleRetractor, RoleAuditor, RoleLegal, RoleEvidenceAdmin}

// Staff is an authenticated staff member.
type Staff struct {
	Subject string // stable id: the OIDC subject, or "dev"
	// Name is the display name: the ID token's name, else
	// preferred_username, else email, else the subject.
	Name  string
	Email string // the ID token's email claim; may be empty
	Roles []string
}

// Actor is the staff member as the actor of an event: the one place a Staff
// becomes an Actor. Without a subject (a request that never authenticated)
// it is the anonymous actor.
func (s Staff) Actor() *pb.Actor {
	if s.Subject == "" {
		return staffaction.Anonymous()
	}
	a := events.Staff(s.Subject, s.Name)
	a.Email = s.Email
	return a
}

// Label is how pages and records name the staff member to people (Label).
func (s Staff) Label() string { return Label(s.Subject, s.Name, s.Email) }

// Label names a staff member to people: "Name <email>"; the name alone
// without an e-mail (or when the name is the e-mail); the subject when no
// name is known (records kept before names were).
func Label(subject, name, email string) string {
	if name == "" {
		name = subject
	}
	if email == "" || email == name {
		return name
	}
	return name + " <" + email + ">"
}

// Has reports whether s holds role.
func (s Staff) Has(role string) bool { return slices.Contains(s.Roles, role) }

// Authenticator recognises a request's credentials. It returns ok=false when
// the request carries none it understands, and an error when it carries
// credentials that are wrong.
type Authenticator func(r *http.Request) (s Staff, ok bool, err error)

// DevToken accepts "Authorization: Bearer <token>" with a development token,
// as a staff member holding every role: the first token signs in as "dev",
// the second as "dev-2" (and so on), so that the local stack can play two
// people, a submitter and the second person who must approve. Empty tokens
// accept nothing.
func DevToken(tokens ...config.Secret) Authenticator {
	var want [][]byte
	for _, t := range tokens {
		if t != "" {
			want = append(want, []byte(t.Reveal()))
		}
	}
	return func(r *http.Request) (Staff, bool, error) {
		got, ok := bearer(r)
		if !ok || len(want) == 0 {
			return Staff{}, false, nil
		}
		for i, w := range want {
			if subtle.ConstantTimeCompare([]byte(got), w) == 1 {
				return DevStaff(i), true, nil
			}
		}
		return Staff{}, true, errWrongToken
	}
}

// DevStaff is the staff member the i-th development token (from 0) signs
// in as.
func DevStaff(i int) Staff {
	if i == 0 {
		return Staff{Subject: "dev", Name: "development sign-in", Roles: Roles}
	}
	n := strconv.Itoa(i + 1)
	return Staff{Subject: "dev-" + n, Name: "development sign-in " + n, Roles: Roles}
}

var errWrongToken = server.Errorf(http.StatusUnauthorized, "unauthenticated", "", "the bearer token is not valid")

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

type ctxKey struct{}

// FromContext returns the authenticated staff member of a request.
func FromContext(ctx context.Context) (Staff, bool) {
	s, ok := ctx.Value(ctxKey{}).(Staff)
	return s, ok
}

// WithStaff returns ctx carrying s.
func WithStaff(ctx context.Context, s Staff) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

// Require authenticates every request with the first authenticator that
// recognises its credentials, and refuses it (401) when none does or (403)
// when the staff member lacks role. A refusal is answered before the
// request body is read.
func Require(role string, authn ...Authenticator) func(http.Handler) http.Handler {
	return RequireOneOf([]string{role}, authn...)
}

// RequireOneOf is Require for routes any of several roles may use (reading
// a report's status: reporters, retractors and auditors alike). An empty
// role in roles admits every authenticated staff member.
func RequireOneOf(roles []string, authn ...Authenticator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, a := range authn {
				s, ok, err := a(r)
				if err != nil {
					server.WriteError(w, err)
					return
				}
				if !ok {
					continue
				}
				if !slices.ContainsFunc(roles, func(role string) bool { return role == "" || s.Has(role) }) {
					server.WriteError(w, server.Errorf(http.StatusForbidden, "forbidden", "", "the %s role is needed for this", strings.Join(roles, " or ")))
					return
				}
				next.ServeHTTP(w, r.WithContext(WithStaff(r.Context(), s)))
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="takedown"`)
			server.WriteError(w, server.Errorf(http.StatusUnauthorized, "unauthenticated", "", "sign in, or send Authorization: Bearer <token>"))
		})
	}
}
