package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Hydra is a real OpenID Connect provider for one test: Ory Hydra (v2,
// in-memory store) run as a child process, with an OAuth2 client for the
// service under test and a login-and-consent app served by the test that
// signs in whoever QueueUser queued, with the name, email and roles claims
// in their ID token.
type Hydra struct {
	Issuer       string // as the provider's discovery document names itself
	ClientID     string
	ClientSecret string

	admin string // base URL of the admin API
	http  *http.Client

	mu        sync.Mutex
	redirects []string
	queue     []HydraUser
	users     map[string]HydraUser // by subject, from login to consent
	refuse    bool                 // refuse the next consent
	nextSub   int
}

// HydraUser is a staff member the test's login app signs in.
type HydraUser struct {
	Subject string
	Name    string
	Email   string
	Roles   []string
}

// StartHydra starts a provider for the test, with one client whose
// callbacks are redirectURLs (AllowRedirect adds one known only later),
// and stops it when the test ends. The binary is
// found through $HYDRA, <repo>/bin/hydra (make tools) or $PATH; without it
// the test is skipped, or fails where $CI is set.
func StartHydra(tb testing.TB, redirectURLs ...string) *Hydra {
	tb.Helper()
	bin, ok := toolPath(tb, "hydra", "HYDRA")
	if !ok {
		msg := "testenv: the OpenID Connect provider hydra is not installed: run `make tools` in the repository root (builds bin/hydra), or set $HYDRA to its path"
		if os.Getenv("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	h := &Hydra{http: &http.Client{Timeout: 10 * time.Second}, users: map[string]HydraUser{}}
	app := httptest.NewServer(h.loginApp())
	tb.Cleanup(app.Close)

	public, err := freeLoopbackAddr()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	admin, err := freeLoopbackAddr()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	h.admin = "http://" + admin
	cfg := filepath.Join(tb.TempDir(), "hydra.json")
	if err := writeHydraConfig(cfg, public, admin, app.URL); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	// --dev lets the issuer be plain HTTP on loopback; SQA_OPT_OUT keeps
	// Hydra from reporting usage to Ory.
	p, err := startChild(bin, []string{"serve", "all", "--dev", "--config", cfg}, []string{"SQA_OPT_OUT=true"})
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(p.stop)
	if err := h.waitReady(p, 60*time.Second); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	if err := h.discover("http://" + public); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	if err := h.createClient(redirectURLs); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return h
}

func writeHydraConfig(path, public, admin, loginApp string) error {
	host := func(addr string) map[string]any {
		h, port, _ := net.SplitHostPort(addr)
		var n int
		fmt.Sscan(port, &n)
		return map[string]any{"host": h, "port": n}
	}
	cfg := map[string]any{
		"dsn": "memory",
		"log": map[string]any{"level": "warn"},
		"serve": map[string]any{
			"public": host(public),
			"admin":  host(admin),
		},
		"urls": map[string]any{
			"self":    map[string]any{"issuer": "http://" + public + "/"},
			"login":   loginApp + "/login",
			"consent": loginApp + "/consent",
		},
		"secrets": map[string]any{"system": []string{s3RandomHex(16)}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// QueueUser queues the staff member the next sign-in signs in, and returns
// their subject: a fresh id, unlike their name or e-mail.
func (h *Hydra) QueueUser(name, email string, roles ...string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextSub++
	u := HydraUser{Subject: fmt.Sprintf("hydra-user-%d-%s", h.nextSub, s3RandomHex(4)), Name: name, Email: email, Roles: roles}
	h.queue = append(h.queue, u)
	return u.Subject
}

// RefuseConsent makes the next consent be refused (access_denied), as when
// the staff member declines or the provider's policy forbids the client.
func (h *Hydra) RefuseConsent() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refuse = true
}

// loginApp is the login and consent app Hydra sends the browser to: it asks
// nothing and accepts the queued user.
func (h *Hydra) loginApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		challenge := r.URL.Query().Get("login_challenge")
		h.mu.Lock()
		if len(h.queue) == 0 {
			h.mu.Unlock()
			http.Error(w, "testenv: no user queued for this sign-in (Hydra.QueueUser)", http.StatusInternalServerError)
			return
		}
		u := h.queue[0]
		h.queue = h.queue[1:]
		h.users[u.Subject] = u
		h.mu.Unlock()
		h.answer(w, r, "login/accept?login_challenge="+url.QueryEscape(challenge), map[string]any{"subject": u.Subject})
	})
	mux.HandleFunc("GET /consent", func(w http.ResponseWriter, r *http.Request) {
		challenge := url.QueryEscape(r.URL.Query().Get("consent_challenge"))
		var req struct {
			Subject        string   `json:"subject"`
			RequestedScope []string `json:"requested_scope"`
			RequestedAud   []string `json:"requested_access_token_audience"`
		}
		if err := h.call(r.Context(), http.MethodGet, "consent?consent_challenge="+challenge, nil, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		h.mu.Lock()
		u, refuse := h.users[req.Subject], h.refuse
		h.refuse = false
		h.mu.Unlock()
		if refuse {
			h.answer(w, r, "consent/reject?consent_challenge="+challenge, map[string]any{
				"error": "access_denied", "error_description": "the test refused consent",
			})
			return
		}
		roles := u.Roles
		if roles == nil {
			roles = []string{}
		}
		h.answer(w, r, "consent/accept?consent_challenge="+challenge, map[string]any{
			"grant_scope":                 req.RequestedScope,
			"grant_access_token_audience": req.RequestedAud,
			"session": map[string]any{"id_token": map[string]any{
				"name": u.Name, "email": u.Email, "roles": roles,
			}},
		})
	})
	return mux
}

// answer accepts or rejects a login or consent request and sends the
// browser on to where Hydra says.
func (h *Hydra) answer(w http.ResponseWriter, r *http.Request, path string, body any) {
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := h.call(r.Context(), http.MethodPut, path, body, &out); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, out.RedirectTo, http.StatusFound)
}

// call calls the admin API's login-and-consent flow endpoint path.
func (h *Hydra) call(ctx context.Context, method, path string, in, out any) error {
	return h.adminJSON(ctx, method, "/admin/oauth2/auth/requests/"+path, in, out)
}

func (h *Hydra) adminJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.admin+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.http.Do(req)
	if err != nil {
		return fmt.Errorf("hydra %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hydra %s %s: %s: %s", method, path, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("hydra %s %s: %w", method, path, err)
	}
	return nil
}

// waitReady polls the admin API's readiness until it answers 200, the
// process exits, or the deadline passes.
func (h *Hydra) waitReady(p *childProcess, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := h.http.Get(h.admin + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readiness %s", resp.Status)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("hydra exited before serving (%v); output:\n%s", p.err, p.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hydra not ready after %v (%v); output:\n%s", timeout, err, p.out)
		}
	}
}

// discover reads the issuer as the provider names it in discovery: OIDC
// clients compare the two exactly.
func (h *Hydra) discover(public string) error {
	resp, err := h.http.Get(public + "/.well-known/openid-configuration")
	if err != nil {
		return fmt.Errorf("hydra discovery: %w", err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Issuer == "" {
		return fmt.Errorf("hydra discovery: %s, %v", resp.Status, err)
	}
	h.Issuer = doc.Issuer
	return nil
}

func (h *Hydra) createClient(redirectURLs []string) error {
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	err := h.adminJSON(context.Background(), http.MethodPost, "/admin/clients", map[string]any{
		"client_name":                "takedown test",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code", "id_token"},
		"scope":                      "openid profile email",
		"redirect_uris":              append([]string{}, redirectURLs...),
		"token_endpoint_auth_method": "client_secret_basic",
	}, &out)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	h.ClientID, h.ClientSecret = out.ClientID, out.ClientSecret
	h.redirects = redirectURLs
	return nil
}

// AllowRedirect adds a callback to the client: for a service whose address
// is known only after it started (and discovered the provider).
func (h *Hydra) AllowRedirect(tb testing.TB, redirectURL string) {
	tb.Helper()
	h.mu.Lock()
	h.redirects = append(h.redirects, redirectURL)
	patch := []map[string]any{{"op": "add", "path": "/redirect_uris", "value": h.redirects}}
	h.mu.Unlock()
	var out map[string]any
	if err := h.adminJSON(context.Background(), http.MethodPatch, "/admin/clients/"+url.PathEscape(h.ClientID), patch, &out); err != nil {
		tb.Fatalf("testenv: allow redirect %s: %v", redirectURL, err)
	}
}
