// Package retract retracts NCMEC reports that were opened and not finished:
// when the filing failed, when staff ask, when the reporter gave up on a
// report's event, and when a report has sat open too long because its
// failure event was lost. It never races the reporter: both sides move a
// report's state in pkg/handover by compare-and-swap before acting.
package retract

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/handover"
	"takedown/pkg/metrics"
	"takedown/pkg/ncmec"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/services/retraction/internal/store"
)

// Name is the service's name, its actor in events.
const Name = "retraction"

// Config tunes the worker.
type Config struct {
	Poll        time.Duration // how often idle workers look for due retractions
	Lease       time.Duration // a retraction claimed by a worker that died is retried after this
	MinDelay    time.Duration // backoff bounds between failed attempts
	MaxDelay    time.Duration
	GiveUpAfter time.Duration // stop retrying transient failures (and waiting for an NCMEC id) after this
	StaleAfter  time.Duration // the sweep retracts reports opened and unchanged this long
	Sweep       time.Duration // how often the sweep runs
}

// Retractor does the retractions.
type Retractor struct {
	cfg      Config
	store    *store.Store
	handover *handover.Store
	clients  map[string]*ncmec.Client // by environment
	log      *slog.Logger
	outcomes *prometheus.CounterVec
}

// New returns a Retractor.
func New(cfg Config, st *store.Store, ho *handover.Store, clients map[string]*ncmec.Client, m *metrics.Factory, log *slog.Logger) *Retractor {
	r := &Retractor{cfg: cfg, store: st, handover: ho, clients: clients, log: log,
		outcomes: m.Counter("retractions_total", "Retractions ended, by result: retracted, failed, finished_at_ncmec.", "result")}
	// Every result exists from the start, so that an alert on the first
	// failure sees the counter go from 0 to 1.
	for _, res := range []string{store.Retracted, store.Failed, store.FinishedAtNCMEC} {
		r.outcomes.WithLabelValues(res)
	}
	m.GaugeFunc("retractions_pending", "Retractions owed and not yet done.", nil, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, _ := st.Counts(ctx)
		return float64(n[store.Pending])
	})
	return r
}

// Consumer is the durable consumer of the events the service learns from.
var Consumer = stream.ConsumerConfig{
	Durable: Name,
	Subjects: []string{events.ReportSubmitted, events.NcmecOpened, events.NcmecFileUploaded,
		events.NcmecFinished, events.NcmecFailed, events.RetractionRequested},
	Concurrency: 4,
}

// Apply records what an event says about a report's filing; a failure after
// opening, or a staff request, makes a retraction due.
func (r *Retractor) Apply(ctx context.Context, tx pgx.Tx, m stream.Message) error {
	id := m.ReportId
	at := m.OccurredAt.AsTime()
	if id == "" {
		return nil
	}
	if err := r.store.Ensure(ctx, tx, id); err != nil {
		return err
	}
	switch p := m.Payload.(type) {
	case *pb.Envelope_ReportSubmitted:
		env := "production"
		if p.ReportSubmitted.GetReport().GetTest() {
			env = "test"
		}
		return r.store.Known(ctx, tx, id, int(max(1, p.ReportSubmitted.GetReport().GetFiling())), env)
	case *pb.Envelope_NcmecOpened:
		o := p.NcmecOpened
		return r.store.Opened(ctx, tx, id, int(max(1, o.Filing)), o.Environment, o.NcmecReportId, at)
	case *pb.Envelope_NcmecFileUploaded:
		return r.store.Changed(ctx, tx, id, at)
	case *pb.Envelope_NcmecFinished:
		return r.store.NCMECState(ctx, tx, id, "finished", p.NcmecFinished.NcmecReportId)
	case *pb.Envelope_NcmecFailed:
		f := p.NcmecFailed
		if err := r.store.NCMECState(ctx, tx, id, "failed", f.NcmecReportId); err != nil {
			return err
		}
		if !f.ReportOpened {
			return r.nothingOpened(ctx, tx, id)
		}
		reason := fmt.Sprintf("the filing failed at %s: %s", f.Step, f.Description)
		_, err := r.store.Request(ctx, tx, id, reason, Name)
		return err
	case *pb.Envelope_RetractionRequested:
		_, err := r.store.Request(ctx, tx, id, p.RetractionRequested.Reason, actorName(m.Actor))
		return err
	}
	return nil
}

// nothingOpened settles a retraction owed for a filing that failed before
// NCMEC opened anything (the reporter stops before /submit once a retraction
// began): the report is withdrawn without a call to NCMEC.
func (r *Retractor) nothingOpened(ctx context.Context, tx pgx.Tx, id string) error {
	rep, err := r.store.Lock(ctx, tx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && rep.Retraction != store.Pending) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.store.Settle(ctx, tx, id, store.Retracted, ""); err != nil {
		return err
	}
	ev, err := events.New(id, events.Service(Name), &pb.NcmecRetracted{Reason: rep.Reason + " (nothing had been filed with NCMEC)"})
	if err != nil {
		return err
	}
	if err := outbox.Add(ctx, tx, ev); err != nil {
		return err
	}
	r.move(ctx, handover.Key(id, rep.Filing), handover.Retracted)
	r.outcomes.WithLabelValues(store.Retracted).Inc()
	return nil
}

func actorName(a *pb.Actor) string {
	if a.GetName() != "" {
		return a.GetName()
	}
	return a.GetId()
}

// Run retracts due reports until ctx ends, and sweeps for stale ones at
// start and every Sweep.
func (r *Retractor) Run(ctx context.Context) error {
	nextSweep := time.Now()
	for {
		if !time.Now().Before(nextSweep) {
			if err := r.sweep(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("sweep failed; will retry", "err", err)
			}
			nextSweep = time.Now().Add(r.cfg.Sweep)
		}
		ids, err := r.store.Due(ctx, 16, r.cfg.Lease)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("looking for due retractions failed", "err", err)
		}
		for _, id := range ids {
			r.attempt(ctx, id)
		}
		if len(ids) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.cfg.Poll):
		}
	}
}

// claimable returns the handover states from which a retraction may take
// rep's filing: one not yet opened or still filing, and the given others.
// The reporter claims "finishing" before /finish and leaves it there when
// NCMEC refuses the finish (or it gives up retrying): its failure event
// comes after its last call, and a failed filing is never resumed, so once
// that failure is recorded no finish will follow and the claim is ours to
// take. Should the finish have gone through after all (an answer lost, then
// given up on), NCMEC answers the retraction with 5102.
func claimable(rep store.Report, others ...handover.State) []handover.State {
	from := append([]handover.State{handover.None, handover.Filing}, others...)
	if rep.NCMECState == "failed" {
		from = append(from, handover.Finishing)
	}
	return from
}

// sweep makes a retraction due for every report opened at NCMEC and unchanged
// for StaleAfter: NCMEC deletes such reports an hour after their last change,
// but until then a half-filed report is on record.
func (r *Retractor) sweep(ctx context.Context) error {
	ids, err := r.store.Stale(ctx, r.cfg.StaleAfter)
	if err != nil {
		return err
	}
	for _, id := range ids {
		reason := fmt.Sprintf("opened at NCMEC and unchanged for over %v without finishing; its failure event was lost or the reporter stopped", r.cfg.StaleAfter)
		err := database.InTx(ctx, r.store.Pool, func(tx pgx.Tx) error {
			ok, err := r.store.Request(ctx, tx, id, reason, "retraction sweep")
			if err != nil || !ok {
				return err
			}
			ev, err := events.New(id, events.Service(Name), &pb.RetractionRequested{Reason: reason})
			if err != nil {
				return err
			}
			return outbox.Add(ctx, tx, ev)
		})
		if err != nil {
			return err
		}
		r.log.Warn("stale NCMEC report found by the sweep; retracting", "report_id", id)
	}
	return nil
}

// attempt tries one due retraction once.
func (r *Retractor) attempt(ctx context.Context, id string) {
	log := r.log.With("report_id", id)
	rep, err := r.store.Get(ctx, r.store.Pool, id)
	if err != nil || rep.Retraction != store.Pending {
		return
	}
	if rep.NCMECReportID == 0 {
		// Asked before NCMEC answered /submit: the opened event makes it due.
		if rep.FirstTriedAt != nil && time.Since(*rep.FirstTriedAt) > r.cfg.GiveUpAfter {
			r.settle(ctx, rep, store.Failed, &pb.NcmecRetractionFailed{Description: "no NCMEC report was opened for this report within " + r.cfg.GiveUpAfter.String() + "; nothing to retract"})
			return
		}
		_ = r.store.Retry(ctx, id, r.cfg.Poll*5, "waiting for NCMEC to open the report")
		return
	}
	ok, cur, err := r.handover.Claim(ctx, handover.Key(id, rep.Filing), claimable(rep, handover.Retracting), handover.Retracting)
	switch {
	case err != nil:
		_ = r.store.Wait(ctx, id, r.cfg.Poll, "handover unavailable: "+err.Error())
		return
	case !ok && cur == handover.Finishing:
		// The reporter claimed the finish first; its outcome decides.
		_ = r.store.Wait(ctx, id, r.cfg.Poll, "the reporter is finishing the report")
		return
	case !ok && cur == handover.Finished:
		r.settle(ctx, rep, store.FinishedAtNCMEC, &pb.NcmecRetractionFailed{NcmecReportId: rep.NCMECReportID, AlreadyFinished: true,
			Description: "the report was finished before the retraction could begin; only NCMEC can withdraw a finished report"})
		return
	case !ok && cur == handover.Retracted:
		r.settle(ctx, rep, store.Retracted, nil)
		return
	}
	client := r.clients[rep.Environment]
	if client == nil {
		r.settle(ctx, rep, store.Failed, &pb.NcmecRetractionFailed{NcmecReportId: rep.NCMECReportID,
			Description: "no NCMEC credentials are configured for the " + rep.Environment + " environment"})
		return
	}
	_, err = client.Retract(ctx, rep.NCMECReportID)
	code := ncmec.CodeOf(err)
	switch {
	case err == nil, code == ncmec.CodeAlreadyRetracted:
		// 5101: a retraction whose answer was lost, repeated.
		r.settle(ctx, rep, store.Retracted, &pb.NcmecRetracted{NcmecReportId: rep.NCMECReportID, Reason: rep.Reason})
		r.move(ctx, handover.Key(id, rep.Filing), handover.Retracted)
	case code == ncmec.CodeReportNotFound:
		// NCMEC deleted the unfinished report (it expires an hour after its
		// last change): nothing of it remains on record.
		r.settle(ctx, rep, store.Retracted, &pb.NcmecRetracted{NcmecReportId: rep.NCMECReportID,
			Reason: rep.Reason + " (NCMEC had already deleted the unfinished report)"})
		r.move(ctx, handover.Key(id, rep.Filing), handover.Retracted)
	case code == ncmec.CodeAlreadyFinished:
		log.Error("NCMEC says the report is finished although the retraction held the claim; staff must ask NCMEC to withdraw it", "ncmec_report_id", rep.NCMECReportID)
		r.settle(ctx, rep, store.FinishedAtNCMEC, &pb.NcmecRetractionFailed{NcmecReportId: rep.NCMECReportID, Code: int32(code), AlreadyFinished: true,
			Description: "NCMEC answered that the report is finished (5102); it was not retracted: only NCMEC can withdraw it"})
		r.move(ctx, handover.Key(id, rep.Filing), handover.Finished)
	case ncmec.IsRetryable(err) && (rep.FirstTriedAt == nil || time.Since(*rep.FirstTriedAt) < r.cfg.GiveUpAfter):
		delay := backoff(rep.Attempts, r.cfg.MinDelay, r.cfg.MaxDelay)
		log.Warn("retraction failed; will retry", "err", err, "retry_in", delay)
		_ = r.store.Retry(ctx, id, delay, err.Error())
	default:
		r.settle(ctx, rep, store.Failed, &pb.NcmecRetractionFailed{NcmecReportId: rep.NCMECReportID, Code: int32(code), Description: err.Error()})
	}
}

// settle records the outcome and its event (none when payload is nil) in
// one transaction. If that fails, the retraction stays due and is tried
// again after its lease: retracting twice is answered 5101, a success.
func (r *Retractor) settle(ctx context.Context, rep store.Report, outcome string, payload proto.Message) {
	cause := ""
	if f, ok := payload.(*pb.NcmecRetractionFailed); ok {
		cause = f.Description
	}
	err := database.InTx(ctx, r.store.Pool, func(tx pgx.Tx) error {
		if err := r.store.Settle(ctx, tx, rep.ReportID, outcome, cause); err != nil {
			return err
		}
		if payload == nil {
			return nil
		}
		ev, err := events.New(rep.ReportID, events.Service(Name), payload)
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, ev)
	})
	if err != nil {
		r.log.Error("recording the retraction's outcome failed; it will be tried again", "report_id", rep.ReportID, "outcome", outcome, "err", err)
		return
	}
	r.outcomes.WithLabelValues(outcome).Inc()
	r.log.Info("retraction settled", "report_id", rep.ReportID, "outcome", outcome, "ncmec_report_id", rep.NCMECReportID, "cause", cause)
}

// move sets the handover state after the outcome is recorded. If it fails the
// state stays retracting, which keeps the reporter away all the same.
func (r *Retractor) move(ctx context.Context, key string, to handover.State) {
	if _, _, err := r.handover.Claim(ctx, key, []handover.State{handover.Retracting}, to); err != nil {
		r.log.Warn("handover state not updated", "key", key, "to", to, "err", err)
	}
}

func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo << min(attempt, 20)
	if d > hi || d <= 0 {
		d = hi
	}
	return d/2 + rand.N(d/2+1)
}
