// Package app wires the retraction service: its consumer, the advisory
// watcher, the retraction worker with its sweep, and the staff endpoint.
// Tests run the real wiring through New and Run on a loopback port.
package app

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/go-chi/chi/v5"

	"takedown/pkg/auth"
	"takedown/pkg/config"
	"takedown/pkg/filing"
	"takedown/pkg/metrics"
	"takedown/pkg/ncmec"
	"takedown/pkg/service"
	"takedown/services/retraction/internal/httpapi"
	"takedown/services/retraction/internal/retract"
	"takedown/services/retraction/internal/store"
)

// Schema is the service's database schema.
const Schema = "retraction"

// Config is the retraction service's configuration (README: "retraction").
type Config struct {
	Service          service.Config
	NCMEC            ncmec.Environments
	DevToken         config.Secret
	OIDC             *auth.OIDCConfig // nil: no OIDC bearer tokens
	ReporterConsumer string
	Retract          retract.Config
	// Auth are further ways staff authenticate (OIDC), tried after the
	// development token.
	Auth []auth.Authenticator
}

// LoadConfig reads the configuration from l.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Service:          service.LoadConfig(l, ":8081"),
		NCMEC:            ncmec.LoadEnvironments(l),
		DevToken:         l.Secret("TAKEDOWN_DEV_TOKEN", config.Optional),
		OIDC:             auth.LoadOIDC(l, ""),
		ReporterConsumer: l.String("REPORTER_CONSUMER", "ncmec-reporter"),
		Retract: retract.Config{
			Poll:        l.Duration("RETRACTION_POLL_INTERVAL", time.Second),
			Lease:       l.Duration("RETRACTION_LEASE", 2*time.Minute),
			MinDelay:    l.Duration("RETRY_MIN_DELAY", time.Second),
			MaxDelay:    l.Duration("RETRY_MAX_DELAY", 2*time.Minute),
			GiveUpAfter: l.Duration("RETRACTION_GIVE_UP_AFTER", 6*time.Hour),
			StaleAfter:  l.Duration("STALE_AFTER", 50*time.Minute),
			Sweep:       l.Duration("SWEEP_INTERVAL", 5*time.Minute),
		},
	}
	return c
}

// App is a running retraction service.
type App struct {
	cfg     Config
	base    *service.Base
	r       *retract.Retractor
	handler chi.Router
}

// New connects the service's dependencies.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	base, err := service.Open(ctx, retract.Name, Schema, cfg.Service, log, store.Migrations)
	if err != nil {
		return nil, err
	}
	latency := base.Metrics.Histogram("ncmec_request_duration_seconds", "Latency of NCMEC calls, by endpoint and result.", "endpoint", "result")
	clients, err := cfg.NCMEC.Clients(metrics.Observer(latency))
	if err != nil {
		base.Close()
		return nil, err
	}
	bearers, _, err := auth.Bearers(ctx, cfg.OIDC, cfg.DevToken)
	if err != nil {
		base.Close()
		return nil, err
	}
	ho := filing.NewHandover(base.JS, filing.HandoverConfig{Replicas: cfg.Service.StreamReplicas})
	a := &App{cfg: cfg, base: base,
		r: retract.New(cfg.Retract, store.New(base.Pool), ho, clients, base.Metrics, log)}
	r := base.Router()
	r.Group(func(r chi.Router) {
		r.Use(auth.Require(auth.RoleRetractor, append(cfg.Auth, bearers...)...))
		httpapi.Routes(r, a.r)
	})
	a.handler = r
	return a, nil
}

// Listen binds the configured address.
func (a *App) Listen() (net.Listener, error) { return a.base.Listen() }

// Run serves until ctx ends.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	return a.base.Run(ctx, ln, a.handler, a.base.Consume(retract.Consumer, a.r.Apply), a.r.Run, func(ctx context.Context) error {
		return a.r.WatchAdvisories(ctx, a.base.JS, a.cfg.Service.StreamReplicas, a.cfg.ReporterConsumer)
	})
}

// Close releases the connections.
func (a *App) Close() { a.base.Close() }
