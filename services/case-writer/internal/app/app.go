// Package app wires case-writer: configuration, the Salesforce client and
// its start-up checks, the consumer that records what events say about each
// report's case, and the workers that write the cases to Salesforce. Tests
// run the real wiring through New and Run on a loopback port.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/config"
	"takedown/pkg/events"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/pkg/salesforce"
	"takedown/pkg/service"
	"takedown/pkg/stream"
	"takedown/services/case-writer/internal/cases"
	"takedown/services/case-writer/internal/mapping"
	"takedown/services/case-writer/internal/store"
	"takedown/services/case-writer/internal/syncer"
)

// Name and Schema of the service.
const (
	Name   = events.CaseWriter
	Schema = "casewriter"
)

// Consumer reads the events that change a case. The handler only records
// them in PostgreSQL, so it is quick and needs no long AckWait; Salesforce is
// written by the sync workers.
var Consumer = stream.ConsumerConfig{
	Durable: "case-writer",
	Subjects: []string{events.ReportSubmitted, events.NcmecOpened, events.NcmecFileUploaded,
		events.NcmecFinished, events.NcmecFailed, events.NcmecRetracted, events.NcmecRetractionFailed,
		events.NcmecSubmitAmbiguous, events.ReportClosed},
	Concurrency: 4,
	// A case is written to Salesforce by the sync workers, after this.
	Linger: stream.OffPathLinger,
}

// Config is case-writer's configuration (README: "Configuration").
type Config struct {
	Service service.Config

	SalesforceURL string
	ClientID      string
	ClientSecret  config.Secret
	// JWT bearer instead of a client secret.
	JWTKeyFile  string
	JWTUsername string
	JWTAudience string
	APIVersion  string
	AutoAssign  string
	HTTPTimeout time.Duration
	// The client's own retries within one attempt.
	MaxAttempts            int
	RetryBackoff, RetryMax time.Duration
	MappingFile            string
	Sync                   syncer.Options
	StartCheckTimeout      time.Duration
}

// LoadConfig reads case-writer's configuration from l.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Service:       service.LoadConfig(l, ":8084"),
		SalesforceURL: l.RemoteURL("SALESFORCE_URL", ""),
		ClientID:      l.MustString("SALESFORCE_CLIENT_ID"),
		ClientSecret:  l.Secret("SALESFORCE_CLIENT_SECRET", config.Optional),
		JWTKeyFile:    l.String("SALESFORCE_JWT_KEY_FILE", ""),
		JWTUsername:   l.String("SALESFORCE_USERNAME", ""),
		JWTAudience:   l.String("SALESFORCE_AUDIENCE", "https://login.salesforce.com"),
		APIVersion:    l.String("SALESFORCE_API_VERSION", salesforce.DefaultAPIVersion),
		AutoAssign:    l.String("SALESFORCE_AUTO_ASSIGN", "FALSE"),
		HTTPTimeout:   l.Duration("SALESFORCE_TIMEOUT", 60*time.Second),
		MaxAttempts:   l.Int("SALESFORCE_MAX_ATTEMPTS", 5, 1, 20),
		RetryBackoff:  l.Duration("SALESFORCE_RETRY_BACKOFF", 250*time.Millisecond),
		RetryMax:      l.Duration("SALESFORCE_RETRY_MAX_BACKOFF", 10*time.Second),
		MappingFile:   l.String("CASE_MAPPING_FILE", ""),
		Sync: syncer.Options{
			Workers:    l.Int("CASE_SYNC_WORKERS", 2, 1, 64),
			Poll:       l.Duration("CASE_SYNC_POLL_INTERVAL", 5*time.Second),
			Lease:      l.Duration("CASE_SYNC_LEASE", 10*time.Minute),
			Backoff:    l.Duration("CASE_RETRY_BACKOFF", 5*time.Second),
			MaxBackoff: l.Duration("CASE_RETRY_MAX_BACKOFF", 10*time.Minute),
		},
		StartCheckTimeout: l.Duration("SALESFORCE_START_CHECK_TIMEOUT", 30*time.Second),
	}
	if c.SalesforceURL == "" {
		l.Fail("SALESFORCE_URL", "required but not set (the org's My Domain URL, or https://login.salesforce.com for JWT bearer)")
	}
	switch {
	case c.ClientSecret != "" && c.JWTKeyFile != "":
		l.Fail("SALESFORCE_CLIENT_SECRET", "set either it (client credentials) or SALESFORCE_JWT_KEY_FILE (JWT bearer), not both")
	case c.ClientSecret == "" && c.JWTKeyFile == "":
		l.Fail("SALESFORCE_CLIENT_SECRET", "required (or SALESFORCE_JWT_KEY_FILE with SALESFORCE_USERNAME for the JWT bearer flow)")
	case c.JWTKeyFile != "" && c.JWTUsername == "":
		l.Fail("SALESFORCE_USERNAME", "required with SALESFORCE_JWT_KEY_FILE (the integration user)")
	}
	if c.RetryMax < c.RetryBackoff {
		l.Fail("SALESFORCE_RETRY_MAX_BACKOFF", "%v is shorter than SALESFORCE_RETRY_BACKOFF (%v)", c.RetryMax, c.RetryBackoff)
	}
	if c.Sync.MaxBackoff < c.Sync.Backoff {
		l.Fail("CASE_RETRY_MAX_BACKOFF", "%v is shorter than CASE_RETRY_BACKOFF (%v)", c.Sync.MaxBackoff, c.Sync.Backoff)
	}
	return c
}

func (c Config) credentials() (salesforce.Credentials, error) {
	if c.JWTKeyFile == "" {
		return salesforce.ClientCredentials{ClientID: c.ClientID, ClientSecret: c.ClientSecret.Reveal()}, nil
	}
	pem, err := os.ReadFile(c.JWTKeyFile)
	if err != nil {
		return nil, fmt.Errorf("SALESFORCE_JWT_KEY_FILE: %w", err)
	}
	key, err := salesforce.ParseRSAPrivateKeyPEM(pem)
	if err != nil {
		return nil, fmt.Errorf("SALESFORCE_JWT_KEY_FILE %s: %w", c.JWTKeyFile, err)
	}
	return salesforce.JWTBearer{ClientID: c.ClientID, Username: c.JWTUsername, Audience: c.JWTAudience, PrivateKey: key}, nil
}

// App is a running case-writer.
type App struct {
	cfg     Config
	base    *service.Base
	client  *salesforce.Client
	mapping *mapping.Mapping
	syncer  *syncer.Syncer
	handler http.Handler
	checked atomic.Bool
}

// New loads the mapping, checks it against the org, and connects
// case-writer's dependencies. A mapping naming a source we do not have or a
// field the org lacks is refused here, with a message naming the field.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	m, err := mapping.Load(cfg.MappingFile)
	if err != nil {
		return nil, fmt.Errorf("CASE_MAPPING_FILE: %w", err)
	}
	creds, err := cfg.credentials()
	if err != nil {
		return nil, err
	}
	base, err := service.Open(ctx, Name, Schema, cfg.Service, log, store.Migrations)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, base: base, mapping: m}
	latency := base.Metrics.Histogram("salesforce_request_duration_seconds", "Latency of Salesforce calls, by endpoint and result.", "endpoint", "result")
	usage := base.Metrics.Gauge("salesforce_api_requests", "The org's daily API requests, from Sforce-Limit-Info, by kind (used, max).", "kind")
	a.client, err = salesforce.New(salesforce.Options{
		LoginURL:    cfg.SalesforceURL,
		Credentials: creds,
		APIVersion:  cfg.APIVersion,
		HTTPClient:  &http.Client{Timeout: cfg.HTTPTimeout},
		MaxAttempts: cfg.MaxAttempts,
		BaseBackoff: cfg.RetryBackoff,
		MaxBackoff:  cfg.RetryMax,
		AutoAssign:  cfg.AutoAssign,
		Observe:     metrics.Observer(latency),
		OnLimitInfo: func(used, max int) {
			usage.WithLabelValues("used").Set(float64(used))
			usage.WithLabelValues("max").Set(float64(max))
		},
	})
	if err != nil {
		base.Close()
		return nil, err
	}
	if err := a.check(ctx); err != nil {
		if !salesforce.IsRetryable(err) {
			base.Close()
			return nil, err
		}
		// Salesforce is unreachable: start anyway and record events; the
		// workers check again before they write anything.
		log.Warn("Salesforce not reachable at start; cases wait until it is", logging.KeyErr, err)
	}
	a.syncer = syncer.New(base.Pool, a.client, m, base.Metrics, log, cfg.Sync)
	base.Ready("salesforce", func(context.Context) error {
		if !a.checked.Load() {
			return errors.New("the org's schema has not been checked yet")
		}
		return nil
	})
	a.handler = base.Router()
	return a, nil
}

// check verifies that the org serves our API version and has every object
// and field the mapping names.
func (a *App) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.StartCheckTimeout)
	defer cancel()
	if err := a.client.CheckVersion(ctx); err != nil {
		return fmt.Errorf("SALESFORCE_API_VERSION: %w", err)
	}
	if err := a.client.CheckSchema(ctx, a.mapping.Schemas()...); err != nil {
		where := "the default case mapping"
		if a.cfg.MappingFile != "" {
			where = "CASE_MAPPING_FILE " + a.cfg.MappingFile
		}
		return fmt.Errorf("%s does not fit the org: %w", where, err)
	}
	a.checked.Store(true)
	return nil
}

// Listen binds the configured address.
func (a *App) Listen() (net.Listener, error) { return a.base.Listen() }

// Run serves the operational endpoints, consumes events and writes cases
// until ctx ends.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	return a.base.Run(ctx, ln, a.handler, a.base.Consume(Consumer, Handle), a.sync)
}

// Close releases the connections.
func (a *App) Close() { a.base.Close() }

// Handle records the events' effects on their reports' cases, each
// report's row locked and written once however many of its events the
// batch holds. It never calls Salesforce: the desired state is committed
// with the inbox rows, and the sync workers write it, so a Salesforce
// outage of any length neither exhausts the events' redeliveries nor holds
// a transaction open.
func Handle(ctx context.Context, tx pgx.Tx, ms []stream.Message) error {
	edits := make([]store.Edit, 0, len(ms))
	for _, m := range ms {
		change, ok := cases.FromEvent(m.Envelope)
		if !ok {
			continue
		}
		if m.ReportId == "" {
			return stream.Permanent(fmt.Errorf("%s event %s without a report id", m.Type, m.EventId))
		}
		edits = append(edits, store.Edit{ReportID: m.ReportId, Change: change})
	}
	return store.Apply(ctx, tx, edits)
}

// sync writes cases to Salesforce once the org's schema has been checked.
func (a *App) sync(ctx context.Context) error {
	for wait := time.Second; !a.checked.Load(); wait = min(2*wait, time.Minute) {
		err := a.check(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if !salesforce.IsRetryable(err) {
			return err // a configuration error: stop, visibly
		}
		a.base.Log.Warn("Salesforce still unreachable; cases wait", logging.KeyErr, err, logging.KeyRetryIn, wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	return a.syncer.Run(ctx)
}
