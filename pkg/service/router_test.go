package service

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"takedown/pkg/metrics"
	"takedown/pkg/server"
	"takedown/pkg/testenv"
)

// routerOf is a service's router without its dependencies: every service's
// HTTP answers come through Base.Router.
func routerOf(t *testing.T, cfg Config, checks map[string]func(context.Context) error) *httptest.Server {
	b := &Base{Name: "test", Log: testenv.Logger(t), Metrics: metrics.New("test"), cfg: cfg, checks: map[string]server.Check{}}
	for name, c := range checks {
		b.checks[name] = c
	}
	r := b.Router()
	r.Get("/api/thing", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") })
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// TestEveryAnswerCarriesTheSecurityHeaders: a route's answer, chi's 404 and
// 405 and the operational endpoints all carry the policy, nosniff and
// no-store; HSTS only when the service is reached over https.
func TestEveryAnswerCarriesTheSecurityHeaders(t *testing.T) {
	for _, hsts := range []bool{false, true} {
		srv := routerOf(t, Config{HSTS: hsts}, nil)
		for _, tc := range []struct {
			method, path string
			status       int
		}{
			{"GET", "/api/thing", 200},
			{"GET", "/no/such/page", 404},
			{"DELETE", "/api/thing", 405},
			{"POST", "/healthz", 405},
			{"GET", "/healthz", 200},
			{"GET", "/readyz", 200},
			{"GET", "/metrics", 200},
		} {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			}
			h := resp.Header
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("%s %s: Content-Security-Policy %q", tc.method, tc.path, csp)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s: X-Content-Type-Options %q, Cache-Control %q", tc.method, tc.path, h.Get("X-Content-Type-Options"), h.Get("Cache-Control"))
			}
			if got := h.Get("Strict-Transport-Security"); (got != "") != hsts {
				t.Errorf("%s %s with HSTS %v: Strict-Transport-Security %q", tc.method, tc.path, hsts, got)
			}
		}
	}
}

// TestReadyzNamesTheCheckButNotItsError: /readyz answers anyone; a
// dependency's error text (addresses, user names) stays in the log.
func TestReadyzNamesTheCheckButNotItsError(t *testing.T) {
	srv := routerOf(t, Config{}, map[string]func(context.Context) error{
		"postgres": func(context.Context) error {
			return errors.New(`failed to connect to user=takedown_writer host=10.1.2.3: password authentication failed`)
		},
		"nats": func(context.Context) error { return nil },
	})
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a failing check: %d", resp.StatusCode)
	}
	if body := string(b); strings.Contains(body, "10.1.2.3") || strings.Contains(body, "takedown_writer") || strings.Contains(body, "password") ||
		!strings.Contains(body, `"postgres":"unavailable"`) || !strings.Contains(body, `"nats":"ok"`) {
		t.Errorf("/readyz answered %s", body)
	}
}
