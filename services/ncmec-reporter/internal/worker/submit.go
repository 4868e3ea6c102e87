package worker

import (
	"errors"
	"fmt"
	"time"

	"takedown/pkg/events"
	"takedown/pkg/logging"
	"takedown/pkg/ncmec"
	pb "takedown/pkg/proto/takedown/v1"
	build "takedown/services/ncmec-reporter/internal/filing"
	"takedown/services/ncmec-reporter/internal/store"
)

// submit opens the NCMEC report: /submit, whose answer is recorded before
// anything else happens.
func (j *job) submit() error {
	f := j.f
	doc := f.ReportXML
	if doc == nil {
		r, err := build.Report(f.Submitted, j.p.cfg.Reporter, time.Now())
		if err == nil {
			doc, err = ncmec.EncodeReport(r)
		}
		if err != nil {
			return &fatal{step: StepSubmit, desc: "the report cannot be built: " + err.Error()}
		}
	}
	if err := j.p.d.Store.BeginSubmit(j.ctx, f, doc); err != nil {
		return err
	}
	resp, err := j.client.SubmitXML(j.ctx, doc)
	if err := j.p.reached("submit:sent"); err != nil {
		return err
	}
	if err != nil {
		return j.submitFailed(err)
	}
	ev, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.NcmecOpened{
		NcmecReportId: resp.ReportID, Environment: f.Environment, Filing: uint32(f.Filing)})
	if err != nil {
		return err
	}
	if err := j.p.d.Store.Opened(j.ctx, f, resp, ev); err != nil {
		// The id is lost if this never commits: the filing stays
		// "submitting" and counts as an ambiguous /submit.
		return err
	}
	j.log = j.log.With(logging.KeyNCMECReportID, resp.ReportID)
	j.log.Info("NCMEC report opened", logging.KeyRequestID, resp.RequestID)
	if err := j.p.reached("submit"); err != nil {
		return err
	}
	// Announce "filing" to the retraction service; if the bucket is away,
	// the claim before /finish accepts a report it never saw.
	if err := j.p.d.Handover.Opened(j.ctx, f.ReportID, f.Filing); err != nil {
		j.log.Warn("handover: could not mark the report as filing; will claim before finish", logging.KeyErr, err)
	}
	return nil
}

// submitFailed records a failed /submit and maps it to what happens next.
func (j *job) submitFailed(err error) error {
	if j.ctx.Err() != nil {
		return j.ctx.Err() // left "submitting": the next worker records it as ambiguous
	}
	call := store.Call{Endpoint: ncmec.EndpointSubmit, Err: err}
	switch r := judge(StepSubmit, err); r.then {
	case ambiguous:
		if err := j.ambiguous(&call, err.Error()); err != nil {
			return err
		}
		// Open the fresh report after the usual backoff.
		return &transient{step: StepSubmit, err: err}
	case retry:
		// NCMEC answered with an error, or the connection was never
		// made: no report was opened, so trying again is safe.
		if err := j.p.d.Store.SubmitNotApplied(j.ctx, j.f, call); err != nil {
			return err
		}
		return &transient{step: StepSubmit, err: err}
	default:
		j.logCall(call)
		return failure(r, StepSubmit, "", err)
	}
}

// ambiguous records an /submit that may have opened an NCMEC report whose id
// we never learnt. Nobody can finish that report, and NCMEC deletes it
// unfinished by itself, so the filing opens a fresh one (DESIGN.md §5): no
// second finished report can result. After AmbiguousLimit such attempts in
// a row the filing fails for staff instead. call is the failed /submit,
// when there was one to log.
func (j *job) ambiguous(call *store.Call, why string) error {
	f := j.f
	attempt := f.Ambiguous + 1
	gaveUp := attempt >= j.p.cfg.AmbiguousLimit
	desc := "/submit failed ambiguously (" + why + "): NCMEC may have opened a report whose id we never received; " +
		"NCMEC will delete it unfinished."
	requestID := ""
	var e *ncmec.Error
	if call != nil && errors.As(call.Err, &e) {
		requestID = e.RequestID
	}
	ev, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.NcmecSubmitAmbiguous{
		Filing: uint32(f.Filing), Attempt: uint32(attempt), RequestId: requestID, Description: desc, GaveUp: gaveUp})
	if err != nil {
		return err
	}
	if err := j.p.d.Store.SubmitAmbiguous(j.ctx, f, call, ev); err != nil {
		return err
	}
	j.p.ambiguous.Inc()
	if gaveUp {
		return &fatal{step: StepSubmit, desc: fmt.Sprintf("%s Gave up after %d such attempts in a row; NCMEC may be in trouble: file again later.", desc, attempt)}
	}
	j.log.Warn("ambiguous /submit; opening a fresh NCMEC report", logging.KeyAttempt, attempt, "reason", why)
	return nil
}
