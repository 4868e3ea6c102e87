// Package sfsim is a Salesforce simulator for tests and the local stack: a
// real HTTP server reproducing the documented behaviour the takedown client
// relies on (API.md §7) — the OAuth token endpoint for client credentials
// and JWT bearer (real RS256 verification), the versions list, sObject
// create/read/update/delete, upsert by external id (201/200/300/404),
// describe, a small SOQL subset, /composite with allOrNone rollback and
// @{ref} references, Salesforce's validation errors and the
// Sforce-Limit-Info counter — with records held in memory.
//
// Failures are injected per endpoint (expired sessions, rate limits, row
// locks, 5xx, slow answers, dropped connections, answers lost after the
// commit) from Go with Server.Inject, or over HTTP at /_sim/faults when
// Config.Admin is set, as DESIGN.md §8 describes.
package sfsim

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"takedown/pkg/simfault"
)

// Config configures a simulator. ClientID is required; ClientSecret enables
// the client credentials flow and JWTPublicKey the JWT bearer flow.
type Config struct {
	ClientID     string
	ClientSecret string
	// JWTPublicKey verifies JWT bearer assertions (the connected app's
	// certificate key). JWTUsername, when set, is the only "sub" accepted.
	JWTPublicKey *rsa.PublicKey
	JWTUsername  string
	// JWTAudiences accepted in "aud"; by default login.salesforce.com,
	// test.salesforce.com and the simulator's own URL.
	JWTAudiences []string

	// Objects is the org's schema; DefaultSchema() when empty.
	Objects []ObjectSchema
	// InstanceURL is returned as instance_url; by default the scheme and
	// host the token request came to.
	InstanceURL string
	// APILimit is the daily allocation shown in Sforce-Limit-Info; calls
	// beyond it get REQUEST_LIMIT_EXCEEDED. Default 15000.
	APILimit int
	// Admin serves /_sim/faults and /_sim/state. Off by default: the
	// simulator of a shared stack must not be steerable by anyone.
	Admin bool
	// Now is the clock for JWT expiry and record dates; time.Now when nil.
	Now func() time.Time
}

// Server is the simulator; it is an http.Handler.
type Server struct {
	cfg Config
	mux *http.ServeMux
	url string // set by Start

	faults simfault.Set[Fault] // locks itself

	mu         sync.Mutex // guards everything below
	store      *store
	tokens     map[string]bool
	tokenCount int
	apiUsage   int
}

// New checks cfg and returns a simulator with an empty store.
func New(cfg Config) (*Server, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("sfsim: ClientID is required")
	}
	if cfg.ClientSecret == "" && cfg.JWTPublicKey == nil {
		return nil, errors.New("sfsim: set ClientSecret (client credentials) or JWTPublicKey (JWT bearer), or both")
	}
	if len(cfg.Objects) == 0 {
		cfg.Objects = DefaultSchema()
	}
	if err := validateSchema(cfg.Objects); err != nil {
		return nil, fmt.Errorf("sfsim: %w", err)
	}
	if cfg.APILimit <= 0 {
		cfg.APILimit = 15000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.InstanceURL = strings.TrimRight(cfg.InstanceURL, "/")
	s := &Server{cfg: cfg, store: newStore(cfg.Objects, cfg.Now), tokens: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /services/oauth2/token", s.handleToken)
	mux.HandleFunc("/services/data", s.handleData)
	mux.HandleFunc("/services/data/", s.handleData)
	if cfg.Admin {
		mux.HandleFunc("POST /_sim/faults", s.handleInject)
		mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Faults()) })
		mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
			s.ClearFaults()
			w.WriteHeader(http.StatusNoContent)
		})
		mux.HandleFunc("GET /_sim/state", s.handleState)
	}
	s.mux = mux
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// URL is the base URL of a simulator started with Start.
func (s *Server) URL() string { return s.url }

func (s *Server) instanceURL(r *http.Request) string {
	if s.cfg.InstanceURL != "" {
		return s.cfg.InstanceURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	lost := false
	if f := s.takeFault("token"); f != nil {
		switch f.Kind {
		case KindSlow:
			if !wait(r.Context(), f.DelayMS) {
				return
			}
		case KindDrop:
			drop(w)
			return
		case KindRateLimit:
			writeJSON(w, http.StatusBadRequest, oauthError{"rate_limit_exceeded", "rate limit exceeded"})
			return
		case KindHTTP:
			writeJSON(w, f.Status, oauthError{"server_error", http.StatusText(f.Status)})
			return
		case KindLostResponse:
			lost = true
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	if e := s.grant(r); e != nil {
		writeJSON(w, http.StatusBadRequest, e)
		return
	}
	body := s.issueToken(s.instanceURL(r))
	if lost {
		drop(w)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

const (
	minVersion = 31 // 21.0–30.0 are retired (410)
	maxVersion = 66 // Spring '26
)

var versionRE = regexp.MustCompile(`^v([0-9]+)\.([0-9]+)$`)

// checkVersion answers 404 for what is not a version Salesforce has served
// yet and 410 for a retired one.
func checkVersion(v string) (result, bool) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil || m[2] != "0" {
		return notFound(), false
	}
	major, _ := strconv.Atoi(m[1])
	if major > maxVersion || major < 20 {
		return notFound(), false
	}
	if major < minVersion {
		return errResult(http.StatusGone, apiError{ErrorCode: "GONE", Message: "This version of the REST API is retired: " + v}), false
	}
	return result{}, true
}

// versions is GET /services/data/: no authentication, no limit header.
func versions() []map[string]string {
	seasons := []string{"Spring", "Summer", "Winter"}
	var out []map[string]string
	for v := minVersion; v <= maxVersion; v++ {
		// v60.0 was Spring '24; three releases a year, Winter named after
		// the following year.
		k := v - 60
		season := seasons[((k%3)+3)%3]
		year := 24 + floorDiv(k+1, 3)
		out = append(out, map[string]string{
			"label":   fmt.Sprintf("%s '%02d", season, year),
			"url":     fmt.Sprintf("/services/data/v%d.0", v),
			"version": fmt.Sprintf("%d.0", v),
		})
	}
	return out
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// splitPath splits "/v64.0/sobjects/Case/x%2Fy" into unescaped segments.
func splitPath(p string) ([]string, bool) {
	p = strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/")
	if p == "" {
		return nil, true
	}
	raw := strings.Split(p, "/")
	segs := make([]string, len(raw))
	for i, r := range raw {
		seg, err := url.PathUnescape(r)
		if err != nil || seg == "" {
			return nil, false
		}
		segs[i] = seg
	}
	return segs, true
}

func (s *Server) handleData(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/services/data")
	if rest == "" || rest == "/" {
		if r.Method != http.MethodGet {
			writeResult(w, methodNotAllowed(r.Method, "GET"))
			return
		}
		writeJSON(w, http.StatusOK, versions())
		return
	}
	segs, ok := splitPath(rest)
	if !ok {
		writeResult(w, notFound())
		return
	}
	if res, ok := checkVersion(segs[0]); !ok {
		writeResult(w, res)
		return
	}
	if !s.authorized(r) {
		writeResult(w, errResult(http.StatusUnauthorized, apiError{ErrorCode: "INVALID_SESSION_ID", Message: "Session expired or invalid"}))
		return
	}
	env := &execEnv{version: segs[0]}
	endpoint := endpointOf(r.Method, segs[1:])
	lost := false
	if f := s.takeFault(endpoint); f != nil {
		switch f.Kind {
		case KindExpireToken:
			s.ExpireTokens()
			writeResult(w, errResult(http.StatusUnauthorized, apiError{ErrorCode: "INVALID_SESSION_ID", Message: "Session expired or invalid"}))
			return
		case KindRateLimit:
			s.limitHeader(w, s.APIUsage())
			writeResult(w, errResult(http.StatusForbidden, apiError{ErrorCode: "REQUEST_LIMIT_EXCEEDED", Message: "TotalRequests Limit exceeded."}))
			return
		case KindLock:
			if endpoint != "composite" {
				s.limitHeader(w, s.APIUsage())
				writeResult(w, errResult(http.StatusBadRequest, lockError))
				return
			}
			env.lockNext = true // the composite's first write fails; the rest roll back
		case KindHTTP:
			writeResult(w, errResult(f.Status, apiError{ErrorCode: codeForStatus(f.Status), Message: http.StatusText(f.Status)}))
			return
		case KindSlow:
			if !wait(r.Context(), f.DelayMS) {
				return
			}
		case KindDrop:
			drop(w)
			return
		case KindLostResponse:
			lost = true
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return // the client went away
	}
	s.mu.Lock()
	s.apiUsage++
	usage := s.apiUsage
	var res result
	if usage > s.cfg.APILimit {
		res = errResult(http.StatusForbidden, apiError{ErrorCode: "REQUEST_LIMIT_EXCEEDED", Message: "TotalRequests Limit exceeded."})
	} else {
		res = s.exec(env, r.Method, segs[1:], r.URL.Query(), body)
	}
	s.mu.Unlock()
	if lost {
		drop(w)
		return
	}
	s.limitHeader(w, usage)
	writeResult(w, res)
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "SERVER_UNAVAILABLE"
	case http.StatusInternalServerError:
		return "UNKNOWN_EXCEPTION"
	}
	return "HTTP_" + strconv.Itoa(status)
}

func (s *Server) limitHeader(w http.ResponseWriter, usage int) {
	w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", usage, s.cfg.APILimit))
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(r.Header.Get("Authorization"), "OAuth ")
	}
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[tok]
}

// wait sleeps for a slow fault; false when the client gave up first.
func wait(ctx context.Context, ms int) bool {
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// drop closes the connection without an answer. Over HTTP/2 a handler cannot
// do that without panicking, so there the client gets a 502 instead; the
// simulator serves HTTP/1.1.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	_ = conn.Close()
}

func writeResult(w http.ResponseWriter, res result) {
	for k, v := range res.headers {
		w.Header().Set(k, v)
	}
	if res.body == nil {
		w.WriteHeader(res.status)
		return
	}
	writeJSON(w, res.status, res.body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`[{"errorCode":"UNKNOWN_EXCEPTION","message":"encode response"}]`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Admin API (DESIGN.md §8).

func adminError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Server) handleInject(w http.ResponseWriter, r *http.Request) {
	var f Fault
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		adminError(w, http.StatusBadRequest, "invalid_json", err.Error())
		return
	}
	f, err := s.Inject(f)
	if err != nil {
		adminError(w, http.StatusBadRequest, "invalid_fault", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

// State is the simulator's state as GET /_sim/state shows it.
type State struct {
	Records      map[string][]Record `json:"records"`
	TokenCount   int                 `json:"token_count"`
	ActiveTokens int                 `json:"active_tokens"`
	APIUsage     int                 `json:"api_usage"`
	APILimit     int                 `json:"api_limit"`
	Faults       []Fault             `json:"faults"`
}

// State returns a copy of the whole state.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Records: map[string][]Record{}, TokenCount: s.tokenCount, ActiveTokens: len(s.tokens),
		APIUsage: s.apiUsage, APILimit: s.cfg.APILimit, Faults: s.Faults()}
	for _, o := range s.store.order {
		st.Records[o.schema.Name] = cloneRecords(o.sorted())
	}
	return st
}

func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.State())
}

func cloneRecords(rs []Record) []Record {
	out := make([]Record, len(rs))
	for i, r := range rs {
		out[i] = maps.Clone(r)
	}
	return out
}

// Go API for tests.

// Records returns copies of the object's records, oldest first.
func (s *Server) Records(object string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.store.object(object)
	if o == nil {
		return nil
	}
	return cloneRecords(o.sorted())
}

// Record returns a copy of one record by its 15- or 18-character id.
func (s *Server) Record(object, id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.store.object(object)
	if o == nil {
		return nil, false
	}
	r, ok := o.records[canonicalID(id)]
	return maps.Clone(r), ok
}

// Writes is how many committed creates and updates the record with this
// 15- or 18-character id has had, as its field history would show: every
// upsert counts, whether or not it changed a value; writes a composite
// rolled back do not.
func (s *Server) Writes(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.writes[canonicalID(id)]
}

// Create stores a record through the same validation as the REST API, e.g.
// to seed duplicates for a 300 test. fields are JSON-like values.
func (s *Server) Create(object string, fields map[string]any) (string, error) {
	b, err := json.Marshal(fields)
	if err != nil {
		return "", fmt.Errorf("sfsim: create %s: %w", object, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.store.object(object)
	if o == nil {
		return "", fmt.Errorf("sfsim: create %s: no such object", object)
	}
	res := s.create(&execEnv{version: fmt.Sprintf("v%d.0", maxVersion)}, o, b)
	body, _ := res.body.(map[string]any)
	id, _ := body["id"].(string)
	if res.status != http.StatusCreated || id == "" {
		return "", fmt.Errorf("sfsim: create %s: %v", object, res.body)
	}
	return id, nil
}

// TokenCount is the number of access tokens issued so far.
func (s *Server) TokenCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCount
}

// APIUsage is the number of API calls counted in Sforce-Limit-Info.
func (s *Server) APIUsage() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiUsage
}

// ExpireTokens revokes every access token, as a session timeout would.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	clear(s.tokens)
	s.mu.Unlock()
}
