package sfsim

import (
	"net/http/httptest"
	"testing"
)

// Start runs a simulator on a local port for the test's lifetime; its base
// URL is s.URL(), which is also the LoginURL and instance_url to use.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("start salesforce simulator: %v", err)
	}
	ts := httptest.NewServer(s)
	tb.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}
