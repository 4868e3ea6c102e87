// Package syncer brings Salesforce to the cases the store holds: it claims a
// due case, writes the Case and one child record per file in composite
// allOrNone calls made only of upserts by our ids, and records the outcome
// with its event (takedown.case.upserted or takedown.case.failed) in one
// transaction through the outbox.
//
// Because every write is an upsert by external id, repeating one — after a
// lost answer, a crash before the outcome was recorded, or two replicas
// racing after a lease expired — leaves the org as one write would.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"takedown/pkg/backoff"
	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/salesforce"
	"takedown/services/case-writer/internal/cases"
	"takedown/services/case-writer/internal/mapping"
	"takedown/services/case-writer/internal/store"
)

// Service is the actor of case-writer's events.
const Service = events.CaseWriter

// filesPerCall is how many file records go with the case in one composite
// call: Salesforce allows 25 subrequests and the case upsert is one. A report
// with more files is written in several calls, each repeating the case
// upsert so that each is atomic and idempotent on its own.
const filesPerCall = salesforce.MaxSubrequests - 1

// Options tune the workers; zero values take the defaults.
type Options struct {
	Workers int           // concurrent writes (default 2)
	Poll    time.Duration // look for due cases at least this often (default 5 s)
	// Lease is how long a worker holds a case; a worker that died lets
	// another take the case over after it (default 10 min). Writes are
	// bounded by it.
	Lease time.Duration
	// Backoff and MaxBackoff space the attempts after retryable failures
	// (defaults 5 s and 10 min). The client has already retried quickly
	// inside one attempt; these cover outages and maintenance windows.
	Backoff, MaxBackoff time.Duration
}

// Syncer runs the sync workers.
type Syncer struct {
	opts     Options
	pool     *pgxpool.Pool
	store    *store.Store
	client   *salesforce.Client
	mapping  *mapping.Mapping
	log      *slog.Logger
	outcomes *prometheus.CounterVec
}

// New returns a Syncer. The pool is also used to listen for due cases.
func New(pool *pgxpool.Pool, client *salesforce.Client, m *mapping.Mapping, mf *metrics.Factory, log *slog.Logger, o Options) *Syncer {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 10 * time.Minute
	}
	if o.Backoff <= 0 {
		o.Backoff = 5 * time.Second
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = max(o.Backoff, 10*time.Minute)
	}
	s := &Syncer{opts: o, pool: pool, store: store.New(pool), client: client, mapping: m, log: log,
		outcomes: mf.Counter("cases_total", "Case writes to Salesforce, by outcome (upserted, failed, retry).", "outcome")}
	mf.QueryGauge("cases_pending", "Cases waiting to be written to Salesforce.", nil, func(ctx context.Context) (float64, error) {
		n, _, err := s.store.Backlog(ctx)
		return float64(n), err
	})
	mf.QueryGauge("cases_oldest_pending_seconds", "How long the oldest case waiting to be written has waited since it last changed.", nil, func(ctx context.Context) (float64, error) {
		_, d, err := s.store.Backlog(ctx)
		return d.Seconds(), err
	})
	return s
}

// Run writes due cases until ctx ends. Workers wake when a transaction that
// made a case due commits (LISTEN), and every Poll in case a notification
// was missed or a retry fell due.
func (s *Syncer) Run(ctx context.Context) error {
	wake := make(chan struct{}, s.opts.Workers)
	// A notification wakes every idle worker.
	go database.Listen(ctx, s.pool, database.Named(store.Channel), func() {
		for range cap(wake) {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}, s.log.With("listen", "case sync"))
	done := make(chan struct{})
	for range s.opts.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			s.work(ctx, wake)
		}()
	}
	for range s.opts.Workers {
		<-done
	}
	return nil
}

func (s *Syncer) work(ctx context.Context, wake <-chan struct{}) {
	for ctx.Err() == nil {
		cl, err := s.store.Claim(ctx, s.opts.Lease)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("case sync: claim failed", logging.KeyErr, err)
		}
		if cl != nil {
			s.sync(ctx, cl)
			continue
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-time.After(s.opts.Poll):
		}
	}
}

// sync writes one claimed case and records the outcome.
func (s *Syncer) sync(ctx context.Context, cl *store.Claim) {
	log := s.log.With(logging.KeyReportID, cl.Case.ReportID, "rev", cl.Rev)
	// Bounded by the lease, so that no other worker takes the case over
	// while this one still writes it.
	wctx, cancel := context.WithTimeout(ctx, s.opts.Lease*9/10)
	caseID, err := s.write(wctx, cl.Case)
	cancel()
	// Recording the outcome must not be cut short by shutdown: the write
	// happened, and saying so spares a repeat.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	var outcome string
	// events.New fails only for a payload that is not an event; these are.
	switch {
	case err == nil:
		outcome = "upserted"
		n := cl.Case.NCMEC
		ev, _ := events.New(cl.Case.ReportID, events.Service(Service), &pb.CaseUpserted{CaseId: caseID,
			State: string(n.State), Filing: uint32(n.Filing), NcmecReportId: n.NCMECReportID})
		err = s.store.Synced(rctx, cl, caseID, ev)
		if err == nil {
			log.Info("case written to Salesforce", "case_id", caseID, "ncmec_state", n.State, logging.KeyFiling, n.Filing)
		}
	case ctx.Err() != nil:
		// Stopping: the write may or may not have reached Salesforce; the
		// next worker repeats it, which the upserts make harmless.
		err = s.store.Release(rctx, cl)
		outcome = ""
	case refused(err):
		outcome = "failed"
		f := failure(err)
		ev, _ := events.New(cl.Case.ReportID, events.Service(Service), f)
		log.Error("Salesforce refused the case; not retried until the report changes", logging.KeyErr, err, logging.KeyCode, f.Code, "fields", f.Fields)
		err = s.store.Refused(rctx, cl, f.Message, ev)
	default:
		outcome = "retry"
		delay := backoff.Delay(cl.Attempts, s.opts.Backoff, s.opts.MaxBackoff)
		log.Warn("case write failed; will retry", logging.KeyErr, err, logging.KeyAttempt, cl.Attempts+1, logging.KeyRetryIn, delay)
		err = s.store.Retry(rctx, cl, delay, err.Error())
	}
	if errors.Is(err, store.ErrLeaseLost) {
		log.Warn("case sync took longer than its lease; another worker took the case over")
		return
	}
	if err != nil {
		// The claim lapses with its lease and the case is written again.
		log.Error("case sync: recording the outcome failed", logging.KeyErr, err)
		return
	}
	if outcome != "" {
		s.outcomes.WithLabelValues(outcome).Inc()
	}
}

// write upserts the case and its file records and returns the case's
// Salesforce id. Only metadata and hashes are sent, never media.
func (s *Syncer) write(ctx context.Context, c *cases.Case) (string, error) {
	caseRec := s.mapping.CaseRecord(c)
	files := s.mapping.FileRecords(c)
	caseID := ""
	for start := 0; start == 0 || start < len(files); start += filesPerCall {
		chunk := files[start:min(start+filesPerCall, len(files))]
		subs := []salesforce.Subrequest{s.client.UpsertSubrequest("refCase", s.mapping.Case.Object, s.mapping.Case.ExternalID, caseRec.ExternalID, caseRec.Fields)}
		for i, f := range chunk {
			fields := make(map[string]any, len(f.Fields)+1)
			for k, v := range f.Fields {
				fields[k] = v
			}
			fields[s.mapping.Files.Parent] = salesforce.Ref("refCase", "id")
			subs = append(subs, s.client.UpsertSubrequest(fmt.Sprintf("refFile%d", start+i), s.mapping.Files.Object, s.mapping.Files.ExternalID, f.ExternalID, fields))
		}
		resp, err := s.client.Composite(ctx, salesforce.CompositeRequest{AllOrNone: true, Subrequests: subs})
		if err != nil {
			return "", err
		}
		res, ok := resp.Result("refCase")
		if !ok {
			return "", errors.New("salesforce: composite answer without the case's result")
		}
		up, err := res.UpsertResult()
		if err != nil {
			return "", err
		}
		caseID = up.ID
	}
	return caseID, nil
}

// refused reports a definite answer from Salesforce about this data that the
// same write would get again: a validation error, a record Salesforce
// refuses, or an external id matching several records. Expired sessions,
// rate limits, locks, 5xx and transport failures are retried instead, and
// so are refusals of the token endpoint: a configuration fix must resume
// every case without anyone re-sending events.
func refused(err error) bool {
	if salesforce.IsValidation(err) {
		return true
	}
	var mm *salesforce.MultipleMatchesError
	if errors.As(err, &mm) {
		return true
	}
	if salesforce.IsRetryable(err) || salesforce.IsInvalidSession(err) {
		return false
	}
	var e *salesforce.Error
	return errors.As(err, &e)
}

// failure describes a refusal for takedown.case.failed.
func failure(err error) *pb.CaseFailed {
	f := &pb.CaseFailed{Message: err.Error(), Fields: salesforce.FieldsOf(err)}
	var e *salesforce.Error
	var mm *salesforce.MultipleMatchesError
	switch {
	case errors.As(err, &e):
		f.Code = e.Code
	case errors.As(err, &mm):
		f.Code = "MULTIPLE_MATCHES"
	}
	// The message names the failing subrequest and field; that is what
	// staff need, without the client's operation prefix.
	if i := strings.Index(f.Message, "subrequest "); i >= 0 {
		f.Message = f.Message[i:]
	}
	return f
}
