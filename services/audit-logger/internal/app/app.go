// Package app wires the audit-logger: configuration, the database pool that
// works as the restricted writer role, the consumer of every event, the
// auditors' API, and the verify command. Tests run the real wiring through
// New and Run on a loopback port.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"takedown/pkg/auth"
	"takedown/pkg/config"
	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/service"
	"takedown/pkg/stream"
	"takedown/services/audit-logger/internal/auditlog"
	"takedown/services/audit-logger/internal/httpapi"
)

// Name and Schema of the service.
const (
	Name   = events.AuditLogger
	Schema = "audit"
)

// Config is the audit-logger's configuration (README.md).
type Config struct {
	Service service.Config
	// DBRole is the role every connection works as after the migrations
	// ran as the login user: it may read and append, never change.
	DBRole   string
	DevToken config.Secret
	OIDC     *auth.OIDCConfig // nil: no OIDC bearer tokens
	// Authn are further sign-in methods (OIDC when it comes; tests use it
	// for staff without the auditor role), tried before the dev token.
	Authn []auth.Authenticator
}

// LoadConfig reads the audit-logger's configuration from l.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Service:  service.LoadConfig(l, ":8082"),
		DBRole:   l.String("AUDIT_DB_ROLE", auditlog.DefaultWriterRole),
		DevToken: l.Secret("TAKEDOWN_DEV_TOKEN", config.Optional),
		OIDC:     auth.LoadOIDC(l, ""),
	}
	if !auditlog.ValidRole.MatchString(c.DBRole) {
		l.Fail("AUDIT_DB_ROLE", "%q is not a plain lower-case identifier", c.DBRole)
	}
	return c
}

// Consumer reads every event. One at a time, so entries follow the stream's
// order. An event must not fall out of the audit log because the database
// was away for a while: it is retried for hours, not minutes. Nor because it
// is refused (events.Check): a forged event is what an audit log is for, so
// it is logged, marked refused, where every other consumer drops it.
var Consumer = stream.ConsumerConfig{
	Durable:     Name,
	AckWait:     30 * time.Second,
	MaxDeliver:  200,
	BackOff:     []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, time.Minute},
	Concurrency: 1,
	// A batch's entries share the chain head's read and move too.
	Linger:      stream.OffPathLinger,
	KeepRefused: true,
}

// App is a running audit-logger.
type App struct {
	cfg     Config
	base    *service.Base
	handler chi.Router
	api     *httpapi.API
	entries *prometheus.CounterVec
	lastSeq prometheus.Gauge
}

// New applies the migrations as the login user, grants the writer role its
// privileges, reconnects as that role and builds the handlers.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	base, err := service.Open(ctx, Name, Schema, cfg.Service, log, auditlog.Migrations)
	if err != nil {
		return nil, err
	}
	owner := base.Pool
	if err := auditlog.GrantWriter(ctx, owner, Schema, cfg.DBRole); err != nil {
		base.Close()
		return nil, err
	}
	if ok, err := auditlog.CanAssume(ctx, owner, cfg.DBRole); err != nil {
		base.Close()
		return nil, fmt.Errorf("AUDIT_DB_ROLE %s: %w", cfg.DBRole, err)
	} else if !ok {
		base.Close()
		return nil, fmt.Errorf("AUDIT_DB_ROLE: the database user may not act as %s; GRANT %s TO <the user of DATABASE_URL>",
			cfg.DBRole, cfg.DBRole)
	}
	writer, err := database.OpenAs(ctx, cfg.Service.DatabaseURL.Reveal(), Schema, cfg.DBRole)
	if err != nil {
		base.Close()
		return nil, err
	}
	// From here on everything (consumer, outbox relay, API, readiness) works
	// as the writer role; the owner's connections are not kept.
	owner.Close()
	base.Pool = writer
	base.Ready("postgres", func(ctx context.Context) error { return writer.Ping(ctx) })

	a := &App{cfg: cfg, base: base,
		entries: base.Metrics.Counter("entries_total", "Entries appended to the audit log, by event type.", "type"),
		lastSeq: base.Metrics.Gauge("chain_last_seq", "Seq of the last entry of the audit chain: its length.").WithLabelValues(),
	}
	if seq, _, err := auditlog.Head(ctx, writer); err == nil {
		a.lastSeq.Set(float64(seq))
	}
	bearers, _, err := auth.Bearers(ctx, cfg.OIDC, cfg.DevToken)
	if err != nil {
		base.Close()
		return nil, err
	}
	authn := append(append([]auth.Authenticator(nil), cfg.Authn...), bearers...)
	if len(authn) == 0 {
		log.Warn("TAKEDOWN_DEV_TOKEN is not set and no other sign-in is configured: the audit API refuses everyone")
	}
	r := base.Router()
	a.api = httpapi.New(writer, base.Metrics, log)
	a.api.Routes(r, authn...)
	a.handler = r
	return a, nil
}

// Listen binds the configured address.
func (a *App) Listen() (net.Listener, error) { return a.base.Listen() }

// Run serves until ctx ends.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	return a.base.Run(ctx, ln, a.handler, a.base.Consume(Consumer, a.record), a.api.RecordDenials)
}

// Close releases the connections.
func (a *App) Close() { a.base.Close() }

// record appends a batch of events to the chain, in the consumer's
// transaction, each marked when the consumer refused it.
func (a *App) record(ctx context.Context, tx pgx.Tx, ms []stream.Message) error {
	recs := make([]auditlog.Record, len(ms))
	for i, m := range ms {
		recs[i] = auditlog.Record{Event: m.Envelope, StreamSeq: m.StreamSeq}
		if m.Refused != nil {
			recs[i].Refused = m.Refused.Reason + ": " + m.Refused.Detail
		}
	}
	added, err := auditlog.Append(ctx, tx, recs, time.Now())
	if err != nil {
		return err
	}
	// Counted before the commit: a failed commit retries the events and
	// counts them again, which a metric can bear and the log does not see.
	for _, e := range added {
		a.entries.WithLabelValues(e.Type).Inc()
		a.lastSeq.Set(float64(e.Seq))
	}
	return nil
}
