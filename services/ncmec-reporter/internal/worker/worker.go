// Package worker files reports with NCMEC. A pool of workers (package pool)
// claims filings from PostgreSQL under a lease and drives each through
//
//	submit → upload(i) → fileinfo(i) → finish
//
// recording every NCMEC answer before the next call, so that a worker that
// dies anywhere leaves a filing another worker resumes from its last
// recorded answer. /submit is never repeated once it may have reached NCMEC;
// transient failures are retried with backoff inside NCMEC's expiry window;
// everything else ends the filing with takedown.ncmec.failed. What follows
// a failed call is decided by the rules in outcome.go.
package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/filing"
	"takedown/pkg/keyring"
	"takedown/pkg/metrics"
	"takedown/pkg/ncmec"
	build "takedown/services/ncmec-reporter/internal/filing"
	"takedown/services/ncmec-reporter/internal/store"
	"takedown/services/ncmec-reporter/internal/worker/pool"
)

// Steps, as named in takedown.ncmec.failed.
const (
	StepSubmit   = ncmec.EndpointSubmit
	StepUpload   = ncmec.EndpointUpload
	StepFileInfo = ncmec.EndpointFileInfo
	StepFinish   = ncmec.EndpointFinish
)

// Config tunes the pool.
type Config struct {
	Concurrency    int           // filings driven at once (default 16)
	UploadParallel int           // files of one filing uploaded at once (default 3)
	Lease          time.Duration // a crashed worker's filing is taken over after this (default 12s; renewed every third)
	// Instance names this process among the reporter's replicas and stays
	// the same across its restarts (INSTANCE_ID; default host:pid, which a
	// container keeps). A restarted instance knows its previous life is
	// dead and resumes that life's filings at once instead of waiting for
	// their leases to end. Two live processes must never share it.
	Instance   string
	Poll       time.Duration // how often idle workers look for due filings (default 1s)
	Window     time.Duration // retry transient failures this long after the last change (default 45m)
	BackoffMin time.Duration // first retry delay (default 1s)
	BackoffMax time.Duration // longest retry delay (default 2m)
	// AmbiguousLimit bounds the ambiguous /submit attempts in a row after
	// which the filing fails for staff instead of opening a fresh report
	// (default 3).
	AmbiguousLimit int
	Reporter       build.Reporter
	Service        string // actor of the events
	// Hooks are test instruments; nil in production.
	Hooks *Hooks
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.UploadParallel <= 0 {
		c.UploadParallel = 3
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.Lease <= 0 {
		// Short, so that a killed worker's filings resume within seconds:
		// NCMEC deletes an unfinished report an hour after its last change,
		// and the law asks for speed.
		c.Lease = 12 * time.Second
	}
	if c.AmbiguousLimit <= 0 {
		c.AmbiguousLimit = 3
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Window <= 0 {
		c.Window = 45 * time.Minute
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = time.Second
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(2*time.Minute, c.BackoffMin)
	}
	if c.Service == "" {
		c.Service = events.NcmecReporter
	}
}

// Hooks let a test kill the service at a named point of a filing, as a
// kill -9 would, to prove that another process resumes it.
type Hooks struct {
	// CrashAfter names the point: submit:sent, submit, upload:<i>,
	// fileinfo:<i>, finish:sent or finish.
	CrashAfter string
	// Kill must stop the whole service at once.
	Kill func()
}

// NCMEC is what the steps ask of an NCMEC client (*ncmec.Client).
type NCMEC interface {
	SubmitXML(ctx context.Context, doc []byte) (*ncmec.Response, error)
	Upload(ctx context.Context, reportID int64, name string, size int64, body io.Reader) (*ncmec.UploadResult, error)
	FileInfoXML(ctx context.Context, doc []byte) (*ncmec.Response, error)
	Finish(ctx context.Context, reportID int64) (*ncmec.DoneResponse, error)
}

var _ NCMEC = (*ncmec.Client)(nil)

// Deps are what the pool works with. Clients holds one client per
// environment (store.EnvProduction, store.EnvTest); a missing one makes
// filings for that environment fail with a clear description.
type Deps struct {
	Store    *store.Store
	Clients  map[string]*ncmec.Client
	Evidence *evidence.Store
	Keys     *keyring.Keyring
	Handover *filing.Handover
	Metrics  *metrics.Factory
	Log      *slog.Logger
}

// Pool is the set of workers filing reports.
type Pool struct {
	cfg     Config
	d       Deps
	workers *pool.Pool
	crashed atomic.Bool

	outcomes *prometheus.CounterVec
	retries  *prometheus.CounterVec
	// ambiguous counts /submit attempts that may have opened a report we
	// never learnt the id of.
	ambiguous prometheus.Counter
}

// New returns a pool.
func New(cfg Config, d Deps) *Pool {
	cfg.defaults()
	m := d.Metrics
	p := &Pool{cfg: cfg, d: d, workers: pool.New(pool.Config{
		Concurrency: cfg.Concurrency, Lease: cfg.Lease, Poll: cfg.Poll, Instance: cfg.Instance}, d.Store, m, d.Log)}
	p.outcomes = m.Counter("filings_total", "Filings ended, by outcome (finished, failed, retracted).", "outcome")
	p.retries = m.Counter("retries_total", "Transient failures scheduled for a retry, by step.", "step")
	p.ambiguous = m.Counter("ambiguous_submits_total", "/submit attempts whose answer was lost: NCMEC may hold an unfinished report it will delete; a fresh report is opened.").WithLabelValues()
	// Both read the database: while it is down they emit no sample rather
	// than a false 0.
	m.QueryGauge("oldest_open_report_age_seconds", "Age of the oldest NCMEC report opened and not yet finished (0 when none).", nil,
		func(ctx context.Context) (float64, error) {
			st, err := d.Store.Stats(ctx)
			return st.OldestOpenSecs, err
		})
	m.QueryGauge("filings_unfinished", "Filings recorded and not yet finished, failed or retracted.", nil,
		func(ctx context.Context) (float64, error) {
			st, err := d.Store.Stats(ctx)
			return float64(st.Unfinished), err
		})
	return p
}

// Wake tells idle workers that a filing was recorded.
func (p *Pool) Wake() { p.workers.Wake() }

// Run drives filings until ctx ends. On shutdown a worker stops between
// steps; a call in progress is completed (an aborted /submit would be
// ambiguous) except uploads, which are cancelled and repeated later.
func (p *Pool) Run(ctx context.Context) error { return p.workers.Run(ctx, p.drive) }

// reached passes a named point of a filing: the test's crash point, if
// Hooks name it, kills the service there once.
func (p *Pool) reached(point string) error {
	h := p.cfg.Hooks
	if h == nil || h.CrashAfter != point || !p.crashed.CompareAndSwap(false, true) {
		return nil
	}
	p.d.Log.Warn("crashing at the configured point (test hook)", "point", point)
	p.workers.Kill()
	if h.Kill != nil {
		h.Kill()
	}
	return errCrashed
}
