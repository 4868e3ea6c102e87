package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"takedown/pkg/config"
)

// LoadOIDC reads the OpenID Connect provider staff sign in with:
// OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_ROLES_CLAIM and
// OIDC_SCOPES. It returns nil when OIDC_ISSUER is unset. redirectURL is the
// service's sign-in callback; services that only verify API bearer tokens
// pass "".
func LoadOIDC(l *config.Loader, redirectURL string) *OIDCConfig {
	issuer := l.RemoteURL("OIDC_ISSUER", "")
	if issuer == "" {
		return nil
	}
	return &OIDCConfig{
		Issuer:       issuer,
		ClientID:     l.MustString("OIDC_CLIENT_ID"),
		ClientSecret: l.Secret("OIDC_CLIENT_SECRET", config.Optional),
		RedirectURL:  redirectURL,
		RolesClaim:   l.String("OIDC_ROLES_CLAIM", "roles"),
		Scopes:       strings.Fields(l.String("OIDC_SCOPES", "profile email")),
	}
}

// Bearers returns the ways an API request authenticates with a bearer
// token: an ID token of the OIDC provider when one is configured, then the
// development token when it is set. The development token comes last since
// it refuses any bearer token but its own; a second development token plays
// a second person (DevToken). The OIDC client is returned for
// services that also sign staff in through the browser (nil without OIDC).
func Bearers(ctx context.Context, oidcCfg *OIDCConfig, dev ...config.Secret) ([]Authenticator, *OIDC, error) {
	var out []Authenticator
	var o *OIDC
	if oidcCfg != nil {
		var err error
		if o, err = NewOIDC(ctx, *oidcCfg); err != nil {
			return nil, nil, fmt.Errorf("OIDC_ISSUER: %w", err)
		}
		out = append(out, o.Bearer())
	}
	if slices.ContainsFunc(dev, func(t config.Secret) bool { return t != "" }) {
		out = append(out, DevToken(dev...))
	}
	return out, o, nil
}
