package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"takedown/pkg/config"
	"takedown/pkg/server"
)

// OIDCConfig names the identity provider staff sign in with.
type OIDCConfig struct {
	Issuer       string // e.g. https://login.example.com/realms/staff
	ClientID     string
	ClientSecret config.Secret
	RedirectURL  string // this service's callback, e.g. https://takedown.example.com/auth/callback
	// RolesClaim names the claim holding the staff member's roles: a list
	// of strings or one space-separated string. A dotted name reaches into
	// nested objects ("realm_access.roles").
	RolesClaim string
	Scopes     []string // besides openid
}

// OIDC signs staff in with an OpenID Connect provider (authorization code
// flow with PKCE and a nonce) and verifies the ID tokens API clients send
// as bearer tokens against the same issuer and client.
type OIDC struct {
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	rolesClaim string
}

// NewOIDC discovers the provider's endpoints and keys. ctx bounds the
// discovery request only.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery at %s: %w", cfg.Issuer, err)
	}
	claim := cfg.RolesClaim
	if claim == "" {
		claim = "roles"
	}
	return &OIDC{
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret.Reveal(),
			Endpoint: p.Endpoint(), RedirectURL: cfg.RedirectURL,
			Scopes: append([]string{oidc.ScopeOpenID}, cfg.Scopes...),
		},
		rolesClaim: claim,
	}, nil
}

// Challenge is what one sign-in must remember between sending the staff
// member to the provider and their return: kept in the server-side session.
type Challenge struct {
	State, Nonce, Verifier string
}

// NewChallenge returns fresh random values for one sign-in.
func NewChallenge() Challenge {
	return Challenge{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier()}
}

// AuthCodeURL is where to send the browser to sign in.
func (o *OIDC) AuthCodeURL(c Challenge) string {
	return o.oauth.AuthCodeURL(c.State, oidc.Nonce(c.Nonce), oauth2.S256ChallengeOption(c.Verifier))
}

// IDToken is a verified ID token: the service may forward Raw as a bearer
// token to its sibling services on the staff member's behalf until Expiry.
type IDToken struct {
	Raw    string
	Expiry time.Time
}

// Exchange completes a sign-in: it trades the code for tokens, verifies the
// ID token (signature, issuer, audience, expiry, nonce) and returns who
// signed in with their ID token.
func (o *OIDC) Exchange(ctx context.Context, c Challenge, state, code string) (Staff, IDToken, error) {
	if state == "" || state != c.State {
		return Staff{}, IDToken{}, errors.New("the sign-in state does not match; start again")
	}
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(c.Verifier))
	if err != nil {
		return Staff{}, IDToken{}, fmt.Errorf("exchange code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return Staff{}, IDToken{}, errors.New("the provider sent no id_token")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return Staff{}, IDToken{}, fmt.Errorf("verify id token: %w", err)
	}
	if idt.Nonce != c.Nonce {
		return Staff{}, IDToken{}, errors.New("the id token's nonce does not match; start again")
	}
	s, err := o.staff(idt)
	return s, IDToken{Raw: raw, Expiry: idt.Expiry}, err
}

// Bearer accepts "Authorization: Bearer <ID token>" issued by the provider
// to this client. Tokens of other issuers or audiences, or expired ones, are
// refused (401).
func (o *OIDC) Bearer() Authenticator {
	return func(r *http.Request) (Staff, bool, error) {
		raw, ok := bearer(r)
		if !ok || strings.Count(raw, ".") != 2 {
			// Not a JWT: perhaps the development token.
			return Staff{}, false, nil
		}
		idt, err := o.verifier.Verify(r.Context(), raw)
		if err != nil {
			return Staff{}, true, server.Errorf(http.StatusUnauthorized, "unauthenticated", "", "the bearer token is not valid: %v", err)
		}
		s, err := o.staff(idt)
		if err != nil {
			return Staff{}, true, server.Errorf(http.StatusUnauthorized, "unauthenticated", "", "%v", err)
		}
		return s, true, nil
	}
}

func (o *OIDC) staff(idt *oidc.IDToken) (Staff, error) {
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Staff{}, fmt.Errorf("id token claims: %w", err)
	}
	return staffFromClaims(idt.Subject, claims, o.rolesClaim), nil
}

// staffFromClaims names the staff member from the ID token's claims: the
// subject stays the id; the display name is the first of name,
// preferred_username, email and the subject that is set.
func staffFromClaims(subject string, claims map[string]any, rolesClaim string) Staff {
	str := func(k string) string { v, _ := claims[k].(string); return strings.TrimSpace(v) }
	s := Staff{Subject: subject, Email: str("email"), Roles: rolesFrom(claims, rolesClaim)}
	for _, v := range []string{str("name"), str("preferred_username"), s.Email, subject} {
		if v != "" {
			s.Name = v
			break
		}
	}
	return s
}

// rolesFrom reads the takedown roles out of the claim at path. Values that
// are not takedown roles (most groups of a directory) are dropped.
func rolesFrom(claims map[string]any, path string) []string {
	var v any = claims
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	var names []string
	switch x := v.(type) {
	case string:
		names = strings.Fields(x)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				names = append(names, s)
			}
		}
	}
	var roles []string
	for _, n := range names {
		if slices.Contains(Roles, n) && !slices.Contains(roles, n) {
			roles = append(roles, n)
		}
	}
	return roles
}
