// Package worker files reports with NCMEC. A pool of workers claims filings
// from PostgreSQL under a lease and drives each through
//
//	submit → upload(i) → fileinfo(i) → finish
//
// recording every NCMEC answer before the next call, so that a worker that
// dies anywhere leaves a filing another worker resumes from its last
// recorded answer. /submit is never repeated once it may have reached NCMEC;
// transient failures are retried with backoff inside NCMEC's expiry window;
// everything else ends the filing with takedown.ncmec.failed.
package worker

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/filing"
	"takedown/pkg/keyring"
	"takedown/pkg/metrics"
	"takedown/pkg/ncmec"
	pb "takedown/pkg/proto/takedown/v1"
	build "takedown/services/ncmec-reporter/internal/filing"
	"takedown/services/ncmec-reporter/internal/store"
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
	// CrashAfter names a point (submit:sent, submit, upload:<i>, fileinfo:<i>,
	// finish:sent, finish) where the pool dies as if killed: tests only.
	CrashAfter string
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
	// Kill is called at the CrashAfter point; it must stop the whole
	// service at once (tests only).
	Kill func()
}

// Pool is the set of workers.
type Pool struct {
	cfg  Config
	d    Deps
	wake *signal
	id   string

	crashed  atomic.Bool
	kill     context.CancelFunc
	outcomes *prometheus.CounterVec
	retries  *prometheus.CounterVec
	inFlight prometheus.Gauge
	// ambiguous counts /submit attempts that may have opened a report we
	// never learnt the id of.
	ambiguous prometheus.Counter
}

// New returns a pool.
func New(cfg Config, d Deps) *Pool {
	cfg.defaults()
	p := &Pool{cfg: cfg, d: d, wake: newSignal(), id: cfg.Instance + "#" + randomID()}
	m := d.Metrics
	p.outcomes = m.Counter("filings_total", "Filings ended, by outcome (finished, failed, retracted).", "outcome")
	p.retries = m.Counter("retries_total", "Transient failures scheduled for a retry, by step.", "step")
	p.ambiguous = m.Counter("ambiguous_submits_total", "/submit attempts whose answer was lost: NCMEC may hold an unfinished report it will delete; a fresh report is opened.").WithLabelValues()
	p.inFlight = m.Gauge("filings_in_flight", "Filings being driven by a worker now.").WithLabelValues()
	m.GaugeFunc("oldest_open_report_age_seconds", "Age of the oldest NCMEC report opened and not yet finished (0 when none).", nil, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, _ := d.Store.Stats(ctx)
		return st.OldestOpenSecs
	})
	m.GaugeFunc("filings_unfinished", "Filings recorded and not yet finished, failed or retracted.", nil, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, _ := d.Store.Stats(ctx)
		return float64(st.Unfinished)
	})
	return p
}

// Wake tells idle workers that a filing was recorded.
func (p *Pool) Wake() { p.wake.broadcast() }

// Run drives filings until ctx ends. On shutdown a worker stops between
// steps; a call in progress is completed (an aborted /submit would be
// ambiguous) except uploads, which are cancelled and repeated later.
func (p *Pool) Run(ctx context.Context) error {
	// hard outlives ctx so that calls in progress complete; it ends when
	// every worker has returned, or at once on a (test) crash.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop, cancelStop := context.WithCancel(ctx)
	defer cancelStop()
	p.kill = func() { cancelStop(); cancelHard() }

	// This instance's previous life is dead: its filings are ours to
	// resume now. (Should this fail, their leases end on their own.)
	if n, err := p.d.Store.ReleaseInstance(ctx, p.cfg.Instance+"#"); err != nil {
		p.d.Log.Warn("resume the previous instance's filings", "instance", p.cfg.Instance, "err", err)
	} else if n > 0 {
		p.d.Log.Info("resuming the filings a previous instance left", "instance", p.cfg.Instance, "filings", n)
	}

	var wg sync.WaitGroup
	for i := range p.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(stop, hard, p.id+"-"+strconv.Itoa(i))
		}()
	}
	wg.Wait()
	return nil
}

func (p *Pool) loop(stop, hard context.Context, owner string) {
	for stop.Err() == nil {
		woken := p.wake.wait()
		f, err := p.d.Store.Claim(stop, owner, p.cfg.Lease)
		if err != nil {
			if stop.Err() == nil {
				p.d.Log.Warn("claim filing", "err", err)
			}
		}
		if f != nil {
			p.drive(stop, hard, f)
			continue // look for more at once
		}
		select {
		case <-stop.Done():
		case <-woken:
		case <-time.After(p.cfg.Poll):
		}
	}
}

// errCrashed unwinds a worker at a CrashAfter point without writing.
var errCrashed = errors.New("crashed (test hook)")

// errStopped unwinds a worker on shutdown between steps.
var errStopped = errors.New("stopped")

// crashAt fires the test hook at point.
func (p *Pool) crashAt(point string) error {
	if p.cfg.CrashAfter != point || !p.crashed.CompareAndSwap(false, true) {
		return nil
	}
	p.d.Log.Warn("crashing at the configured point (test hook)", "point", point)
	p.kill()
	if p.d.Kill != nil {
		p.d.Kill()
	}
	return errCrashed
}

// transient is a failure worth retrying later.
type transient struct {
	step string
	err  error
}

func (t *transient) Error() string { return t.step + ": " + t.err.Error() }
func (t *transient) Unwrap() error { return t.err }

// fatal ends the filing with takedown.ncmec.failed.
type fatal struct {
	step   string
	code   int
	desc   string
	fileID string // ours, when about one file
}

func (f *fatal) Error() string { return fmt.Sprintf("%s: %s", f.step, f.desc) }

// retracted means the retraction service holds the report now.
var errRetracted = errors.New("retraction took over")

// job is one filing in a worker's hands.
type job struct {
	p      *Pool
	f      *store.Filing
	stop   context.Context // ends on shutdown
	ctx    context.Context // ends on crash or lost lease
	client *ncmec.Client
	log    *slog.Logger
}

func (p *Pool) drive(stop, hard context.Context, f *store.Filing) {
	p.inFlight.Inc()
	defer p.inFlight.Dec()
	ctx, cancel := context.WithCancel(hard)
	defer cancel()
	log := p.d.Log.With("report_id", f.ReportID, "filing", f.Filing, "environment", f.Environment)
	if f.NCMECID != 0 {
		log = log.With("ncmec_report_id", f.NCMECID)
	}

	// Keep the lease while working; losing it means another worker took
	// the filing over (this one stalled past the lease): stop at once.
	renewDone := make(chan struct{})
	defer close(renewDone)
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
				if err := p.d.Store.Renew(ctx, f, p.cfg.Lease); errors.Is(err, store.ErrLeaseLost) {
					log.Error("lease lost; another worker has the filing", "err", err)
					cancel()
					return
				} else if err != nil && ctx.Err() == nil {
					log.Warn("renew lease", "err", err)
				}
			}
		}
	}()

	j := &job{p: p, f: f, stop: stop, ctx: ctx, client: p.d.Clients[f.Environment], log: log}
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
			log.Error("record retraction takeover", "err", err)
			return
		}
		p.outcomes.WithLabelValues("retracted").Inc()
		log.Info("retraction took over the report; filing stopped")
	case errors.Is(err, store.ErrLeaseLost):
		log.Warn("filing left to the worker that holds it now")
	case ctx.Err() != nil:
		// Crash or lost lease: nothing more may be written.
	case errors.Is(err, errStopped):
		_ = p.d.Store.Release(ctx, f)
	case errors.As(err, &ft):
		j.fail(ft, nil)
	case errors.As(err, &tr):
		j.retry(tr)
	default:
		// Our own storage or similar: retry like a transient failure.
		j.retry(&transient{step: "internal", err: err})
	}
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
	j.log.Warn("ambiguous /submit; opening a fresh NCMEC report", "attempt", attempt, "reason", why)
	return nil
}

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
	if err := j.p.crashAt("submit:sent"); err != nil {
		return err
	}
	if err != nil {
		call := store.Call{Endpoint: ncmec.EndpointSubmit, Err: err}
		switch {
		case j.ctx.Err() != nil:
			return j.ctx.Err() // left "submitting": the next worker records it as ambiguous
		case ncmec.IsAmbiguous(err):
			if err := j.ambiguous(&call, err.Error()); err != nil {
				return err
			}
			// Open the fresh report after the usual backoff.
			return &transient{step: StepSubmit, err: err}
		case ncmec.IsRetryable(err):
			// NCMEC answered with an error, or the connection was never
			// made: no report was opened, so trying again is safe.
			if err := j.p.d.Store.SubmitNotApplied(j.ctx, f, call); err != nil {
				return err
			}
			return &transient{step: StepSubmit, err: err}
		default:
			_ = j.p.d.Store.LogCall(j.ctx, f, call)
			return &fatal{step: StepSubmit, code: ncmec.CodeOf(err), desc: describe(err)}
		}
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
	j.log = j.log.With("ncmec_report_id", resp.ReportID)
	j.log.Info("NCMEC report opened", "request_id", resp.RequestID)
	if err := j.p.crashAt("submit"); err != nil {
		return err
	}
	// Announce "filing" to the retraction service; if the bucket is away,
	// the claim before /finish accepts a report it never saw.
	if err := j.p.d.Handover.Opened(j.ctx, f.ReportID, f.Filing); err != nil {
		j.log.Warn("handover: could not mark the report as filing; will claim before finish", "err", err)
	}
	return nil
}

// files uploads and describes every file not done yet, a few at a time.
func (j *job) files() error {
	sem := make(chan struct{}, j.p.cfg.UploadParallel)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return first != nil }
	for i := range j.f.Files {
		file := &j.f.Files[i]
		if file.Described {
			continue
		}
		sem <- struct{}{}
		if failed() || j.stop.Err() != nil || j.ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := j.file(file); err != nil {
				mu.Lock()
				// A reason to give up outranks a reason to retry.
				var ft *fatal
				if first == nil || (errors.As(err, &ft) && !errors.As(first, &ft)) {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if j.stop.Err() != nil {
		return errStopped
	}
	return j.ctx.Err()
}

func (j *job) pbFile(idx int) *pb.File {
	for _, f := range j.f.Submitted.Files {
		if int(f.Index) == idx {
			return f
		}
	}
	return &pb.File{Index: uint32(idx)}
}

func (j *job) file(file *store.File) error {
	f := j.f
	if file.NCMECFileID == "" {
		if err := j.upload(file); err != nil {
			return err
		}
		if err := j.p.crashAt("upload:" + strconv.Itoa(file.Idx)); err != nil {
			return err
		}
	}
	doc, err := ncmec.EncodeFileDetails(build.FileDetails(j.pbFile(file.Idx), f.NCMECID, file.NCMECFileID))
	if err != nil {
		return &fatal{step: StepFileInfo, desc: "the file details cannot be built: " + err.Error(), fileID: file.FileID}
	}
	resp, err := j.client.FileInfoXML(j.ctx, doc)
	if err != nil {
		return j.callFailed(StepFileInfo, &file.Idx, file.FileID, err)
	}
	ev, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.NcmecFileUploaded{
		NcmecReportId: f.NCMECID, FileId: file.FileID, NcmecFileId: file.NCMECFileID, NcmecMd5: file.NCMECMD5, Filing: uint32(f.Filing)})
	if err != nil {
		return err
	}
	if err := j.p.d.Store.Described(j.ctx, f, file.Idx, doc, resp, ev); err != nil {
		return err
	}
	file.Described = true
	return j.p.crashAt("fileinfo:" + strconv.Itoa(file.Idx))
}

// upload streams one file from S3, decrypting, into /upload, and checks
// that NCMEC received exactly our bytes.
func (j *job) upload(file *store.File) error {
	f := j.f
	if f.Key == nil {
		return &fatal{step: StepUpload, desc: "the report's data key is no longer held", fileID: file.FileID}
	}
	dataKey, err := j.p.d.Keys.Unwrap(f.ReportID, *f.Key)
	if err != nil {
		// A retired master key or a key that does not authenticate will
		// not fix itself.
		return &fatal{step: StepUpload, desc: "the evidence cannot be decrypted: " + err.Error(), fileID: file.FileID}
	}
	defer clear(dataKey)
	// An upload is cancelled on shutdown (it may be long); it is repeated
	// by whoever resumes the filing.
	ctx, cancel := context.WithCancel(j.ctx)
	defer cancel()
	defer context.AfterFunc(j.stop, cancel)()

	rc, err := j.p.d.Evidence.Open(ctx, file.ObjectKey, dataKey)
	if err != nil {
		if errors.Is(err, evidence.ErrNotFound) {
			return &fatal{step: StepUpload, desc: "the evidence file is missing from storage: " + err.Error(), fileID: file.FileID}
		}
		return &transient{step: StepUpload, err: err}
	}
	defer rc.Close()
	// Every read of evidence bytes is audited: who (this service) and why.
	accessed, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.EvidenceAccessed{FileId: file.FileID, Purpose: "upload to NCMEC"})
	if err != nil {
		return err
	}
	if err := j.p.d.Store.UploadAttempt(j.ctx, f, file.Idx, accessed); err != nil {
		return err
	}
	res, err := j.client.Upload(ctx, f.NCMECID, build.UploadName(j.pbFile(file.Idx)), file.Size, rc)
	if err != nil {
		if errors.Is(err, ncmec.ErrHashMismatch) {
			_ = j.p.d.Store.LogCall(j.ctx, f, store.Call{Endpoint: ncmec.EndpointUpload, FileIdx: &file.Idx, Err: err, Response: rawOf(res)})
			return &fatal{step: StepUpload, fileID: file.FileID, desc: mismatch(file, res)}
		}
		if j.stop.Err() != nil && j.ctx.Err() == nil {
			return errStopped
		}
		if j.ctx.Err() == nil && !ncmec.IsAmbiguous(err) {
			// NCMEC answered: this attempt left no copy there.
			if rerr := j.p.d.Store.UploadRefused(j.ctx, f, file.Idx, store.Call{Endpoint: StepUpload, FileIdx: &file.Idx, Err: err}); rerr != nil {
				return rerr
			}
			file.UploadRefused++
			return j.outcome(StepUpload, file.FileID, err)
		}
		return j.callFailed(StepUpload, &file.Idx, file.FileID, err)
	}
	// The client compared NCMEC's MD5 with the bytes it sent; compare both
	// with what intake measured when the file arrived.
	if !strings.EqualFold(res.SentMD5, file.MD5) || (res.Hash != "" && !strings.EqualFold(res.Hash, file.MD5)) {
		_ = j.p.d.Store.LogCall(j.ctx, f, store.Call{Endpoint: ncmec.EndpointUpload, FileIdx: &file.Idx, RequestID: res.RequestID, Response: res.Raw,
			Err: fmt.Errorf("md5 mismatch")})
		return &fatal{step: StepUpload, fileID: file.FileID, desc: mismatch(file, res)}
	}
	if res.Hash == "" {
		j.log.Warn("NCMEC answered the upload without an MD5; the bytes sent matched ours", "file_id", file.FileID, "ncmec_file_id", res.FileID)
	}
	if err := j.p.d.Store.Uploaded(j.ctx, f, file.Idx, res); err != nil {
		return err
	}
	file.NCMECFileID, file.NCMECMD5 = res.FileID, res.Hash
	return nil
}

func rawOf(res *ncmec.UploadResult) []byte {
	if res == nil {
		return nil
	}
	return res.Raw
}

func mismatch(file *store.File, res *ncmec.UploadResult) string {
	got, sent, id := "", "", ""
	if res != nil {
		got, sent, id = res.Hash, res.SentMD5, res.FileID
	}
	return fmt.Sprintf("NCMEC's MD5 of file %s (NCMEC file id %s) is %q, sent %q, ours %q: the report holds a file that is not our evidence. "+
		"A file cannot be removed from an NCMEC report, so this report must not be finished: retract it and file again.",
		file.FileID, id, got, sent, file.MD5)
}

// callFailed logs a failed NCMEC call after /submit and maps it to what
// happens next.
func (j *job) callFailed(step string, idx *int, fileID string, err error) error {
	if j.ctx.Err() != nil {
		return j.ctx.Err()
	}
	if lerr := j.p.d.Store.LogCall(j.ctx, j.f, store.Call{Endpoint: step, FileIdx: idx, Err: err}); lerr != nil {
		j.log.Warn("log NCMEC call", "step", step, "err", lerr)
	}
	return j.outcome(step, fileID, err)
}

// outcome maps a failed NCMEC call after /submit, already logged, to what
// happens next.
func (j *job) outcome(step, fileID string, err error) error {
	code := ncmec.CodeOf(err)
	switch {
	case ncmec.IsRetryable(err):
		// /upload may have added a file although it failed (ambiguous):
		// uploading again may leave an identical duplicate at NCMEC, which
		// is better than abandoning the report (README, "duplicates").
		return &transient{step: step, err: err}
	case code == ncmec.CodeAlreadyRetracted:
		if begun, herr := j.p.d.Handover.RetractionBegun(j.ctx, j.f.ReportID, j.f.Filing); herr == nil && begun {
			return errRetracted
		}
		return &fatal{step: step, code: code, fileID: fileID, desc: "NCMEC says the report was retracted, though not by our retraction service: " + err.Error()}
	case code == ncmec.CodeReportNotFound:
		return &fatal{step: step, code: code, fileID: fileID, desc: "NCMEC no longer has the report (it expired or was deleted); it must be filed again: " + err.Error()}
	default:
		return &fatal{step: step, code: code, fileID: fileID, desc: describe(err)}
	}
}

func describe(err error) string {
	var e *ncmec.Error
	if errors.As(err, &e) && e.Auth {
		return "NCMEC refused our credentials or permissions; check NCMEC_USERNAME/NCMEC_PASSWORD (or the test ones): " + err.Error()
	}
	return err.Error()
}

func (j *job) finish() error {
	f := j.f
	switch err := j.p.d.Handover.ClaimFinish(j.ctx, f.ReportID, f.Filing); {
	case errors.Is(err, filing.ErrRetracting):
		return errRetracted
	case err != nil:
		// Never finish without the claim: wait for the bucket.
		return &transient{step: StepFinish, err: fmt.Errorf("handover: %w", err)}
	}
	done, err := j.client.Finish(j.ctx, f.NCMECID)
	if err := j.p.crashAt("finish:sent"); err != nil {
		return err
	}
	ours := make([]string, 0, len(f.Files))
	for _, file := range f.Files {
		ours = append(ours, file.NCMECFileID)
	}
	call := store.Call{Endpoint: ncmec.EndpointFinish}
	receiptIDs, learnt := ours, filing.FromReceipt
	switch {
	case err == nil:
		call.RequestID, call.Response = done.RequestID, done.Raw
		receiptIDs = done.Files.IDs
		for _, id := range ours {
			if !slices.Contains(receiptIDs, id) {
				j.log.Error("NCMEC's receipt does not list one of our files", "ncmec_file_id", id)
			}
		}
	case ncmec.CodeOf(err) == ncmec.CodeAlreadyFinished:
		// Finished by an earlier call whose answer was lost: the goal is
		// reached, though that call's receipt is gone.
		call.Err, learnt = err, filing.FromFinish5102
		j.log.Warn("NCMEC says the report was already finished; recording it as finished without a receipt", "err", err)
	default:
		return j.callFailed(StepFinish, nil, "", err)
	}
	extraOf, extraIDs := extraCopies(f.Files, ours, receiptIDs)
	if len(extraOf) > 0 || len(extraIDs) > 0 {
		j.log.Warn("NCMEC may hold extra copies without details: an upload whose answer was lost was repeated",
			"files", extraOf, "extra_ncmec_file_ids", extraIDs)
	}
	ev, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.NcmecFinished{
		NcmecReportId: f.NCMECID, NcmecFileIds: receiptIDs, ReceiptXml: string(call.Response), FinishedAt: timestamppb.Now(),
		Filing: uint32(f.Filing), LearnedFrom: learnt, ExtraCopiesOf: extraOf, ExtraNcmecFileIds: extraIDs})
	if err != nil {
		return err
	}
	if err := j.p.d.Store.Finished(j.ctx, f, call, receiptIDs, ev); err != nil {
		return err
	}
	j.p.outcomes.WithLabelValues("finished").Inc()
	j.log.Info("NCMEC report finished", "files", len(receiptIDs))
	if err := j.p.crashAt("finish"); err != nil {
		return err
	}
	if err := j.p.d.Handover.Finished(j.ctx, f.ReportID, f.Filing); err != nil {
		// "finishing" already makes the retraction service answer 409.
		j.log.Warn("handover: could not mark the report finished", "err", err)
	}
	return nil
}

// extraCopies names the files of which NCMEC may hold an extra copy without
// details: an upload attempt beyond the one recorded that NCMEC did not
// refuse (its answer was lost, or the worker died during it) may have added
// one. The protocol cannot name the lost copy; the receipt's file ids beyond
// ours are those copies.
func extraCopies(files []store.File, ours, receipt []string) (fileIDs, ncmecIDs []string) {
	for _, f := range files {
		if f.UploadAttempts-f.UploadRefused > 1 {
			fileIDs = append(fileIDs, f.FileID)
		}
	}
	for _, id := range receipt {
		if !slices.Contains(ours, id) {
			ncmecIDs = append(ncmecIDs, id)
		}
	}
	return fileIDs, ncmecIDs
}

// retry schedules the next attempt with exponential backoff and jitter, or
// gives up when that would pass the window NCMEC leaves an unfinished
// report (1 hour after its last change; we stop earlier).
func (j *job) retry(t *transient) {
	f := j.f
	delay := j.p.backoff(f.Attempts)
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
		j.log.Error("schedule retry", "err", err)
		return
	}
	j.p.retries.WithLabelValues(stepLabel(t.step)).Inc()
	j.log.Warn("transient failure; will retry", "step", t.step, "err", t.err, "attempt", f.Attempts+1, "retry_in", delay)
}

func stepLabel(s string) string {
	if s == "" {
		return "internal"
	}
	return s
}

func (p *Pool) backoff(attempts int) time.Duration {
	d := p.cfg.BackoffMin
	for range min(attempts, 30) {
		d *= 2
		if d >= p.cfg.BackoffMax {
			d = p.cfg.BackoffMax
			break
		}
	}
	// Jitter in [d/2, d): many filings failing together do not retry together.
	return d/2 + rand.N(d/2+1)
}

func (j *job) fail(ft *fatal, call *store.Call) {
	f := j.f
	ev, err := events.New(f.ReportID, events.Service(j.p.cfg.Service), &pb.NcmecFailed{
		Step: ft.step, Code: int32(ft.code), Description: ft.desc,
		ReportOpened: f.NCMECID != 0, NcmecReportId: f.NCMECID, FileId: ft.fileID, Filing: uint32(f.Filing)})
	if err != nil {
		j.log.Error("build failed event", "err", err)
		return
	}
	if err := j.p.d.Store.Failed(j.ctx, f, ft.step, ft.code, ft.desc, call, ev); err != nil {
		j.log.Error("record failure; will be retried", "err", err)
		return
	}
	j.p.outcomes.WithLabelValues("failed").Inc()
	j.log.Error("NCMEC filing failed", "step", ft.step, "code", ft.code, "description", ft.desc, "file_id", ft.fileID)
}

// signal wakes every waiting worker at once.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = cryptoRead(b)
	return hex.EncodeToString(b)
}

var cryptoRead = crand.Read
