package sfsim

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	orgID  = "00D000000000001AAA"
	userID = "005000000000001AAA"
	// maxAssertionLife is how far ahead a JWT's exp may be (API.md §1.3).
	maxAssertionLife = 3 * time.Minute
)

// oauthError is the token endpoint's error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// ParsePublicKeyPEM reads the key the JWT bearer flow verifies assertions
// with: a certificate (what an admin uploads to the connected app), a PKIX
// public key or a PKCS #1 RSA public key, in PEM form.
func ParsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse public key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			key = cert.PublicKey
		}
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("parse public key: unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	rk, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse public key: %T is not RSA", key)
	}
	return rk, nil
}

// grant checks a token request and returns the error to answer with, or
// nil when a token may be issued.
func (s *Server) grant(r *http.Request) *oauthError {
	if err := r.ParseForm(); err != nil {
		return &oauthError{"invalid_request", "invalid form body"}
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "client_credentials":
		id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if u, p, ok := r.BasicAuth(); ok {
			id, secret = u, p
		}
		if s.cfg.ClientID == "" || s.cfg.ClientSecret == "" {
			return &oauthError{"invalid_grant", "client credentials flow is not enabled for this client"}
		}
		if id != s.cfg.ClientID {
			return &oauthError{"invalid_client_id", "client identifier invalid"}
		}
		if subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.ClientSecret)) != 1 {
			return &oauthError{"invalid_client", "invalid client credentials"}
		}
		return nil
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		return s.checkAssertion(r.PostForm.Get("assertion"), s.instanceURL(r))
	case "":
		return &oauthError{"invalid_request", "grant type not specified"}
	default:
		return &oauthError{"unsupported_grant_type", "grant type not supported"}
	}
}

// checkAssertion verifies a JWT bearer assertion: RS256 signature against
// the configured public key, then iss, aud, sub and exp.
func (s *Server) checkAssertion(assertion, instance string) *oauthError {
	invalid := &oauthError{"invalid_grant", "invalid assertion"}
	if s.cfg.JWTPublicKey == nil {
		return &oauthError{"invalid_grant", "jwt bearer flow is not enabled for this client"}
	}
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return invalid
	}
	enc := base64.RawURLEncoding
	hb, err1 := enc.DecodeString(parts[0])
	cb, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return invalid
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hb, &header) != nil || header.Alg != "RS256" {
		// Only RS256 is accepted; in particular never "none" or HS256.
		return &oauthError{"invalid_grant", "invalid assertion: algorithm must be RS256"}
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(s.cfg.JWTPublicKey, crypto.SHA256, sum[:], sig) != nil {
		return &oauthError{"invalid_grant", "invalid assertion: signature does not verify"}
	}
	dec := json.NewDecoder(bytes.NewReader(cb))
	dec.UseNumber()
	var claims map[string]any
	if dec.Decode(&claims) != nil {
		return invalid
	}
	if iss, _ := claims["iss"].(string); iss == "" || iss != s.cfg.ClientID {
		return &oauthError{"invalid_client_id", "client identifier invalid"}
	}
	if !audienceOK(claims["aud"], s.audiences(instance)) {
		return &oauthError{"invalid_grant", "audience is invalid"}
	}
	sub, _ := claims["sub"].(string)
	if prn, ok := claims["prn"].(string); ok && prn != "" {
		sub = prn // legacy alias, wins when both are present
	}
	if sub == "" || (s.cfg.JWTUsername != "" && sub != s.cfg.JWTUsername) {
		return &oauthError{"invalid_grant", "user hasn't approved this consumer"}
	}
	expN, ok := claims["exp"].(json.Number)
	if !ok {
		return &oauthError{"invalid_grant", "invalid assertion: exp is required"}
	}
	expI, err := expN.Int64()
	if err != nil {
		return invalid
	}
	now := s.cfg.Now()
	exp := time.Unix(expI, 0)
	if !exp.After(now) {
		return &oauthError{"invalid_grant", "invalid assertion: expired"}
	}
	if exp.Sub(now) > maxAssertionLife+time.Second {
		return &oauthError{"invalid_grant", "invalid assertion: exp must be within 3 minutes"}
	}
	return nil
}

func (s *Server) audiences(instance string) []string {
	if len(s.cfg.JWTAudiences) > 0 {
		return s.cfg.JWTAudiences
	}
	return []string{"https://login.salesforce.com", "https://test.salesforce.com", instance}
}

func audienceOK(aud any, allowed []string) bool {
	switch a := aud.(type) {
	case string:
		return slices.Contains(allowed, strings.TrimRight(a, "/"))
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && slices.Contains(allowed, strings.TrimRight(s, "/")) {
				return true
			}
		}
	}
	return false
}

// issueToken creates an access token and the success body (API.md §1.2:
// no expires_in, issued_at in milliseconds, HMAC signature).
func (s *Server) issueToken(instance string) map[string]string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	tok := orgID[:15] + "!" + base64.RawURLEncoding.EncodeToString(b[:])
	issuedAt := strconv.FormatInt(s.cfg.Now().UnixMilli(), 10)
	id := instance + "/id/" + orgID + "/" + userID

	s.mu.Lock()
	s.tokens[tok] = true
	s.tokenCount++
	s.mu.Unlock()

	mac := hmac.New(sha256.New, []byte(s.cfg.ClientSecret+"sfsim"))
	mac.Write([]byte(id + issuedAt))
	return map[string]string{
		"access_token": tok,
		"signature":    base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		"scope":        "api",
		"instance_url": instance,
		"id":           id,
		"token_type":   "Bearer",
		"issued_at":    issuedAt,
	}
}
