// Package server serves a service's HTTP handler with timeouts and graceful
// shutdown, the operational endpoints every service has (/healthz, /readyz,
// /metrics), and the JSON error shape of the API (DESIGN.md §8).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Serve serves h on ln until ctx ends, then stops taking requests and waits
// up to grace for the ones in flight.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout or WriteTimeout: evidence uploads of several GiB
		// take as long as they take; IdleTimeout and the header timeout
		// bound idle and slow-header clients.
		IdleTimeout: 2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Check is one readiness check: nil when the dependency answers.
type Check func(ctx context.Context) error

// MountOps adds /healthz (the process is up), /readyz (every check passes)
// and /metrics to r.
func MountOps(r chi.Router, reg *prometheus.Registry, checks map[string]Check) {
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		status, out := http.StatusOK, map[string]string{}
		for name, check := range checks {
			if err := check(ctx); err != nil {
				status, out[name] = http.StatusServiceUnavailable, err.Error()
			} else {
				out[name] = "ok"
			}
		}
		WriteJSON(w, status, out)
	})
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// APIError is the body of every error answer: {"error": {...}}.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *APIError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an APIError for status with a formatted message.
func Errorf(status int, code, field, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// WriteError answers with err: an *APIError as it is, anything else as a 500
// whose details stay in the log, not in the answer.
func WriteError(w http.ResponseWriter, err error) {
	var ae *APIError
	if !errors.As(err, &ae) {
		ae = &APIError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; the details are in the service's log"}
	}
	WriteJSON(w, ae.Status, map[string]*APIError{"error": ae})
}
