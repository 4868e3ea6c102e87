// Package retract retracts NCMEC reports that were opened and not finished:
// when the filing failed, when staff ask, when the reporter gave up on a
// report's event, and when a report has sat open too long because its
// failure event was lost. It never races the reporter: both sides move a
// filing's claim in pkg/filing's hand-over by compare-and-swap before
// acting. It also retracts, on staff's word, an NCMEC report this system
// lost track of (an /submit whose answer was lost).
//
// What it knows of a report's filing is pkg/filing's fold of the report's
// events (its own included), kept in the report's row: the same state
// intake and case-writer show.
package retract

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"takedown/pkg/backoff"
	"takedown/pkg/events"
	"takedown/pkg/filing"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/pkg/ncmec"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/services/retraction/internal/store"
)

// Name is the service's name, its actor in events.
const Name = events.Retraction

// bySweep is who asked for a retraction the sweep found owed.
const bySweep = "retraction sweep"

// byService are the requesters of the retractions the service scheduled by
// itself (a failure, the sweep, the advisories): a staff request replaces
// theirs.
var byService = []string{Name, bySweep}

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
	handover *filing.Handover
	clients  map[string]*ncmec.Client // by environment
	log      *slog.Logger
	outcomes *prometheus.CounterVec
}

// New returns a Retractor.
func New(cfg Config, st *store.Store, ho *filing.Handover, clients map[string]*ncmec.Client, m *metrics.Factory, log *slog.Logger) *Retractor {
	r := &Retractor{cfg: cfg, store: st, handover: ho, clients: clients, log: log,
		outcomes: m.Counter("retractions_total", "Retractions ended, by result: retracted, failed, finished_at_ncmec.", "result")}
	// Every result exists from the start, so that an alert on the first
	// failure sees the counter go from 0 to 1.
	for _, res := range []string{store.Retracted, store.Failed, store.FinishedAtNCMEC} {
		r.outcomes.WithLabelValues(res)
	}
	m.QueryGauge("retractions_pending", "Retractions owed and not yet done.", nil, func(ctx context.Context) (float64, error) {
		n, err := st.Counts(ctx)
		return float64(n[store.Pending]), err
	})
	return r
}

// Consumer is the durable consumer of the events the service learns from:
// every event that moves a filing (the fold needs them all to agree with
// intake's), and staff's requests.
var Consumer = stream.ConsumerConfig{
	Durable: Name,
	Subjects: []string{events.ReportSubmitted, events.NcmecOpened, events.NcmecFileUploaded,
		events.NcmecFinished, events.NcmecFailed, events.NcmecSubmitAmbiguous, events.ReportClosed,
		events.RetractionRequested},
	Concurrency: 4,
	Linger:      stream.OffPathLinger,
}

// Apply folds the events into their reports' filings; when an event is
// about the current filing, a failure after opening or a staff request
// makes a retraction due, and a failure before opening settles a
// retraction owed. A report's row is locked once and saved once for its
// events that follow one another (the consumer sorts a batch by report),
// except that it is saved before an event's retraction is requested or
// settled, which read and write the row, and locked again after.
func (r *Retractor) Apply(ctx context.Context, tx pgx.Tx, ms []stream.Message) error {
	var f *store.Fold // the row of the events before, not saved yet
	save := func() error {
		if f == nil {
			return nil
		}
		err := r.store.Save(ctx, tx, f)
		f = nil
		return err
	}
	for _, m := range ms {
		id := m.ReportId
		if id == "" {
			continue
		}
		var ev filing.Event
		req := m.GetRetractionRequested()
		switch {
		case req != nil && req.NcmecReportId != 0:
			if err := r.recordLost(ctx, tx, id, req, actorName(m.Actor)); err != nil {
				return err
			}
			continue
		case req != nil:
			// A request moves no state; folding its filing number tells
			// whether it is about the current filing.
			ev = filing.Event{Filing: int(max(req.Filing, 1)), At: m.OccurredAt.AsTime()}
		default:
			var ok bool
			if ev, ok = filing.Of(m.Envelope); !ok {
				continue
			}
		}
		if f != nil && f.ReportID != id {
			if err := save(); err != nil {
				return err
			}
		}
		if f == nil {
			var err error
			if f, err = r.store.Lock(ctx, tx, id); err != nil {
				return err
			}
		}
		// An earlier filing's event belongs to the history only: its
		// failure owes nothing, the next filing being a new NCMEC report.
		current := f.Apply(ev)
		failed := ev.State == filing.Failed && f.NCMECState == filing.Failed
		if !current || (req == nil && !failed) {
			continue
		}
		// A retraction to request or settle: the row is saved first, as
		// those read and write it.
		rep := f.Report
		if err := save(); err != nil {
			return err
		}
		var err error
		switch fail := m.GetNcmecFailed(); {
		case req != nil:
			_, err = r.store.Request(ctx, tx, id, req.Reason, actorName(m.Actor), false)
		case !fail.ReportOpened && rep.NCMECReportID == 0:
			err = r.nothingOpened(ctx, tx, rep)
		default:
			_, err = r.store.Request(ctx, tx, id, fmt.Sprintf("the filing failed at %s: %s", fail.Step, fail.Description), Name, false)
		}
		if err != nil {
			return err
		}
	}
	return save()
}

// fold folds ev into the report's row, locked for the rest of tx, and
// reports whether ev is about the current filing.
func (r *Retractor) fold(ctx context.Context, tx pgx.Tx, id string, ev filing.Event) (bool, error) {
	f, err := r.store.Lock(ctx, tx, id)
	if err != nil {
		return false, err
	}
	current := f.Apply(ev)
	return current, r.store.Save(ctx, tx, f)
}

// publish adds the service's event to the outbox within tx and folds it
// into the report's row at once, so that the row says what the service
// said (a retraction makes the filing retracted; 5102 makes it finished).
func (r *Retractor) publish(ctx context.Context, tx pgx.Tx, actor *pb.Actor, reportID string, payload proto.Message) error {
	env, err := events.New(reportID, actor, payload)
	if err != nil {
		return err
	}
	if err := outbox.Add(ctx, tx, env); err != nil {
		return err
	}
	if ev, ok := filing.Of(env); ok {
		_, err = r.fold(ctx, tx, reportID, ev)
	}
	return err
}

// nothingOpened settles a retraction owed for a filing that failed before
// NCMEC opened anything (the reporter stops before /submit once a retraction
// began): the report is withdrawn without a call to NCMEC.
func (r *Retractor) nothingOpened(ctx context.Context, tx pgx.Tx, rep store.Report) error {
	if rep.Retraction != store.Pending {
		return nil
	}
	if _, err := r.store.Settle(ctx, tx, store.Claim{ReportID: rep.ReportID}, rep.Filing, store.Retracted, ""); err != nil {
		return err
	}
	err := r.publish(ctx, tx, events.Service(Name), rep.ReportID, &pb.NcmecRetracted{
		Reason: rep.Reason + " (nothing had been filed with NCMEC)", Filing: uint32(rep.Filing), Environment: rep.Environment})
	if err != nil {
		return err
	}
	if err := r.handover.Retracted(ctx, rep.ReportID, rep.Filing); err != nil {
		r.log.Warn("hand-over not marked retracted; its retracting claim keeps the reporter away all the same", logging.KeyReportID, rep.ReportID, logging.KeyErr, err)
	}
	r.outcomes.WithLabelValues(store.Retracted).Inc()
	return nil
}

// recordLost records a staff request to retract an NCMEC report this
// system lost track of. The endpoint records it before publishing the
// request; this makes the event, wherever it came from, enough.
func (r *Retractor) recordLost(ctx context.Context, tx pgx.Tx, id string, req *pb.RetractionRequested, by string) error {
	if req.Environment == "" {
		r.log.Error("a request to retract a lost NCMEC report names no environment; ignored", logging.KeyReportID, id, logging.KeyNCMECReportID, req.NcmecReportId)
		return nil
	}
	_, err := r.store.RequestLost(ctx, tx, store.Lost{ReportID: id, NCMECReportID: req.NcmecReportId, Environment: req.Environment,
		Filing: int(max(req.Filing, 1)), Reason: req.Reason, RequestedBy: by}, false)
	return err
}

func actorName(a *pb.Actor) string {
	if a.GetName() != "" {
		return a.GetName()
	}
	return a.GetId()
}

// Run retracts due reports (and due lost NCMEC reports) until ctx ends,
// and sweeps for stale ones at start and every Sweep.
func (r *Retractor) Run(ctx context.Context) error {
	nextSweep := time.Now()
	for {
		if !time.Now().Before(nextSweep) {
			if err := r.sweep(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("sweep failed; will retry", logging.KeyErr, err)
			}
			nextSweep = time.Now().Add(r.cfg.Sweep)
		}
		ids, err := r.store.Due(ctx, 16, r.cfg.Lease)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("looking for due retractions failed", logging.KeyErr, err)
		}
		for _, c := range ids {
			r.attempt(ctx, c)
		}
		lost, err := r.store.DueLost(ctx, 16, r.cfg.Lease)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("looking for due retractions of lost NCMEC reports failed", logging.KeyErr, err)
		}
		for _, l := range lost {
			r.attemptLost(ctx, l)
		}
		if len(ids)+len(lost) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.cfg.Poll):
		}
	}
}

// sweep makes a retraction due for every report open at NCMEC (opened or
// uploading) and unchanged for StaleAfter: NCMEC deletes such reports an
// hour after their last change, but until then a half-filed report is on
// record.
func (r *Retractor) sweep(ctx context.Context) error {
	ids, err := r.store.Stale(ctx, r.cfg.StaleAfter)
	if err != nil {
		return err
	}
	for _, id := range ids {
		reason := fmt.Sprintf("opened at NCMEC and unchanged for over %v without finishing; its failure event was lost or the reporter stopped", r.cfg.StaleAfter)
		if err := r.requestFor(ctx, id, reason, bySweep); err != nil {
			return err
		}
		r.log.Warn("stale NCMEC report found by the sweep; retracting", logging.KeyReportID, id)
	}
	return nil
}

// requestFor makes a retraction of the report's current filing due on the
// service's own initiative, and says so in a retraction.requested event.
func (r *Retractor) requestFor(ctx context.Context, id, reason, by string) error {
	return r.store.InTx(ctx, func(tx pgx.Tx) error {
		rep, err := r.store.Lock(ctx, tx, id)
		if err != nil {
			return err
		}
		ok, err := r.store.Request(ctx, tx, id, reason, by, false)
		if err != nil || !ok {
			return err
		}
		return r.publish(ctx, tx, events.Service(Name), id, &pb.RetractionRequested{Reason: reason,
			Filing: uint32(rep.Filing), Environment: rep.Environment})
	})
}

// attempt tries one due retraction of a report's filing once.
func (r *Retractor) attempt(ctx context.Context, c store.Claim) {
	id := c.ReportID
	rep, err := r.store.Get(ctx, id)
	if err != nil || rep.Retraction != store.Pending {
		return
	}
	if rep.NCMECReportID == 0 || rep.Environment == "" {
		// Asked before NCMEC answered /submit: the opened event makes it
		// due. An id is never sent to an environment merely assumed.
		if rep.FirstTriedAt != nil && time.Since(*rep.FirstTriedAt) > r.cfg.GiveUpAfter {
			r.settle(ctx, c, rep, store.Failed, r.failed(rep, 0, "no NCMEC report was opened for this report within "+r.cfg.GiveUpAfter.String()+"; nothing to retract", false))
			return
		}
		_ = r.store.Retry(ctx, c, rep.Filing, r.cfg.Poll*5, "waiting for NCMEC to open the report")
		return
	}
	// Once the filing has failed, a finish the reporter claimed will not
	// follow (a failed filing is never resumed): its claim is ours to take,
	// and NCMEC's 5102 tells us should the finish have gone through.
	claim, err := r.handover.ClaimRetract(ctx, id, rep.Filing, rep.NCMECState == filing.Failed)
	switch {
	case err != nil:
		_ = r.store.Wait(ctx, c, rep.Filing, r.cfg.Poll, "hand-over unavailable: "+err.Error())
		return
	case claim == filing.FinishInProgress:
		// The reporter claimed the finish first; its outcome decides.
		_ = r.store.Wait(ctx, c, rep.Filing, r.cfg.Poll, "the reporter is finishing the report")
		return
	case claim == filing.FinishedFirst:
		r.settle(ctx, c, rep, store.FinishedAtNCMEC, r.failed(rep, 0, "the report was finished before the retraction could begin; only NCMEC can withdraw a finished report", true))
		return
	case claim == filing.RetractedBefore:
		r.settle(ctx, c, rep, store.Retracted, nil)
		return
	}
	outcome, code, detail := r.retract(ctx, rep.Environment, rep.NCMECReportID, rep.FirstTriedAt)
	switch outcome {
	case "":
		delay := backoff.Delay(rep.Attempts, r.cfg.MinDelay, r.cfg.MaxDelay)
		r.log.Warn("retraction failed; will retry", logging.KeyReportID, id, logging.KeyErr, detail, logging.KeyRetryIn, delay)
		_ = r.store.Retry(ctx, c, rep.Filing, delay, detail)
	case store.Retracted:
		r.settle(ctx, c, rep, outcome, &pb.NcmecRetracted{NcmecReportId: rep.NCMECReportID, Reason: rep.Reason + detail,
			Filing: uint32(rep.Filing), Environment: rep.Environment})
		if err := r.handover.Retracted(ctx, id, rep.Filing); err != nil {
			r.log.Warn("hand-over not marked retracted; its retracting claim keeps the reporter away all the same", logging.KeyReportID, id, logging.KeyErr, err)
		}
	case store.FinishedAtNCMEC:
		r.log.Error("NCMEC says the report is finished although the retraction held the claim; staff must ask NCMEC to withdraw it",
			logging.KeyReportID, id, logging.KeyNCMECReportID, rep.NCMECReportID)
		r.settle(ctx, c, rep, outcome, r.failed(rep, code, detail, true))
		if err := r.handover.FinishedAtNCMEC(ctx, id, rep.Filing); err != nil {
			r.log.Warn("hand-over not marked finished", logging.KeyReportID, id, logging.KeyErr, err)
		}
	default:
		r.settle(ctx, c, rep, outcome, r.failed(rep, code, detail, false))
	}
}

// failed is the retraction_failed event of rep's filing.
func (r *Retractor) failed(rep store.Report, code int32, description string, finished bool) *pb.NcmecRetractionFailed {
	return &pb.NcmecRetractionFailed{NcmecReportId: rep.NCMECReportID, Code: code, Description: description,
		AlreadyFinished: finished, Filing: uint32(rep.Filing), Environment: rep.Environment}
}

// retract calls NCMEC's /retract for report nid in env and says what the
// answer means: an outcome (store.Retracted, store.FinishedAtNCMEC,
// store.Failed) with NCMEC's code and a detail (for Retracted, a note to
// add to the reason), or "" when a transient failure is to be retried.
func (r *Retractor) retract(ctx context.Context, env string, nid int64, firstTried *time.Time) (outcome string, code int32, detail string) {
	client := r.clients[env]
	if client == nil {
		return store.Failed, 0, "no NCMEC credentials are configured for the " + env + " environment"
	}
	_, err := client.Retract(ctx, nid)
	c := ncmec.CodeOf(err)
	switch {
	case err == nil, c == ncmec.CodeAlreadyRetracted:
		// 5101: a retraction whose answer was lost, repeated.
		return store.Retracted, 0, ""
	case c == ncmec.CodeReportNotFound:
		// NCMEC deletes an unfinished report by itself (an hour after its
		// last change): nothing of it remains on record.
		return store.Retracted, int32(c), " (NCMEC has no such report (5001): it had already deleted the unfinished report)"
	case c == ncmec.CodeAlreadyFinished:
		// 5102 means finished at NCMEC (DESIGN.md §5).
		return store.FinishedAtNCMEC, int32(c), "NCMEC answered that the report is finished (5102); it was not retracted: only NCMEC can withdraw it"
	case ncmec.IsRetryable(err) && (firstTried == nil || time.Since(*firstTried) < r.cfg.GiveUpAfter):
		return "", int32(c), err.Error()
	}
	return store.Failed, int32(c), err.Error()
}

// settle records the outcome and its event (none when payload is nil) in
// one transaction. If that fails, the retraction stays due and is tried
// again after its lease: retracting twice is answered 5101, a success.
func (r *Retractor) settle(ctx context.Context, c store.Claim, rep store.Report, outcome string, payload proto.Message) {
	cause := ""
	if f, ok := payload.(*pb.NcmecRetractionFailed); ok {
		cause = f.Description
	}
	err := r.store.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := r.store.Settle(ctx, tx, c, rep.Filing, outcome, cause); err != nil {
			return err
		}
		if payload == nil {
			return nil
		}
		// Published even if a newer filing has begun meanwhile: it is true
		// of the filing it names, and the fold files it under that one.
		return r.publish(ctx, tx, events.Service(Name), rep.ReportID, payload)
	})
	if errors.Is(err, store.ErrLeaseLost) {
		r.log.Warn("the retraction was taken over by another worker while this one waited for NCMEC; its outcome stands",
			logging.KeyReportID, rep.ReportID, logging.KeyOutcome, outcome)
		return
	}
	if err != nil {
		r.log.Error("recording the retraction's outcome failed; it will be tried again", logging.KeyReportID, rep.ReportID, logging.KeyOutcome, outcome, logging.KeyErr, err)
		return
	}
	r.outcomes.WithLabelValues(outcome).Inc()
	r.log.Info("retraction settled", logging.KeyReportID, rep.ReportID, logging.KeyFiling, rep.Filing, logging.KeyOutcome, outcome, logging.KeyNCMECReportID, rep.NCMECReportID, logging.KeyCause, cause)
}

// attemptLost tries once to retract an NCMEC report this system lost track
// of. It holds no hand-over claim: that report is no filing's, and nobody
// can finish a report whose id we never learnt (DESIGN.md §5).
func (r *Retractor) attemptLost(ctx context.Context, l store.Lost) {
	log := r.log.With(logging.KeyReportID, l.ReportID, logging.KeyNCMECReportID, l.NCMECReportID, logging.KeyEnvironment, l.Environment)
	outcome, code, detail := r.retract(ctx, l.Environment, l.NCMECReportID, l.FirstTriedAt)
	var payload proto.Message
	switch outcome {
	case "":
		delay := backoff.Delay(l.Attempts, r.cfg.MinDelay, r.cfg.MaxDelay)
		log.Warn("retraction of a lost NCMEC report failed; will retry", logging.KeyErr, detail, logging.KeyRetryIn, delay)
		_ = r.store.RetryLost(ctx, l, delay, detail)
		return
	case store.Retracted:
		payload = &pb.NcmecRetracted{NcmecReportId: l.NCMECReportID, Reason: l.Reason + detail,
			Filing: uint32(l.Filing), Environment: l.Environment, Lost: true}
		detail = ""
	default:
		if outcome == store.FinishedAtNCMEC {
			log.Error("an NCMEC report named as lost is finished at NCMEC: check the id with NCMEC; only NCMEC can withdraw it")
		}
		payload = &pb.NcmecRetractionFailed{NcmecReportId: l.NCMECReportID, Code: code, Description: detail,
			AlreadyFinished: outcome == store.FinishedAtNCMEC, Filing: uint32(l.Filing), Environment: l.Environment, Lost: true}
	}
	err := r.store.InTx(ctx, func(tx pgx.Tx) error {
		if err := r.store.SettleLost(ctx, tx, l, outcome, detail); err != nil {
			return err
		}
		return r.publish(ctx, tx, events.Service(Name), l.ReportID, payload)
	})
	if errors.Is(err, store.ErrLeaseLost) {
		log.Warn("the lost retraction was taken over by another worker while this one waited for NCMEC; its outcome stands", logging.KeyOutcome, outcome)
		return
	}
	if err != nil {
		log.Error("recording the lost retraction's outcome failed; it will be tried again", logging.KeyOutcome, outcome, logging.KeyErr, err)
		return
	}
	r.outcomes.WithLabelValues(outcome).Inc()
	log.Info("retraction of a lost NCMEC report settled", logging.KeyOutcome, outcome, logging.KeyCause, detail)
}
