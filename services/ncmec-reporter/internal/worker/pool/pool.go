// Package pool runs the workers that claim filings from PostgreSQL under a
// lease, keep the lease while they work, and release it on shutdown. It
// knows nothing of what a worker does with a filing: that is the Work it is
// given. Wake is called by the LISTEN loop of pkg/database (app.listen).
package pool

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/services/ncmec-reporter/internal/store"
)

// Config tunes the pool; the worker package documents and defaults it.
type Config struct {
	Concurrency int           // filings held at once
	Lease       time.Duration // renewed every third of it
	Poll        time.Duration // how often idle workers look for due filings
	Instance    string        // this process among the replicas, stable across restarts
}

// Work drives one claimed filing. stop ends on shutdown; ctx ends on a
// crash or when the lease is lost, after which nothing may be written. log
// names the filing. Work returns ErrStopped when it stopped between steps
// on shutdown: the pool then releases the filing to the other replicas.
type Work func(stop, ctx context.Context, f *store.Filing, log *slog.Logger) error

// ErrStopped is Work's answer when it stopped on shutdown.
var ErrStopped = errors.New("stopped")

// Pool is the set of workers.
type Pool struct {
	cfg      Config
	store    *store.Store
	log      *slog.Logger
	wake     chan struct{} // a token: one idle worker looks for a due filing
	id       string
	kill     context.CancelFunc
	inFlight prometheus.Gauge
}

// New returns a pool.
func New(cfg Config, st *store.Store, m *metrics.Factory, log *slog.Logger) *Pool {
	return &Pool{cfg: cfg, store: st, log: log, wake: make(chan struct{}, 1), id: cfg.Instance + "#" + randomID(),
		inFlight: m.Gauge("filings_in_flight", "Filings being driven by a worker now.").WithLabelValues()}
}

// Wake tells an idle worker that a filing was recorded. One, not all: the
// others would each run a claim that finds nothing. A worker that claims a
// filing passes the word on (more may be due), so a backlog is still taken
// up by every idle worker at once.
func (p *Pool) Wake() {
	select {
	case p.wake <- struct{}{}:
	default: // a worker will look already
	}
}

// Kill ends the pool at once, as a kill -9 would: calls in progress are
// abandoned and nothing more is written (a test's crash).
func (p *Pool) Kill() { p.kill() }

// Run claims filings and hands them to work until ctx ends. On shutdown a
// worker's ctx outlives the stop so that calls in progress complete; it
// ends when every worker has returned, or at once on Kill.
func (p *Pool) Run(ctx context.Context, work Work) error {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop, cancelStop := context.WithCancel(ctx)
	defer cancelStop()
	p.kill = func() { cancelStop(); cancelHard() }

	// This instance's previous life is dead: its filings are ours to
	// resume now. (Should this fail, their leases end on their own.)
	if n, err := p.store.ReleaseInstance(ctx, p.cfg.Instance+"#"); err != nil {
		p.log.Warn("resume the previous instance's filings", logging.KeyInstance, p.cfg.Instance, logging.KeyErr, err)
	} else if n > 0 {
		p.log.Info("resuming the filings a previous instance left", logging.KeyInstance, p.cfg.Instance, "filings", n)
	}

	var wg sync.WaitGroup
	for i := range p.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(stop, hard, p.id+"-"+strconv.Itoa(i), work)
		}()
	}
	wg.Wait()
	return nil
}

func (p *Pool) loop(stop, hard context.Context, owner string, work Work) {
	for stop.Err() == nil {
		f, err := p.store.Claim(stop, owner, p.cfg.Lease)
		if err != nil {
			if stop.Err() == nil {
				p.log.Warn("claim filing", logging.KeyErr, err)
			}
		}
		if f != nil {
			p.Wake()
			p.hold(stop, hard, f, work)
			continue // look for more at once
		}
		select {
		case <-stop.Done():
		case <-p.wake:
		case <-time.After(p.cfg.Poll):
		}
	}
}

// hold runs work on f while keeping f's lease.
func (p *Pool) hold(stop, hard context.Context, f *store.Filing, work Work) {
	p.inFlight.Inc()
	defer p.inFlight.Dec()
	ctx, cancel := context.WithCancel(hard)
	defer cancel()
	log := p.log.With(logging.KeyReportID, f.ReportID, logging.KeyFiling, f.Filing, logging.KeyEnvironment, f.Environment)
	if f.NCMECID != 0 {
		log = log.With(logging.KeyNCMECReportID, f.NCMECID)
	}
	defer p.renew(ctx, cancel, f, log)()
	if err := work(stop, ctx, f, log); errors.Is(err, ErrStopped) {
		if err := p.store.Release(ctx, f); err != nil {
			log.Warn("release filing; its lease will end by itself", logging.KeyErr, err)
		}
	}
}

// renew keeps f's lease until the returned func is called. Losing it means
// another worker took the filing over (this one stalled past the lease):
// ctx is cancelled at once.
func (p *Pool) renew(ctx context.Context, cancel context.CancelFunc, f *store.Filing, log *slog.Logger) (done func()) {
	renewDone := make(chan struct{})
	go func() {
		t := time.NewTicker(p.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-renewDone:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := p.store.Renew(ctx, f, p.cfg.Lease); errors.Is(err, store.ErrLeaseLost) {
					log.Error("lease lost; another worker has the filing", logging.KeyErr, err)
					cancel()
					return
				} else if err != nil && ctx.Err() == nil {
					log.Warn("renew lease", logging.KeyErr, err)
				}
			}
		}
	}()
	return func() { close(renewDone) }
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
