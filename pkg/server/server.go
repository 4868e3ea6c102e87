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
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"takedown/pkg/fault"
	"takedown/pkg/logging"
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
// and /metrics to r. /readyz names each failing check but keeps its error
// in the log: the error text of a dependency may carry addresses, user
// names or a database's own words, and /readyz answers anyone.
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
				logging.FromContext(r.Context()).Warn("not ready", "check", name, logging.KeyErr, err)
				status, out[name] = http.StatusServiceUnavailable, "unavailable"
			} else {
				out[name] = "ok"
			}
		}
		WriteJSON(w, status, out)
	})
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// APIPolicy is the Content-Security-Policy of every answer that is not a
// page: nothing may load, run or frame. Intake's pages set their own.
const APIPolicy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// SecurityHeaders sets the headers every answer of every service carries,
// chi's own 404 and 405 included (it is the router's outermost
// middleware): a policy that loads and frames nothing, no content
// sniffing, no referrer to other sites, nothing kept in caches (answers
// name reports and staff), and with hsts Strict-Transport-Security, for a
// service that staff reach over https only.
func SecurityHeaders(hsts bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", APIPolicy)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "same-origin")
			h.Set("Cache-Control", "no-store")
			if hsts {
				// A year, for this host only: other hosts of the
				// organisation's domain are not ours to pin.
				h.Set("Strict-Transport-Security", "max-age=31536000")
			}
			next.ServeHTTP(w, r)
		})
	}
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

// CodeName is e's code (as fault.Error's), for a caller that counts
// failures by their code.
func (e *APIError) CodeName() string { return e.Code }

// Errorf returns an APIError for status with a formatted message.
func Errorf(status int, code, field, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// statusOf is the HTTP status of each kind of failure (pkg/fault).
var statusOf = map[fault.Kind]int{
	fault.Internal:     http.StatusInternalServerError,
	fault.Invalid:      http.StatusBadRequest,
	fault.NotFound:     http.StatusNotFound,
	fault.Conflict:     http.StatusConflict,
	fault.Finished:     http.StatusConflict,
	fault.SecondPerson: http.StatusForbidden,
	fault.Forbidden:    http.StatusForbidden,
	fault.TooLarge:     http.StatusRequestEntityTooLarge,
	fault.Unsupported:  http.StatusUnsupportedMediaType,
	fault.TooSlow:      http.StatusRequestTimeout,
	fault.Unavailable:  http.StatusServiceUnavailable,
}

// errInternal answers a failure that is ours.
var errInternal = &APIError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; the details are in the service's log"}

// AsAPIError is the answer to err: an *APIError as it is, a *fault.Error
// as its kind's status with its code, field and message; false for
// anything else (and for fault.Internal), whose details stay in the log.
func AsAPIError(err error) (*APIError, bool) {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae, true
	}
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind == fault.Internal {
		return nil, false
	}
	status, ok := statusOf[fe.Kind]
	if !ok {
		return nil, false
	}
	return &APIError{Status: status, Code: fe.CodeName(), Message: fe.Message, Field: fe.Field}, true
}

// WriteError answers with err (AsAPIError); anything that is no client's
// mistake as a 500 whose details stay in the log, not in the answer. A
// fault with RetryAfter says so in the Retry-After header.
func WriteError(w http.ResponseWriter, err error) {
	ae, ok := AsAPIError(err)
	if !ok {
		ae = errInternal
	}
	SetRetryAfter(w, err)
	WriteJSON(w, ae.Status, map[string]*APIError{"error": ae})
}

// SetRetryAfter sets the Retry-After header when err is a fault with
// RetryAfter: how soon trying again may succeed, in whole seconds (at
// least 1).
func SetRetryAfter(w http.ResponseWriter, err error) {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(fe.RetryAfter.Seconds()))))
	}
}
