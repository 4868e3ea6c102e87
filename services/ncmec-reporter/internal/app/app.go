// Package app wires ncmec-reporter: configuration, the consumer that records
// each takedown.report.submitted as a filing, and the worker pool that files
// them with NCMEC. Tests run the real wiring through New and Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/config"
	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	lifecycle "takedown/pkg/filing"
	"takedown/pkg/keyring"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/pkg/ncmec"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/service"
	"takedown/pkg/stream"
	"takedown/services/ncmec-reporter/internal/connection"
	"takedown/services/ncmec-reporter/internal/filing"
	"takedown/services/ncmec-reporter/internal/store"
	"takedown/services/ncmec-reporter/internal/worker"
)

// Name and Schema of the service.
const (
	Name   = events.NcmecReporter
	Schema = "ncmec"
)

// Config is ncmec-reporter's configuration (README: "Configuration").
type Config struct {
	Service     service.Config
	S3          evidence.Config
	MasterKeys  config.Secret
	MasterKeyID string
	NCMEC       ncmec.Environments
	Worker      worker.Config
	// StatusInterval is how often each environment's /status is checked
	// (package connection); DefaultStatusInterval when not set.
	StatusInterval time.Duration
}

// DefaultStatusInterval is NCMEC_STATUS_INTERVAL's default: a refused
// credential shows within minutes, at one small call per environment.
const DefaultStatusInterval = 5 * time.Minute

// LoadConfig reads the configuration from l.
func LoadConfig(l *config.Loader) Config {
	c := Config{
		Service:        service.LoadConfig(l, ":8083"),
		S3:             evidence.LoadConfig(l),
		MasterKeys:     l.Secret("MASTER_KEYS", config.Required),
		MasterKeyID:    l.MustString("MASTER_KEY_ID"),
		NCMEC:          ncmec.LoadEnvironments(l),
		StatusInterval: l.Duration("NCMEC_STATUS_INTERVAL", DefaultStatusInterval),
		Worker: worker.Config{
			Concurrency:    l.Int("FILING_CONCURRENCY", 16, 1, 1000),
			UploadParallel: l.Int("UPLOAD_PARALLELISM", 3, 1, 32),
			Lease:          l.Duration("FILING_LEASE", 12*time.Second),
			Instance:       l.String("INSTANCE_ID", ""),
			AmbiguousLimit: l.Int("AMBIGUOUS_SUBMIT_LIMIT", 3, 1, 100),
			Poll:           l.Duration("FILING_POLL_INTERVAL", time.Second),
			Window:         l.Duration("RETRY_WINDOW", 45*time.Minute),
			BackoffMin:     l.Duration("RETRY_MIN_DELAY", time.Second),
			BackoffMax:     l.Duration("RETRY_MAX_DELAY", 2*time.Minute),
			Reporter: filing.Reporter{
				Person: filing.Person{
					FirstName: l.MustString("NCMEC_REPORTER_FIRST_NAME"),
					LastName:  l.MustString("NCMEC_REPORTER_LAST_NAME"),
					Email:     l.MustString("NCMEC_REPORTER_EMAIL"),
					Phone:     l.String("NCMEC_REPORTER_PHONE", ""),
				},
				Address: filing.Address{
					Street:  l.String("NCMEC_REPORTER_ADDRESS", ""),
					City:    l.String("NCMEC_REPORTER_CITY", ""),
					ZipCode: l.String("NCMEC_REPORTER_ZIP", ""),
					State:   l.String("NCMEC_REPORTER_STATE", ""),
					Country: l.String("NCMEC_REPORTER_COUNTRY", ""),
				},
				Contact: filing.Person{
					FirstName: l.String("NCMEC_CONTACT_FIRST_NAME", ""),
					LastName:  l.String("NCMEC_CONTACT_LAST_NAME", ""),
					Email:     l.String("NCMEC_CONTACT_EMAIL", ""),
					Phone:     l.String("NCMEC_CONTACT_PHONE", ""),
				},
				CompanyTemplate: l.String("NCMEC_COMPANY_TEMPLATE", ""),
				TermsOfService:  l.String("NCMEC_TERMS_OF_SERVICE", ""),
				LegalURL:        l.String("NCMEC_LEGAL_URL", ""),
			},
		},
	}
	if c.Worker.Window >= time.Hour {
		l.Fail("RETRY_WINDOW", "%v is not below NCMEC's 1 hour expiry after the last change", c.Worker.Window)
	}
	return c
}

// Options are test hooks.
type Options struct {
	// CrashAfter makes the service die at a named point of a filing, as a
	// kill -9 would (see worker.Hooks).
	CrashAfter string
}

// Consumer is the durable consumer of report.submitted. Handling an event
// only records the filing, so a short AckWait fits.
var Consumer = stream.ConsumerConfig{
	Durable:     "ncmec-reporter",
	Subjects:    []string{events.ReportSubmitted},
	AckWait:     30 * time.Second,
	MaxDeliver:  20,
	Concurrency: 4,
}

// App is a running ncmec-reporter.
type App struct {
	cfg    Config
	base   *service.Base
	store  *store.Store
	pool   *worker.Pool
	conns  *connection.Checker
	cancel context.CancelFunc
}

// New connects the dependencies and builds the worker pool.
func New(ctx context.Context, cfg Config, log *slog.Logger, opts ...Options) (*App, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if err := cfg.Worker.Reporter.Validate(); err != nil {
		return nil, fmt.Errorf("NCMEC_REPORTER_*: %w", err)
	}
	keys, err := keyring.Parse(cfg.MasterKeys.Reveal(), cfg.MasterKeyID)
	if err != nil {
		return nil, fmt.Errorf("MASTER_KEYS: %w", err)
	}
	base, err := service.Open(ctx, Name, Schema, cfg.Service, log, store.Migrations)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, base: base, store: store.New(base.Pool)}
	fail := func(err error) (*App, error) { base.Close(); return nil, err }

	s3latency := base.Metrics.Histogram("s3_request_duration_seconds", "Latency of S3 calls, by operation and result.", "endpoint", "result")
	ev, err := evidence.New(cfg.S3, evidence.WithObserve(metrics.Observer(s3latency)))
	if err != nil {
		return fail(err)
	}
	base.Ready("s3", ev.Check)

	latency := base.Metrics.Histogram("ncmec_request_duration_seconds", "Latency of NCMEC calls, by endpoint and result (ok, retryable, permanent, state).", "endpoint", "result")
	// Every worker may have its uploads in flight at once (0, the client's
	// default, where the configuration leaves them to the worker's).
	cfg.NCMEC.IdleConns = cfg.Worker.Concurrency * cfg.Worker.UploadParallel
	clients, err := cfg.NCMEC.Clients(metrics.Observer(latency))
	if err != nil {
		return fail(err)
	}
	if clients[store.EnvTest] == nil {
		log.Warn("no NCMEC test credentials: reports marked test will fail (set NCMEC_TEST_USERNAME and NCMEC_TEST_PASSWORD)")
	}

	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	a.conns = connection.New(clients, base.Pool, Name, cfg.StatusInterval, base.Metrics, log)

	wcfg := cfg.Worker
	wcfg.Service = Name
	if o.CrashAfter != "" {
		wcfg.Hooks = &worker.Hooks{CrashAfter: o.CrashAfter, Kill: func() {
			if a.cancel != nil {
				a.cancel()
			}
		}}
	}
	a.pool = worker.New(wcfg, worker.Deps{
		Store: a.store, Clients: clients, Evidence: ev, Keys: keys,
		Handover: lifecycle.NewHandover(base.JS, lifecycle.HandoverConfig{Replicas: cfg.Service.StreamReplicas}),
		Metrics:  base.Metrics, Log: log,
	})
	return a, nil
}

// Listen binds the configured address.
func (a *App) Listen() (net.Listener, error) { return a.base.Listen() }

// Run serves the operational endpoints and runs the consumer, the workers
// and the outbox relay until ctx ends.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	ctx, a.cancel = context.WithCancel(ctx)
	return a.base.Run(ctx, ln, a.handler(), a.base.Consume(Consumer, stream.Each(a.handle)), a.pool.Run, a.listen, a.conns.Run)
}

// Close releases the connections.
func (a *App) Close() { a.base.Close() }

func (a *App) handler() http.Handler { return a.base.Router() }

// handle records a report.submitted event as a filing and returns: the
// filing itself may take an hour, far longer than a message should be held.
func (a *App) handle(ctx context.Context, tx pgx.Tx, m stream.Message) error {
	sub := m.GetReportSubmitted()
	if err := checkEvent(m.ReportId, sub); err != nil {
		// A report that cannot be filed must not vanish silently.
		a.base.Log.Error("report.submitted cannot be filed", logging.KeyReportID, m.ReportId, logging.KeyEventID, m.EventId, logging.KeyErr, err)
		ev, eerr := events.New(m.ReportId, events.Service(Name), &pb.NcmecFailed{
			Step: worker.StepSubmit, Description: "the report.submitted event cannot be filed: " + err.Error()})
		if eerr != nil {
			return stream.Permanent(eerr)
		}
		return outbox.Add(ctx, tx, ev)
	}
	return store.Record(ctx, tx, m.EventId, sub)
}

func checkEvent(reportID string, sub *pb.ReportSubmitted) error {
	switch {
	case sub == nil || sub.Report == nil:
		return errors.New("no report in the event")
	case sub.Report.Id != reportID:
		return fmt.Errorf("report id %q differs from the envelope's %q", sub.Report.Id, reportID)
	case len(sub.Files) > 0 && (sub.DataKey == nil || len(sub.DataKey.Ciphertext) == 0):
		return errors.New("files without a data key")
	}
	for _, f := range sub.Files {
		if f.ObjectKey == "" || f.Size <= 0 || f.Md5 == "" {
			return fmt.Errorf("file %d lacks an object key, size or MD5", f.Index)
		}
	}
	return nil
}

// listen wakes idle workers when a filing is recorded (by any replica);
// they poll meanwhile when it cannot.
func (a *App) listen(ctx context.Context) error {
	database.Listen(ctx, a.base.Pool, database.Named(store.Channel), a.pool.Wake, a.base.Log.With("listen", "filings"))
	return nil
}
