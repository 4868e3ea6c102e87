// Package app wires the intake service: configuration, dependencies, the
// HTTP API, the progress consumer and the orphan sweeper. Tests run the real
// wiring through New and Run on a loopback port.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"takedown/pkg/auth"
	"takedown/pkg/config"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/keyring"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/pkg/service"
	"takedown/services/intake/internal/httpapi"
	"takedown/services/intake/internal/lifecycle"
	"takedown/services/intake/internal/progress"
	"takedown/services/intake/internal/reports"
	"takedown/services/intake/internal/store"
	"takedown/services/intake/internal/web"
)

// Name and Schema of the service.
const (
	Name   = events.Intake
	Schema = "intake"
)

// Config is intake's configuration (README: "intake").
type Config struct {
	Service      service.Config
	S3           evidence.Config
	CreateBucket bool
	MasterKeys   config.Secret
	MasterKeyID  string
	DevToken     config.Secret
	// DevToken2 is a second development token, another staff member with
	// every role, to play the second person of the legal gate locally.
	DevToken2 config.Secret
	// HoldForLegal holds every submitted report for a second person's legal
	// decision before it is filed (LEGAL_APPROVAL=required, the default).
	HoldForLegal bool
	Limits       reports.Limits
	Similar      reports.Similar
	SweepEvery   time.Duration

	// Retention is the evidence lifecycle policy (package lifecycle);
	// LifecycleEvery is how often object locks are set and expired
	// evidence deleted.
	Retention      lifecycle.Policy
	LifecycleEvery time.Duration

	// Attention configures the queue of reports owed something (store).
	Attention store.AttentionPolicy

	// PublicURL is where staff reach intake: the OIDC callback is under
	// it, and an https URL makes the session cookie Secure.
	PublicURL     string
	OIDC          *auth.OIDCConfig // nil: no OIDC sign-in
	DevSignIn     bool
	Session       auth.SessionConfig
	RetractionURL string
}

// LoadConfig reads intake's configuration from l.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Service:      service.LoadConfig(l, ":8080"),
		S3:           evidence.LoadConfig(l),
		CreateBucket: l.Bool("S3_CREATE_BUCKET", false),
		MasterKeys:   l.Secret("MASTER_KEYS", config.Required),
		MasterKeyID:  l.MustString("MASTER_KEY_ID"),
		DevToken:     l.Secret("TAKEDOWN_DEV_TOKEN", config.Optional),
		DevToken2:    l.Secret("TAKEDOWN_DEV_TOKEN_2", config.Optional),
		HoldForLegal: l.OneOf("LEGAL_APPROVAL", "required", "required", "recorded") == "required",
		Limits: reports.Limits{
			MaxFileSize:  l.Bytes("MAX_FILE_SIZE", 8<<30),
			MaxFiles:     l.Int("MAX_FILES", 100, 1, 10000),
			MaxTotalSize: l.Bytes("MAX_TOTAL_SIZE", 32<<30),

			MinRate:          l.Bytes("UPLOAD_MIN_RATE", 16<<10),
			RateWindow:       l.Duration("UPLOAD_RATE_WINDOW", 30*time.Second),
			UploadMemory:     l.Bytes("UPLOAD_MEMORY", reports.DefaultUploadMemory),
			UploadMemoryWait: l.Duration("UPLOAD_MEMORY_WAIT", 10*time.Second),
		},
		Similar: reports.Similar{
			MaxImageBytes: int(l.Bytes("PDQ_MAX_IMAGE_SIZE", 32<<20)),
			MaxPixels:     l.Int("PDQ_MAX_PIXELS", 50_000_000, 1, 1_000_000_000),
			DecodeMemory:  l.Bytes("PDQ_MEMORY", reports.DefaultDecodeMemory),
			Distance:      l.Int("REPORTED_BEFORE_DISTANCE", 31, 1, 128),
		},
		SweepEvery: l.Duration("ORPHAN_SWEEP_INTERVAL", 5*time.Minute),
		Retention: lifecycle.Policy{
			Retention:  l.Duration("RETENTION", lifecycle.LegalFloor),
			Retracted:  l.Duration("RETENTION_RETRACTED", lifecycle.LegalFloor),
			Floor:      lifecycle.LegalFloor,
			ObjectLock: l.Bool("S3_OBJECT_LOCK", false),
			Mode:       evidence.Retention(l.OneOf("S3_OBJECT_LOCK_MODE", "COMPLIANCE", "COMPLIANCE", "GOVERNANCE")),
		},
		LifecycleEvery: l.Duration("LIFECYCLE_INTERVAL", time.Hour),
		Attention: store.AttentionPolicy{
			Stall:     l.Duration("ATTENTION_STALL", store.DefaultStall),
			LegalWait: l.Duration("ATTENTION_LEGAL_WAIT", store.DefaultLegalWait),
		},

		PublicURL: strings.TrimSuffix(l.URL("PUBLIC_URL", "http://127.0.0.1:8080", "http", "https"), "/"),
		DevSignIn: l.Bool("DEV_SIGN_IN", false),
		Session: auth.SessionConfig{
			IdleTimeout: l.Duration("SESSION_IDLE_TIMEOUT", time.Hour),
			Lifetime:    l.Duration("SESSION_LIFETIME", 12*time.Hour),
		},
		RetractionURL: l.RemoteURL("RETRACTION_URL", "http://127.0.0.1:8081"),
	}
	c.Session.Secure = strings.HasPrefix(c.PublicURL, "https://")
	c.Service.HSTS = c.Session.Secure
	c.OIDC = auth.LoadOIDC(l, c.PublicURL+"/auth/callback")
	if c.DevToken == "" && c.OIDC == nil && !c.DevSignIn {
		l.Fail("OIDC_ISSUER", "no sign-in is configured: set OIDC_ISSUER (staff sign-in), or for the local stack TAKEDOWN_DEV_TOKEN / DEV_SIGN_IN")
	}
	if c.Retention.Retention < lifecycle.LegalFloor {
		l.Fail("RETENTION", "%s is below the legal preservation period of %s (18 U.S.C. 2258A(h)(1)); it may only be longer", c.Retention.Retention, lifecycle.LegalFloor)
	}
	if c.Limits.MaxFileSize > c.Limits.MaxTotalSize {
		l.Fail("MAX_FILE_SIZE", "%d is larger than MAX_TOTAL_SIZE (%d)", c.Limits.MaxFileSize, c.Limits.MaxTotalSize)
	}
	return c
}

// App is a running intake.
type App struct {
	cfg      Config
	base     *service.Base
	store    *store.Store
	evidence *evidence.Store
	sessions *auth.Sessions
	site     *web.Web
	handler  chi.Router
	// Lifecycle keeps, holds, expires and destroys evidence, and rewraps
	// data keys; the intake commands use it too.
	Lifecycle *lifecycle.Manager
}

// New connects intake's dependencies and builds its handlers.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	keys, err := keyring.Parse(cfg.MasterKeys.Reveal(), cfg.MasterKeyID)
	if err != nil {
		return nil, fmt.Errorf("MASTER_KEYS: %w", err)
	}
	base, err := service.Open(ctx, Name, Schema, cfg.Service, log, store.Migrations)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, base: base, store: store.New(base.Pool)}
	s3 := cfg.S3
	s3.MaxSize = cfg.Limits.MaxFileSize
	s3latency := base.Metrics.Histogram("s3_request_duration_seconds", "Latency of S3 calls, by operation and result.", "endpoint", "result")
	a.evidence, err = evidence.New(s3, evidence.WithObserve(metrics.Observer(s3latency)))
	if err != nil {
		base.Close()
		return nil, err
	}
	if cfg.CreateBucket {
		if err := a.evidence.EnsureBucket(ctx, evidence.BucketOptions{ObjectLock: cfg.Retention.ObjectLock}); err != nil {
			base.Close()
			return nil, err
		}
	}
	base.Ready("s3", a.evidence.Check)
	base.Metrics.Registry.MustRegister(newReportGauges(base.Metrics.Service(), a.store, cfg.Attention))

	if cfg.LifecycleEvery <= 0 {
		cfg.LifecycleEvery = time.Hour
		a.cfg.LifecycleEvery = cfg.LifecycleEvery
	}
	a.Lifecycle, err = lifecycle.New(base.Pool, a.evidence, keys, base.JS, cfg.Retention, log)
	if err != nil {
		base.Close()
		return nil, err
	}
	svc := reports.New(a.store, a.evidence, keys, cfg.Limits, cfg.Similar, base.Metrics, log)
	svc.HoldForLegal = cfg.HoldForLegal
	svc.AttentionPolicy = cfg.Attention
	// Lock the objects of a report as soon as it is stored, so nothing can
	// delete them before it is finished: the lifecycle job locks those of
	// that report, outside the staff member's request, and its periodic
	// lock retries failures.
	svc.Stored = a.Lifecycle.Stored
	bearer, oidc, err := auth.Bearers(ctx, cfg.OIDC, cfg.DevToken, cfg.DevToken2)
	if err != nil {
		base.Close()
		return nil, err
	}
	sessionCfg := cfg.Session
	sessionCfg.Keys = keys
	if a.sessions, err = auth.NewSessions(base.Pool, sessionCfg); err != nil {
		a.Close()
		return nil, err
	}
	site, err := web.New(web.Config{DevSignIn: cfg.DevSignIn, DevToken: cfg.DevToken.Reveal(), RetractionURL: cfg.RetractionURL,
		Attention: cfg.Attention, Lifecycle: a.Lifecycle},
		svc, a.store, a.sessions, oidc, bearer, log)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.site = site
	if cfg.DevSignIn {
		log.Warn("DEV_SIGN_IN is on: anyone who reaches this address can sign in with every role; only for the local stack")
	}
	r := base.Router()
	r.Group(func(r chi.Router) {
		r.Use(site.Handler)
		httpapi.New(svc, log).Routes(r, site.Guard)
		httpapi.NewEvidenceAdmin(a.Lifecycle, log).Routes(r, site.Guard)
		site.Routes(r)
	})
	a.handler = r
	return a, nil
}

// Listen binds the configured address.
func (a *App) Listen() (net.Listener, error) { return a.base.Listen() }

// Run serves until ctx ends.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	return a.base.Run(ctx, ln, a.handler, a.base.Consume(progress.Consumer, progress.Applier(a.cfg.Retention)), a.sweep, a.site.RecordDenials,
		func(ctx context.Context) error { return a.Lifecycle.Run(ctx, a.cfg.LifecycleEvery) })
}

// Close releases the connections.
func (a *App) Close() {
	if a.sessions != nil {
		a.sessions.Close()
	}
	a.base.Close()
}

// sweep deletes objects left behind by submissions that failed while S3 was
// unreachable.
func (a *App) sweep(ctx context.Context) error {
	for {
		keys, err := a.store.Orphans(ctx)
		if err != nil && ctx.Err() == nil {
			a.base.Log.Warn("orphan sweep", logging.KeyErr, err)
		}
		for _, k := range keys {
			if err := a.evidence.Delete(ctx, k); err != nil {
				a.base.Log.Warn("orphan sweep: delete failed; will retry", "key", k, logging.KeyErr, err)
				continue
			}
			if err := a.store.RemoveOrphan(ctx, k); err != nil {
				a.base.Log.Warn("orphan sweep", logging.KeyErr, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(a.cfg.SweepEvery):
		}
	}
}
