package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"takedown/pkg/backoff"
	"takedown/pkg/events"
	"takedown/pkg/logging"
	"takedown/pkg/ncmec"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/ncmec-reporter/internal/store"
	"takedown/services/ncmec-reporter/internal/worker/pool"
)

// errStopped unwinds a worker on shutdown between steps.
var errStopped = pool.ErrStopped

// job is one filing in a worker's hands.
type job struct {
	p      *Pool
	f      *store.Filing
	stop   context.Context // ends on shutdown
	ctx    context.Context // the job's: ends on crash or lost lease
	client NCMEC
	log    *slog.Logger
}

// drive is the pool's Work: it takes the filing as far as it goes now and
// records where that left it.
func (p *Pool) drive(stop, ctx context.Context, f *store.Filing, log *slog.Logger) error {
	j := &job{p: p, f: f, stop: stop, ctx: ctx, log: log}
	if c := p.d.Clients[f.Environment]; c != nil {
		j.client = c
	}
	err := j.run()
	var (
		tr *transient
		ft *fatal
	)
	switch {
	case err == nil:
	case errors.Is(err, errCrashed):
	case errors.Is(err, errRetracted):
		if err := p.d.Store.Retracted(ctx, f); err != nil {
			log.Error("record retraction takeover", logging.KeyErr, err)
			return nil
		}
		p.outcomes.WithLabelValues("retracted").Inc()
		log.Info("retraction took over the report; filing stopped")
	case errors.Is(err, store.ErrLeaseLost):
		log.Warn("filing left to the worker that holds it now")
	case ctx.Err() != nil:
		// Crash or lost lease: nothing more may be written.
	case errors.Is(err, errStopped):
		return err // the pool releases the filing
	case errors.As(err, &ft):
		j.fail(ft, nil)
	case errors.As(err, &tr):
		j.retry(tr)
	default:
		// Our own storage or similar: retry like a transient failure.
		j.retry(&transient{step: "internal", err: err})
	}
	return nil
}

// run drives the filing as far as it goes now.
func (j *job) run() error {
	f := j.f
	if j.client == nil {
		return &fatal{step: StepSubmit, desc: fmt.Sprintf("no NCMEC credentials are configured for the %s environment (set NCMEC_TEST_URL, NCMEC_TEST_USERNAME and NCMEC_TEST_PASSWORD)", f.Environment)}
	}
	if f.State == store.StateSubmitting {
		// /submit was sent (or about to be) and its answer never recorded.
		if err := j.ambiguous(nil, "the reporter stopped after sending /submit and before recording NCMEC's answer"); err != nil {
			return err
		}
	}
	if f.State == store.StatePending {
		// Staff may have retracted before anything was sent: then nothing
		// is, and the failure event (nothing opened) tells the retraction
		// service there is no NCMEC report to retract.
		if begun, err := j.p.d.Handover.RetractionBegun(j.ctx, f.ReportID, f.Filing); err == nil && begun {
			return &fatal{step: StepSubmit, desc: "staff asked for a retraction before the report was filed with NCMEC; nothing was sent"}
		}
		if err := j.submit(); err != nil {
			return err
		}
	}
	if f.NCMECID == 0 {
		return &fatal{step: StepSubmit, desc: "internal: an open filing without an NCMEC report id"}
	}
	// Retraction may have taken over while this filing waited.
	if begun, err := j.p.d.Handover.RetractionBegun(j.ctx, f.ReportID, f.Filing); err == nil && begun {
		return errRetracted
	}
	if err := j.files(); err != nil {
		return err
	}
	if j.stop.Err() != nil {
		return errStopped
	}
	return j.finish()
}

// logCall records an NCMEC exchange that changes nothing else. The
// exchange log is evidence of what NCMEC was told: a failure to keep it is
// logged, never dropped.
func (j *job) logCall(c store.Call) {
	if err := j.p.d.Store.LogCall(j.ctx, j.f, c); err != nil {
		j.log.Warn("log NCMEC call", logging.KeyStep, c.Endpoint, logging.KeyErr, err)
	}
}

// callFailed logs a failed NCMEC call after /submit and maps it to what
// happens next.
func (j *job) callFailed(step string, idx *int, fileID string, err error) error {
	if j.ctx.Err() != nil {
		return j.ctx.Err()
	}
	j.logCall(store.Call{Endpoint: step, FileIdx: idx, Err: err})
	return j.outcome(step, fileID, err)
}

// outcome maps a failed NCMEC call after /submit, already logged, to what
// happens next.
func (j *job) outcome(step, fileID string, err error) error {
	r := judge(step, err)
	switch r.then {
	case retry:
		return &transient{step: step, err: err}
	case retracted:
		if begun, herr := j.p.d.Handover.RetractionBegun(j.ctx, j.f.ReportID, j.f.Filing); herr == nil && begun {
			return errRetracted
		}
	}
	return failure(r, step, fileID, err)
}

// retry schedules the next attempt with exponential backoff and jitter, or
// gives up when that would pass the window NCMEC leaves an unfinished
// report (1 hour after its last change; we stop earlier).
func (j *job) retry(t *transient) {
	f := j.f
	delay := backoff.Delay(f.Attempts, j.p.cfg.BackoffMin, j.p.cfg.BackoffMax)
	deadline := f.LastChange.Add(j.p.cfg.Window)
	if next := time.Now().Add(delay); next.After(deadline) {
		j.fail(&fatal{step: t.step, code: ncmec.CodeOf(t.err), desc: fmt.Sprintf(
			"gave up after %d failed attempts: the next would pass the retry window (%v after the last change at %s; NCMEC deletes an unfinished report 1 hour after its last change). Last error: %v",
			f.Attempts+1, j.p.cfg.Window, f.LastChange.UTC().Format(time.RFC3339), t.err)}, nil)
		return
	}
	if t.step == "internal" {
		t.step = ""
	}
	if err := j.p.d.Store.Retry(j.ctx, f, time.Now().Add(delay), store.Call{Err: t.err}); err != nil {
		j.log.Error("schedule retry", logging.KeyErr, err)
		return
	}
	j.p.retries.WithLabelValues(stepLabel(t.step)).Inc()
	j.log.Warn("transient failure; will retry", logging.KeyStep, t.step, logging.KeyErr, t.err, logging.KeyAttempt, f.Attempts+1, logging.KeyRetryIn, delay)
}

func stepLabel(s string) string {
	if s == "" {
		return "internal"
	}
	return s
}

func (j *job) fail(ft *fatal, call *store.Call) {
	f := j.f
	ev, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.NcmecFailed{
		Step: ft.step, Code: int32(ft.code), Description: ft.desc,
		ReportOpened: f.NCMECID != 0, NcmecReportId: f.NCMECID, FileId: ft.fileID, Filing: uint32(f.Filing)})
	if err != nil {
		j.log.Error("build failed event", logging.KeyErr, err)
		return
	}
	if err := j.p.d.Store.Failed(j.ctx, f, ft.step, ft.code, ft.desc, call, ev); err != nil {
		j.log.Error("record failure; will be retried", logging.KeyErr, err)
		return
	}
	j.p.outcomes.WithLabelValues("failed").Inc()
	j.log.Error("NCMEC filing failed", logging.KeyStep, ft.step, logging.KeyCode, ft.code, "description", ft.desc, logging.KeyFileID, ft.fileID)
}
