package salesforce

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Credentials is one of the two server-to-server OAuth flows API.md §1
// recommends: ClientCredentials or JWTBearer. Username-password and SOAP
// login are deliberately not offered (both are being retired).
type Credentials interface {
	// tokenForm returns the token request body; unexported so only the
	// two audited flows exist.
	tokenForm(now time.Time) (url.Values, error)
	flow() string
}

// ClientCredentials is the OAuth 2.0 client credentials flow: consumer key
// and secret of an External Client App with a Run-As integration user.
// The token endpoint must be the org's My Domain URL.
type ClientCredentials struct {
	ClientID     string
	ClientSecret string
}

func (c ClientCredentials) tokenForm(time.Time) (url.Values, error) {
	if c.ClientID == "" || c.ClientSecret == "" {
		return nil, errors.New("client credentials: client id and secret are required")
	}
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.ClientID},
		"client_secret": {c.ClientSecret},
	}, nil
}

func (ClientCredentials) flow() string { return "client_credentials" }

// String keeps the secret out of logs and error messages that format the
// value with %v.
func (c ClientCredentials) String() string {
	return fmt.Sprintf("ClientCredentials{ClientID: %q, ClientSecret: [redacted]}", c.ClientID)
}

// LogValue keeps the secret out of slog output.
func (c ClientCredentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("flow", "client_credentials"), slog.String("client_id", c.ClientID))
}

// JWTBearer is the OAuth 2.0 JWT bearer flow: an RS256 assertion signed with
// the private key whose certificate is uploaded to the connected app. No
// secret is shared with Salesforce.
type JWTBearer struct {
	ClientID string // consumer key, the JWT "iss"
	Username string // integration user, the JWT "sub"
	// Audience is the JWT "aud": https://login.salesforce.com (production),
	// https://test.salesforce.com (sandbox) or an Experience Cloud site URL.
	Audience   string
	PrivateKey *rsa.PrivateKey
	// Lifetime of the assertion; Salesforce accepts at most 3 minutes, which
	// is the default.
	Lifetime time.Duration
}

func (j JWTBearer) tokenForm(now time.Time) (url.Values, error) {
	if j.ClientID == "" || j.Username == "" || j.Audience == "" || j.PrivateKey == nil {
		return nil, errors.New("jwt bearer: client id, username, audience and private key are required")
	}
	life := j.Lifetime
	if life <= 0 || life > 3*time.Minute {
		life = 3 * time.Minute
	}
	assertion, err := SignJWT(j.PrivateKey, map[string]any{
		"iss": j.ClientID,
		"sub": j.Username,
		"aud": j.Audience,
		"exp": now.Add(life).Unix(),
	})
	if err != nil {
		return nil, fmt.Errorf("jwt bearer: %w", err)
	}
	return url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"assertion":  {assertion},
	}, nil
}

func (JWTBearer) flow() string { return "jwt_bearer" }

func (j JWTBearer) String() string {
	return fmt.Sprintf("JWTBearer{ClientID: %q, Username: %q, Audience: %q, PrivateKey: [redacted]}", j.ClientID, j.Username, j.Audience)
}

// LogValue keeps the key out of slog output.
func (j JWTBearer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("flow", "jwt_bearer"), slog.String("client_id", j.ClientID), slog.String("username", j.Username))
}

// SignJWT returns a compact RS256 JWT over claims. Salesforce supports only
// RS256 (API.md §1.3), which the standard library covers in a few lines, so
// no JWT module is needed.
func SignJWT(key *rsa.PrivateKey, claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// ParseRSAPrivateKeyPEM reads a PKCS #1 or PKCS #8 RSA private key in PEM
// form (what `openssl genrsa` and `openssl genpkey` write).
func ParseRSAPrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse private key: no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("parse private key: neither PKCS #1 nor PKCS #8")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse private key: %T is not RSA", k)
	}
	return rk, nil
}

// token is one access token and the instance it is valid for.
type token struct {
	access      string
	instanceURL string
}

// refreshCall is one token request that concurrent callers share.
type refreshCall struct {
	done chan struct{}
	tok  *token
	err  error
}

// currentToken returns the cached token, or waits for the one refresh in
// flight, starting it if none is. The refresh runs detached from any single
// caller's context (with its own timeout) so that one caller giving up does
// not fail the others waiting on it; each caller still stops waiting when its
// own context ends.
func (c *Client) currentToken(ctx context.Context) (*token, error) {
	c.mu.Lock()
	if c.tok != nil {
		t := c.tok
		c.mu.Unlock()
		return t, nil
	}
	call := c.refreshing
	if call == nil {
		call = &refreshCall{done: make(chan struct{})}
		c.refreshing = call
		go c.refresh(context.WithoutCancel(ctx), call)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for access token: %w", ctx.Err())
	}
}

func (c *Client) refresh(ctx context.Context, call *refreshCall) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.TokenTimeout)
	defer cancel()
	tok, err := c.fetchToken(ctx)
	c.mu.Lock()
	if err == nil {
		c.tok = tok
	}
	c.refreshing = nil
	c.mu.Unlock()
	call.tok, call.err = tok, err
	close(call.done)
}

// invalidate drops the cached token only if it is still the one that failed:
// when several requests fail with the same expired token, the first one to
// get here clears it and the rest find either nothing or the new token,
// so exactly one refresh happens.
func (c *Client) invalidate(failed *token) {
	c.mu.Lock()
	if c.tok == failed {
		c.tok = nil
	}
	c.mu.Unlock()
}

// fetchToken asks the token endpoint for a new access token, retrying 5xx
// answers and transport errors with backoff; 4xx refusals are returned at
// once as *AuthError since the same request would fail again.
func (c *Client) fetchToken(ctx context.Context) (*token, error) {
	endpoint := c.opts.LoginURL + "/services/oauth2/token"
	for attempt := 1; ; attempt++ {
		tok, err := c.tokenOnce(ctx, endpoint)
		if err == nil {
			return tok, nil
		}
		if attempt >= c.opts.MaxAttempts || !retryableTokenError(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("get access token (%s): %w", c.opts.Credentials.flow(), err)
		}
		if werr := c.sleep(ctx, attempt); werr != nil {
			return nil, fmt.Errorf("get access token (%s): %w (last error: %v)", c.opts.Credentials.flow(), werr, err)
		}
	}
}

func retryableTokenError(err error) bool {
	var a *AuthError
	if errors.As(err, &a) {
		return a.HTTPStatus >= 500 || a.Code == "rate_limit_exceeded"
	}
	return true // transport error
}

func (c *Client) tokenOnce(ctx context.Context, endpoint string) (tok *token, err error) {
	start := time.Now()
	result := "ok"
	defer func() { c.observe("token", result, time.Since(start)) }()

	form, err := c.opts.Credentials.tokenForm(c.opts.Now())
	if err != nil {
		result = "config_error"
		return nil, &AuthError{Code: "invalid_request", Description: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		result = "config_error"
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		result = "transport_error"
		// *url.Error names only the URL; the form (with the secret or the
		// assertion) is never part of it.
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		result = "transport_error"
		return nil, fmt.Errorf("read token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(bytes.TrimSpace(body), &e) != nil || e.Error == "" {
			e.Error, e.Description = fmt.Sprintf("http_%d", resp.StatusCode), http.StatusText(resp.StatusCode)
		}
		result = e.Error
		return nil, &AuthError{HTTPStatus: resp.StatusCode, Code: e.Error, Description: e.Description}
	}
	var ok struct {
		AccessToken string `json:"access_token"`
		InstanceURL string `json:"instance_url"`
	}
	if err := json.Unmarshal(body, &ok); err != nil || ok.AccessToken == "" || ok.InstanceURL == "" {
		result = "bad_response"
		return nil, &AuthError{HTTPStatus: resp.StatusCode, Code: "bad_response", Description: "token response without access_token or instance_url"}
	}
	if _, err := url.Parse(ok.InstanceURL); err != nil {
		result = "bad_response"
		return nil, &AuthError{HTTPStatus: resp.StatusCode, Code: "bad_response", Description: "instance_url is not a URL"}
	}
	return &token{access: ok.AccessToken, instanceURL: strings.TrimRight(ok.InstanceURL, "/")}, nil
}
