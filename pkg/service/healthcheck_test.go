package service_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"takedown/pkg/service"
)

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	// A wildcard or empty host, as LISTEN_ADDR=":8080" in a container, means this machine.
	for _, addr := range []string{":" + port, "0.0.0.0:" + port, "127.0.0.1:" + port} {
		if err := service.Healthcheck(addr); err != nil {
			t.Errorf("Healthcheck(%q) = %v, want nil", addr, err)
		}
	}
	status = http.StatusServiceUnavailable
	if err := service.Healthcheck(":" + port); err == nil {
		t.Error("Healthcheck passed on a 503")
	}
	if err := service.Healthcheck(""); err == nil {
		t.Error("Healthcheck passed without LISTEN_ADDR")
	}
}
