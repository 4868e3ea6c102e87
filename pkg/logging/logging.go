// Package logging sets up log/slog for the services: JSON lines with stable
// keys, the logger carried in the context so that a line about a report
// always names it.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// Stable keys used across services, so that one query finds a report, an
// event or an error in every service's lines.
const (
	KeyService   = "service"
	KeyReportID  = "report_id"
	KeyEventID   = "event_id"
	KeyStreamSeq = "stream_seq"
	KeyErr       = "err"

	KeyFiling        = "filing"      // a report's filing number
	KeyEnvironment   = "environment" // NCMEC's: production or test
	KeyNCMECReportID = "ncmec_report_id"
	KeyNCMECFileID   = "ncmec_file_id"
	KeyFileID        = "file_id"
	KeyStep          = "step" // an NCMEC step: submit, upload, fileinfo, finish
	KeyCode          = "code" // an NCMEC response code
	KeyRequestID     = "request_id"
	KeyAttempt       = "attempt"
	KeyOutcome       = "outcome"
	KeyCause         = "cause"
	KeyRetryIn       = "retry_in"
	KeySubject       = "subject"  // a NATS subject
	KeyConsumer      = "consumer" // a JetStream consumer
	KeyInstance      = "instance" // a replica's instance id
)

// New returns a JSON logger writing to w at level ("debug", "info", "warn",
// "error"; anything else is info) with the service name on every line.
func New(w io.Writer, service, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With(KeyService, service)
}

type ctxKey struct{}

// WithLogger returns ctx carrying l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// FromContext returns the context's logger, or slog.Default.
func FromContext(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// With narrows the context's logger with args and returns both.
func With(ctx context.Context, args ...any) (context.Context, *slog.Logger) {
	l := FromContext(ctx).With(args...)
	return WithLogger(ctx, l), l
}
