// Package connection checks that each configured NCMEC environment answers
// and accepts our credentials (/status), at start and every interval, so
// that refused or expired credentials are seen before a filing fails on
// them. It exports the state as metrics and announces each change as
// ncmec.connection, which intake shows on its pages: intake holds no NCMEC
// credentials and cannot ask itself.
//
// Readiness does not depend on it: a reporter that cannot reach NCMEC still
// records filings and retries them, and restarting it would not help.
package connection

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/pkg/ncmec"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
)

// Checker checks every environment it has a client for.
type Checker struct {
	clients  map[string]*ncmec.Client
	pool     *pgxpool.Pool
	service  string
	interval time.Duration
	log      *slog.Logger
	up       *prometheus.GaugeVec
	checks   *prometheus.CounterVec

	// announced is the state last published per environment, so that an
	// event goes out on a change only. It starts empty: the first check
	// after a start announces, which also tells intake the reporter's
	// present view after a change of credentials and a restart.
	announced map[string]string
}

// New returns a Checker of clients (by environment name) that publishes
// through the outbox in pool as service, checking every interval.
func New(clients map[string]*ncmec.Client, pool *pgxpool.Pool, service string, interval time.Duration, m *metrics.Factory, log *slog.Logger) *Checker {
	c := &Checker{
		clients: clients, pool: pool, service: service, interval: interval, log: log,
		up: m.Gauge("ncmec_up", "1 while the NCMEC environment accepted our credentials at its last /status check, else 0.", "environment"),
		checks: m.Counter("ncmec_status_checks_total", "NCMEC /status checks, by environment and result (ok, refused, unreachable).",
			"environment", "result"),
		announced: map[string]string{},
	}
	// Every series from the start, so that a first failure is an increase.
	for env := range clients {
		for _, r := range []string{ncmec.ConnectionOK, ncmec.ConnectionRefused, ncmec.ConnectionUnreachable} {
			c.checks.WithLabelValues(env, r)
		}
	}
	return c
}

// Run checks at once and then every interval until ctx ends.
func (c *Checker) Run(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.CheckAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CheckAll checks every environment once, in a stable order.
func (c *Checker) CheckAll(ctx context.Context) {
	for _, env := range slices.Sorted(maps.Keys(c.clients)) {
		if ctx.Err() != nil {
			return
		}
		c.check(ctx, env)
	}
}

func (c *Checker) check(ctx context.Context, env string) {
	state, detail := c.clients[env].CheckConnection(ctx)
	if ctx.Err() != nil {
		return // stopping: the call was cut short, not refused
	}
	at := time.Now()
	c.checks.WithLabelValues(env, state).Inc()
	up := 0.0
	if state == ncmec.ConnectionOK {
		up = 1
	}
	c.up.WithLabelValues(env).Set(up)
	log := c.log.With(logging.KeyEnvironment, env, "state", state)
	if state != ncmec.ConnectionOK {
		log.Warn("NCMEC connection check failed; filings in this environment fail or wait until it answers", "detail", detail)
	}
	if c.announced[env] == state {
		return
	}
	ev, err := events.New("", events.Service(c.service), &pb.NcmecConnection{
		Environment: env, State: state, Detail: detail, CheckedAt: timestamppb.New(at)})
	if err == nil {
		err = database.InTx(ctx, c.pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, ev) })
	}
	if err != nil {
		// Not announced: the next check tries again.
		log.Warn("announce NCMEC connection state", logging.KeyErr, err)
		return
	}
	log.Info("NCMEC connection state announced")
	c.announced[env] = state
}
