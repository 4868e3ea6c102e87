package ncmecsim

import (
	"net/http/httptest"
	"testing"
)

// Credentials StartTest uses when Options leaves them empty.
const (
	TestUsername = "esp-test"
	TestPassword = "esp-test-password"
)

// StartTest runs a simulator on a local httptest server for the life of tb
// and returns it with the base URL a client uses (ending in /ispws).
func StartTest(tb testing.TB, opts Options) (*Server, string) {
	tb.Helper()
	if opts.Username == "" {
		opts.Username = TestUsername
	}
	if opts.Password == "" {
		opts.Password = TestPassword
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatalf("ncmecsim: %v", err)
	}
	ts := httptest.NewServer(s)
	tb.Cleanup(ts.Close)
	tb.Cleanup(s.Close) // runs first: releases slow requests so Close does not wait
	return s, ts.URL + BasePath
}
