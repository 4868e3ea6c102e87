package auth

import (
	"strings"
	"testing"

	"takedown/pkg/config"
)

// TestLoadOIDCRefusesAPlainHTTPIssuer: the issuer's keys decide whose ID
// tokens are believed, and the client secret travels to it.
func TestLoadOIDCRefusesAPlainHTTPIssuer(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		refused bool
	}{
		{map[string]string{"OIDC_ISSUER": "https://idp.example", "OIDC_CLIENT_ID": "c"}, false},
		{map[string]string{"OIDC_ISSUER": "http://idp.example", "OIDC_CLIENT_ID": "c"}, true},
		{map[string]string{"OIDC_ISSUER": "http://127.0.0.1:9", "OIDC_CLIENT_ID": "c", config.DevAllowHTTP: "true"}, false},
	} {
		l := config.New(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		LoadOIDC(l, "")
		if err := l.Err(); (err != nil) != tc.refused || tc.refused && !strings.Contains(err.Error(), "OIDC_ISSUER:") {
			t.Errorf("%v: %v", tc.env, err)
		}
	}
}
