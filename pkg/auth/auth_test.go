package auth

import (
	"errors"
	"net/http/httptest"
	"testing"

	"takedown/pkg/config"
)

// Two development tokens are two people: the second person rule (a legal
// decision, an evidence destruction) can be played with the local stack.
func TestDevTokensSignInAsDifferentStaff(t *testing.T) {
	authn := DevToken("first-token", "second-token")
	for _, tc := range []struct {
		token   string
		subject string
		wrong   bool
	}{
		{token: "first-token", subject: "dev"},
		{token: "second-token", subject: "dev-2"},
		{token: "other", wrong: true},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tc.token)
		s, ok, err := authn(r)
		if !ok {
			t.Fatalf("%s: not recognised as a bearer token", tc.token)
		}
		if tc.wrong {
			if !errors.Is(err, errWrongToken) {
				t.Fatalf("%s: err = %v, want the wrong-token error", tc.token, err)
			}
			continue
		}
		if err != nil || s.Subject != tc.subject {
			t.Fatalf("%s: staff %q, err %v; want %q", tc.token, s.Subject, err, tc.subject)
		}
		for _, role := range Roles {
			if !s.Has(role) {
				t.Errorf("%s: lacks role %s", tc.token, role)
			}
		}
	}
	if _, ok, _ := DevToken(config.Secret(""))(httptest.NewRequest("GET", "/", nil)); ok {
		t.Fatal("an empty development token accepted a request without credentials")
	}
}

// The display name is the first claim set among name, preferred_username,
// email and the subject; the subject stays the id.
func TestStaffFromClaims(t *testing.T) {
	for _, tc := range []struct {
		claims      map[string]any
		name, email string
	}{
		{map[string]any{"name": "Ada Staff", "preferred_username": "ada", "email": "ada@example.org"}, "Ada Staff", "ada@example.org"},
		{map[string]any{"preferred_username": "ada", "email": "ada@example.org"}, "ada", "ada@example.org"},
		{map[string]any{"email": "ada@example.org"}, "ada@example.org", "ada@example.org"},
		{map[string]any{"name": "  "}, "sub-1", ""},
	} {
		s := staffFromClaims("sub-1", tc.claims, "roles")
		if s.Subject != "sub-1" || s.Name != tc.name || s.Email != tc.email {
			t.Errorf("%v: got %+v, want name %q email %q", tc.claims, s, tc.name, tc.email)
		}
	}
	if got := (Staff{Subject: "s", Name: "Ada", Email: "a@x"}).Label(); got != "Ada <a@x>" {
		t.Errorf("label %q", got)
	}
	if got := (Staff{Subject: "s"}).Label(); got != "s" {
		t.Errorf("label without a name %q", got)
	}
}
