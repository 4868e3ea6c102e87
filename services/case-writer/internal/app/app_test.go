package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/config"
	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/salesforce/sfsim"
	"takedown/pkg/service"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
	"takedown/services/case-writer/internal/app"
	"takedown/services/case-writer/internal/mapping"
	"takedown/services/case-writer/internal/store"
	"takedown/services/case-writer/internal/syncer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type harness struct {
	t     testing.TB
	db    string
	nats  *testenv.NATS
	sim   *sfsim.Server
	cfg   app.Config
	js    jetstream.JetStream
	store *store.Store
	pool  *pgxpool.Pool
	url   string
	// last is the stream sequence of the last event published for the
	// consumer: idle waits until it is acknowledged.
	last atomic.Uint64
}

// env starts the dependencies: PostgreSQL, NATS and the Salesforce simulator.
func env(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, db: testenv.Postgres(t), nats: testenv.StartNATS(t),
		sim: sfsim.Start(t, sfsim.Config{ClientID: "cid", ClientSecret: "secret"})}
	h.cfg = app.Config{
		Service: service.Config{ListenAddr: "127.0.0.1:0", DatabaseURL: config.Secret(testenv.ServiceLogins(t, h.db, app.Name)[app.Name].URL), NATSURL: h.nats.URL(),
			StreamReplicas: 1, ShutdownTimeout: 5 * time.Second},
		SalesforceURL: h.sim.URL(), ClientID: "cid", ClientSecret: "secret", APIVersion: "v64.0", AutoAssign: "FALSE",
		HTTPTimeout: 5 * time.Second, MaxAttempts: 3, RetryBackoff: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Sync:              syncer.Options{Workers: 2, Poll: 200 * time.Millisecond, Lease: 30 * time.Second, Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		StartCheckTimeout: 5 * time.Second,
	}
	nc, js, err := stream.Connect(h.nats.URL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h.js = js
	return h
}

// start runs the real case-writer wiring until the test ends or the
// returned function stops it.
func (h *harness) start() (stop func()) {
	h.t.Helper()
	a, err := app.New(h.t.Context(), h.cfg, testenv.Logger(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	ln, err := a.Listen()
	if err != nil {
		h.t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("case-writer stopped with %v", err)
			}
			a.Close()
		})
	}
	h.t.Cleanup(stop)
	pool, err := pgxConnect(h.t, h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(pool.Close)
	h.store, h.pool = store.New(pool), pool
	return stop
}

func hexOf(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var incident = time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC)

// report returns a report.submitted payload with n files.
func report(n int) *pb.ReportSubmitted {
	id := events.NewID()
	s := &pb.ReportSubmitted{
		Report: &pb.Report{Id: id, IncidentType: "Child Pornography (possession, manufacture, and distribution)",
			IncidentTime: timestamppb.New(incident), Platform: "Commons", Urls: []string{"https://example.org/x"},
			Uploader: &pb.Uploader{Username: "u1", Ip: "192.0.2.1"}, LegalApproved: true, Approver: "legal@example.org",
			ActionsTaken: []string{"content removed"}, SubmittedBy: "staff", SubmittedAt: timestamppb.New(incident.Add(time.Hour)), Filing: 1},
		DataKey: &pb.WrappedKey{MasterKeyId: "k1", Ciphertext: []byte("wrapped-data-key")},
	}
	for i := range n {
		s.Files = append(s.Files, &pb.File{Id: events.NewID(), Index: uint32(i), Name: fmt.Sprintf("file%02d.jpg", i),
			ObjectKey: "reports/" + id + "/" + hexOf(8), Size: int64(1000 + i), ContentType: "image/jpeg",
			Md5: hexOf(16), Sha1: hexOf(20), Sha256: hexOf(32), Pdq: hexOf(32), OriginalUploadTime: timestamppb.New(incident)})
	}
	return s
}

func (h *harness) event(reportID string, payload proto.Message) *pb.Envelope {
	h.t.Helper()
	env, err := events.New(reportID, nil, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	env.Actor = events.Service(events.Owners(env.Type)[0]) // consumers refuse a service publishing what it does not own
	return env
}

// publish puts env on the stream. Without a Nats-Msg-Id, so that publishing
// the same event again is a second delivery, as a republished outbox row
// outside the duplicate window would be.
func (h *harness) publish(env *pb.Envelope) {
	h.t.Helper()
	b, err := events.Marshal(env)
	if err != nil {
		h.t.Fatal(err)
	}
	ack, err := h.js.Publish(context.Background(), events.Subject(env.Type), b)
	if err != nil {
		h.t.Fatal(err)
	}
	if !slices.Contains(app.Consumer.Subjects, env.Type) {
		return
	}
	// The largest sequence wins: tests may publish from several goroutines.
	for cur := h.last.Load(); cur < ack.Sequence; cur = h.last.Load() {
		if h.last.CompareAndSwap(cur, ack.Sequence) {
			break
		}
	}
}

// idle waits until the consumer has handled everything published. Its
// pending count alone is not enough: the server updates it a moment after
// a publish is acknowledged, so the last event's own ack is waited for.
func (h *harness) idle() {
	h.t.Helper()
	testenv.Eventually(h.t, 10*time.Second, "the consumer handled every event", func() bool {
		c, err := h.js.Consumer(context.Background(), events.Stream, app.Consumer.Durable)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream >= h.last.Load() && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// caseEvents returns case-writer's events about reportID in the stream.
func (h *harness) caseEvents(reportID string) []*pb.Envelope {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, events.Stream)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*pb.Envelope
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || !strings.HasPrefix(m.Subject, "takedown.case.") {
			continue
		}
		env, err := events.Unmarshal(m.Data)
		if err != nil {
			h.t.Fatal(err)
		}
		if env.ReportId == reportID {
			out = append(out, env)
		}
	}
	return out
}

// synced waits until reportID's case has been written (or refused) at its
// latest revision and every outcome event is published.
func (h *harness) synced(reportID string) store.Status {
	h.t.Helper()
	h.idle()
	var st store.Status
	testenv.Eventually(h.t, 15*time.Second, "the case is written at its latest revision", func() bool {
		_, s, err := h.store.Get(context.Background(), reportID)
		st = s
		return err == nil && s.Rev > 0 && (s.SyncedRev == s.Rev || s.FailedRev == s.Rev)
	})
	testenv.Eventually(h.t, 10*time.Second, "the outcome is published", func() bool {
		var n int
		err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n)
		return err == nil && n == 0 && len(h.caseEvents(reportID)) > 0
	})
	return st
}

// sfCase returns the one Case of reportID in the simulator.
func (h *harness) sfCase(reportID string) sfsim.Record {
	h.t.Helper()
	var found []sfsim.Record
	for _, r := range h.sim.Records(sfsim.CaseObject) {
		if r[sfsim.CaseReportID] == reportID {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		h.t.Fatalf("%d cases for report %s, want 1", len(found), reportID)
	}
	return found[0]
}

func (h *harness) sfFiles(caseID string) []sfsim.Record {
	var out []sfsim.Record
	for _, r := range h.sim.Records(sfsim.FileObject) {
		if r[sfsim.FileCase] == caseID {
			out = append(out, r)
		}
	}
	return out
}

// checkWritten checks the case and one record per file, once each.
func (h *harness) checkWritten(sub *pb.ReportSubmitted) sfsim.Record {
	h.t.Helper()
	c := h.sfCase(sub.Report.Id)
	files := h.sfFiles(c["Id"].(string))
	if n := len(h.sim.Records(sfsim.FileObject)); n != len(sub.Files) || len(files) != len(sub.Files) {
		h.t.Fatalf("%d file records (%d of this case), want %d", n, len(files), len(sub.Files))
	}
	byID := map[string]sfsim.Record{}
	for _, f := range files {
		byID[f[sfsim.FileID].(string)] = f
	}
	for _, f := range sub.Files {
		r, ok := byID[f.Id]
		if !ok {
			h.t.Fatalf("no record for file %s", f.Id)
		}
		if r["File_Name__c"] != f.Name || r["SHA256__c"] != f.Sha256 || r["MD5__c"] != f.Md5 || r["SHA1__c"] != f.Sha1 ||
			r["PDQ__c"] != f.Pdq || r["Uploader__c"] != "u1" || fmt.Sprint(r["Size_Bytes__c"]) != fmt.Sprint(f.Size) ||
			r["Uploaded_At__c"] != "2026-01-02T15:04:00.000+0000" {
			h.t.Errorf("file record %v does not match %v", r, f)
		}
		// Metadata and hashes only: nothing that leads to the media.
		for k, v := range r {
			if s, ok := v.(string); ok && (s == f.ObjectKey || strings.Contains(s, "wrapped-data-key")) {
				h.t.Errorf("file record field %s carries the object key or data key", k)
			}
		}
	}
	return c
}

// Case and 30 file records (two composite calls, each atomic) are created
// once although the event is delivered three times.
func TestSubmittedThreeTimesWritesOnce(t *testing.T) {
	t.Parallel()
	h := env(t)
	h.start()
	sub := report(30)
	ev := h.event(sub.Report.Id, sub)
	for range 3 {
		h.publish(ev)
	}
	st := h.synced(sub.Report.Id)
	c := h.checkWritten(sub)
	if c["Subject"] != "Report to NCMEC for 30 file(s) uploaded by u1 2026-01-02 15:04 UTC - Report# pending" ||
		c["NCMEC_Status__c"] != "Pending" || c["Project__c"] != "Commons" || c["Legal_Approved__c"] != true ||
		c["Type"] != "Child Protection" || c["Origin"] != "Takedown Tool" {
		t.Errorf("case %v", c)
	}
	if st.Rev != 1 || st.CaseID != c["Id"].(string) {
		t.Errorf("status %+v, case id %s", st, c["Id"].(string))
	}
	evs := h.caseEvents(sub.Report.Id)
	if len(evs) != 1 || evs[0].GetCaseUpserted().GetCaseId() != c["Id"].(string) || evs[0].GetCaseUpserted().GetState() != "pending" {
		t.Fatalf("case events %v, want one case.upserted", evs)
	}
	if evs[0].Actor.GetId() != "case-writer" {
		t.Errorf("actor %v", evs[0].Actor)
	}
	metrics := h.get("/metrics")
	for _, m := range []string{
		`takedown_case_writer_salesforce_request_duration_seconds_count{endpoint="composite",result="ok"} 2`,
		`takedown_case_writer_salesforce_api_requests{kind="max"} 15000`,
		`takedown_case_writer_cases_total{outcome="upserted"} 1`,
		`takedown_case_writer_cases_pending 0`,
	} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func (h *harness) get(path string) string {
	h.t.Helper()
	resp, err := http.Get(h.url + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A replica stopped in the middle of a write gives the case back; another
// replica writes it, once.
func TestStopMidWriteAnotherReplicaWrites(t *testing.T) {
	t.Parallel()
	h := env(t)
	stop := h.start()
	// Slow enough to stop the replica inside it. (The simulator notices the
	// client gone only after the delay, since it has not read the body yet;
	// a short delay keeps the test's end quick.)
	h.sim.Inject(sfsim.Fault{Endpoint: "composite", Kind: sfsim.KindSlow, DelayMS: 1500})
	sub := report(3)
	h.publish(h.event(sub.Report.Id, sub))
	testenv.Eventually(t, 10*time.Second, "the first replica is writing", func() bool { return h.sim.Faults()[0].Fired == 1 })
	stop()
	if _, st, _ := h.store.Get(context.Background(), sub.Report.Id); st.SyncedRev != 0 {
		t.Fatalf("status %+v", st)
	}
	h.start()
	h.synced(sub.Report.Id)
	h.checkWritten(sub)
	if n := len(h.caseEvents(sub.Report.Id)); n != 1 {
		t.Fatalf("%d case events, want 1", n)
	}
}

// Salesforce is unreachable at start: the service starts, records events,
// and writes the cases once Salesforce is back.
func TestSalesforceDownAtStartCasesWait(t *testing.T) {
	t.Parallel()
	h := env(t)
	h.sim.Inject(sfsim.Fault{Endpoint: "token", Kind: sfsim.KindDrop, Times: -1})
	h.start()
	if body := h.get("/readyz"); !strings.Contains(body, "salesforce") {
		t.Errorf("/readyz does not report Salesforce: %s", body)
	}
	sub := report(2)
	h.publish(h.event(sub.Report.Id, sub))
	h.idle()
	if c, _, err := h.store.Get(context.Background(), sub.Report.Id); err != nil || c.Submitted == nil {
		t.Fatalf("the report was not recorded: %v", err)
	}
	h.sim.ClearFaults()
	h.synced(sub.Report.Id)
	h.checkWritten(sub)
}

// Salesforce commits the composite and the answer is lost: the client
// repeats it, the upserts find the records, and nothing is duplicated.
func TestConnectionDroppedAfterCommit(t *testing.T) {
	t.Parallel()
	h := env(t)
	h.start()
	f, _ := h.sim.Inject(sfsim.Fault{Endpoint: "composite", Kind: sfsim.KindLostResponse})
	sub := report(3)
	h.publish(h.event(sub.Report.Id, sub))
	h.synced(sub.Report.Id)
	h.checkWritten(sub)
	if got := h.sim.Faults()[0]; got.ID != f.ID || got.Fired != 1 {
		t.Fatalf("fault %+v did not fire once", got)
	}
	if n := len(h.caseEvents(sub.Report.Id)); n != 1 {
		t.Fatalf("%d case events, want 1", n)
	}
}

// The session expires between two writes: exactly one re-authentication.
func TestTokenExpiresMidRun(t *testing.T) {
	t.Parallel()
	h := env(t)
	h.start()
	sub := report(2)
	h.publish(h.event(sub.Report.Id, sub))
	h.synced(sub.Report.Id)
	if n := h.sim.TokenCount(); n != 1 {
		t.Fatalf("%d tokens before the expiry, want 1", n)
	}
	h.sim.Inject(sfsim.Fault{Endpoint: "composite", Kind: sfsim.KindExpireToken})
	h.publish(h.event(sub.Report.Id, &pb.NcmecOpened{NcmecReportId: 4242, Environment: "test", Filing: 1}))
	st := h.synced(sub.Report.Id)
	if n := h.sim.TokenCount(); n != 2 {
		t.Errorf("%d tokens, want 2: one re-authentication", n)
	}
	c := h.checkWritten(sub)
	if c["NCMEC_Status__c"] != "Opened" || c["NCMEC_Report_Id__c"] != "4242" || st.Rev != 2 || st.SyncedRev != 2 {
		t.Errorf("case %v, status %+v", c, st)
	}
}

// Rate limits and 503 bursts outlast the client's own retries; the workers
// back off and the writes complete.
func TestRateLimitAnd503BurstsComplete(t *testing.T) {
	t.Parallel()
	h := env(t)
	h.start()
	// 4 rate-limited answers: more than one attempt's 3 tries.
	h.sim.Inject(sfsim.Fault{Endpoint: "composite", Kind: sfsim.KindRateLimit, Times: 4})
	sub := report(2)
	h.publish(h.event(sub.Report.Id, sub))
	st := h.synced(sub.Report.Id)
	h.checkWritten(sub)
	if st.SyncedRev != 1 {
		t.Fatalf("status %+v", st)
	}

	h.sim.Inject(sfsim.Fault{Endpoint: "composite", Kind: sfsim.KindHTTP, Status: 503, Times: 7})
	h.publish(h.event(sub.Report.Id, &pb.NcmecFinished{NcmecReportId: 99, FinishedAt: timestamppb.New(incident.Add(3 * time.Hour))}))
	st = h.synced(sub.Report.Id)
	c := h.checkWritten(sub)
	if c["NCMEC_Status__c"] != "Finished" || st.SyncedRev != 2 {
		t.Errorf("case %v, status %+v", c, st)
	}
	for _, f := range h.sim.Faults() {
		if f.Fired != f.Times {
			t.Errorf("fault %+v did not fire fully", f)
		}
	}
	evs := h.caseEvents(sub.Report.Id)
	if len(evs) != 2 || evs[1].GetCaseUpserted().GetState() != "finished" {
		t.Errorf("events %v", evs)
	}
}

// finished is handled before submitted: it is recorded, and the case is
// written once the report is known, in its final state; a late failed
// changes nothing.
func TestFinishedBeforeSubmitted(t *testing.T) {
	t.Parallel()
	h := env(t)
	h.start()
	sub := report(2)
	id := sub.Report.Id
	finishedAt := incident.Add(5 * time.Hour)
	h.publish(h.event(id, &pb.NcmecFileUploaded{NcmecReportId: 777, FileId: sub.Files[0].Id, NcmecFileId: "ncmec-f0"}))
	h.publish(h.event(id, &pb.NcmecFinished{NcmecReportId: 777, FinishedAt: timestamppb.New(finishedAt)}))
	h.idle()
	c, st, err := h.store.Get(context.Background(), id)
	if err != nil || c.NCMEC.State != filing.Finished || c.Submitted != nil {
		t.Fatalf("recorded %+v %+v %v", c, st, err)
	}
	if n := len(h.sim.Records(sfsim.CaseObject)); n != 0 {
		t.Fatalf("%d cases written before the report is known", n)
	}

	h.publish(h.event(id, sub))
	st = h.synced(id)
	rec := h.checkWritten(sub)
	if rec["NCMEC_Status__c"] != "Finished" || rec["NCMEC_Report_Id__c"] != "777" ||
		rec["NCMEC_Finished_At__c"] != "2026-01-02T20:04:00.000+0000" || !strings.HasSuffix(rec["Subject"].(string), "Report# 777") {
		t.Fatalf("case %v", rec)
	}
	for _, f := range h.sfFiles(rec["Id"].(string)) {
		if f["NCMEC_Status__c"] != "Finished" {
			t.Errorf("file record %v", f)
		}
		if f[sfsim.FileID] == sub.Files[0].Id && f["NCMEC_File_Id__c"] != "ncmec-f0" {
			t.Errorf("file record %v lacks its NCMEC file id", f)
		}
	}

	h.publish(h.event(id, &pb.NcmecFailed{Step: "finish", Description: "late", ReportOpened: true, NcmecReportId: 777}))
	h.idle()
	if c, st2, _ := h.store.Get(context.Background(), id); st2.Rev != st.Rev || c.NCMEC.State != filing.Finished {
		t.Errorf("a late failed changed the case: %+v, %+v (before %+v)", c.NCMEC, st2, st)
	}
	if c := h.sfCase(id); c["NCMEC_Status__c"] != "Finished" {
		t.Errorf("a late failed changed the Salesforce case: %v", c)
	}
	if n := len(h.caseEvents(id)); n != 1 {
		t.Errorf("%d case events, want 1", n)
	}
}

// Salesforce refuses the case (the project is too long for the org; intake
// refuses such a report, but an event from before its rules or another
// org's shorter fields can still carry one): the write ends as
// takedown.case.failed naming the field, and is not retried.
// A report whose first filing failed and was retracted is filed again
// (issue 15): the case ends showing the second filing — its NCMEC id, state
// and file ids — and names the first filing's report in its history. A
// late event of the first filing, handled after the second started, moves
// nothing.
func TestFiledAgainCaseShowsTheNewFiling(t *testing.T) {
	t.Parallel()
	h := env(t)
	h.start()
	sub := report(2)
	id := sub.Report.Id
	f0, f1 := sub.Files[0].Id, sub.Files[1].Id
	// Filing 1: opened as NCMEC report 7, one file uploaded, then failed
	// and retracted.
	h.publish(h.event(id, sub))
	h.publish(h.event(id, &pb.NcmecOpened{NcmecReportId: 7, Environment: "test", Filing: 1}))
	h.publish(h.event(id, &pb.NcmecFileUploaded{NcmecReportId: 7, FileId: f0, NcmecFileId: "old-f0", Filing: 1}))
	h.publish(h.event(id, &pb.NcmecFailed{Step: "upload", Description: "file rejected", ReportOpened: true, NcmecReportId: 7, FileId: f1, Filing: 1}))
	h.publish(h.event(id, &pb.NcmecRetracted{NcmecReportId: 7, Reason: "failed", Filing: 1, Environment: "test"}))
	h.synced(id)
	if c := h.sfCase(id); c["NCMEC_Status__c"] != "Retracted" || c["NCMEC_Report_Id__c"] != "7" {
		t.Fatalf("after filing 1: case %v", c)
	}

	// Filing 2: the corrected report, opened as 9, both files uploaded.
	sub2 := proto.Clone(sub).(*pb.ReportSubmitted)
	sub2.Report.Filing = 2
	sub2.Report.Notes = "corrected"
	h.publish(h.event(id, sub2))
	h.publish(h.event(id, &pb.NcmecOpened{NcmecReportId: 9, Environment: "test", Filing: 2}))
	// A late event of filing 1 (a redelivered upload) after filing 2 began.
	h.publish(h.event(id, &pb.NcmecFileUploaded{NcmecReportId: 7, FileId: f1, NcmecFileId: "old-f1", Filing: 1}))
	h.publish(h.event(id, &pb.NcmecFileUploaded{NcmecReportId: 9, FileId: f0, NcmecFileId: "new-f0", Filing: 2}))
	h.publish(h.event(id, &pb.NcmecFileUploaded{NcmecReportId: 9, FileId: f1, NcmecFileId: "new-f1", Filing: 2}))
	h.publish(h.event(id, &pb.NcmecFinished{NcmecReportId: 9, NcmecFileIds: []string{"new-f0", "new-f1"},
		FinishedAt: timestamppb.New(incident.Add(6 * time.Hour)), Filing: 2, LearnedFrom: "receipt"}))
	// And the first filing's retraction, delivered again.
	h.publish(h.event(id, &pb.NcmecRetracted{NcmecReportId: 7, Reason: "failed", Filing: 1, Environment: "test"}))
	h.synced(id)

	c := h.checkWritten(sub)
	if c["NCMEC_Report_Id__c"] != "9" || c["NCMEC_Status__c"] != "Finished" || !strings.HasSuffix(c["Subject"].(string), "Report# 9") ||
		c["NCMEC_Finished_At__c"] != "2026-01-02T21:04:00.000+0000" {
		t.Errorf("case %v, want NCMEC report 9 finished", c)
	}
	desc, _ := c["Description"].(string)
	for _, want := range []string{"(filing 2)", "Comments for NCMEC: corrected", "NCMEC: finished, report 9", "Earlier filings: NCMEC report 7 (retracted)"} {
		if !strings.Contains(desc, want) {
			t.Errorf("description lacks %q:\n%s", want, desc)
		}
	}
	want := map[string]string{f0: "new-f0", f1: "new-f1"}
	for _, f := range h.sfFiles(c["Id"].(string)) {
		if f["NCMEC_File_Id__c"] != want[f[sfsim.FileID].(string)] || f["NCMEC_Status__c"] != "Finished" || f["NCMEC_Report_Id__c"] != "9" {
			t.Errorf("file record %v, want NCMEC file id %s of report 9, finished", f, want[f[sfsim.FileID].(string)])
		}
	}
	evs := h.caseEvents(id)
	last := evs[len(evs)-1].GetCaseUpserted()
	if last.GetState() != "finished" || last.GetFiling() != 2 || last.GetNcmecReportId() != 9 {
		t.Errorf("last case event %v, want finished, filing 2, NCMEC report 9", last)
	}
}

// Salesforce refuses the case (the subject is too long for the org): the
// write ends as takedown.case.failed naming the field, and is not retried.
func TestValidationErrorEndsAsCaseFailed(t *testing.T) {
	t.Parallel()
	h := env(t)
	h.start()
	sub := report(2)
	sub.Report.Platform = strings.Repeat("x", 300) // Project__c holds 255
	h.publish(h.event(sub.Report.Id, sub))
	st := h.synced(sub.Report.Id)
	if st.FailedRev != 1 || st.SyncedRev != 0 || st.Attempts != 0 {
		t.Fatalf("status %+v: refused revisions are not retried", st)
	}
	evs := h.caseEvents(sub.Report.Id)
	if len(evs) != 1 {
		t.Fatalf("case events %v, want one case.failed", evs)
	}
	f := evs[0].GetCaseFailed()
	if f == nil || f.Code != "STRING_TOO_LONG" || len(f.Fields) != 1 || f.Fields[0] != "Project__c" || !strings.Contains(f.Message, "Project") {
		t.Fatalf("case.failed %v", f)
	}
	if n := len(h.sim.Records(sfsim.CaseObject)) + len(h.sim.Records(sfsim.FileObject)); n != 0 {
		t.Fatalf("%d records written: allOrNone must roll the case and its files back", n)
	}
	// No further attempt: while another report is written (which takes
	// the workers through their loop again), the refused one is not.
	usage := h.sim.APIUsage()
	other := report(2)
	h.publish(h.event(other.Report.Id, other))
	h.synced(other.Report.Id)
	if u := h.sim.APIUsage(); u != usage+1 {
		t.Fatalf("API usage moved from %d to %d, want one composite call: the refused write was retried", usage, u)
	}
	if _, st, _ := h.store.Get(context.Background(), sub.Report.Id); st.FailedRev != 1 || st.Attempts != 0 {
		t.Fatalf("status %+v", st)
	}
}

// A mapping that names a source we do not have, or a field the org lacks,
// stops the service at start with a message naming the field.
func TestInvalidMappingRefusedAtStart(t *testing.T) {
	t.Parallel()
	h := env(t)
	def := string(mapping.DefaultYAML())
	tests := []struct{ name, yaml, want string }{
		{"field the org lacks", strings.Replace(def, "Project__c: report.platform", "Wiki__c: report.platform", 1), "Wiki__c"},
		{"file field the org lacks", strings.Replace(def, "PDQ__c: file.pdq", "PhotoDNA__c: file.pdq", 1), "PhotoDNA__c"},
		{"unknown source", strings.Replace(def, "Project__c: report.platform", "Project__c: report.wiki", 1), "case.fields.Project__c: unknown source \"report.wiki\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mapping.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := h.cfg
			cfg.MappingFile = path
			a, err := app.New(t.Context(), cfg, testenv.Logger(t))
			if err == nil {
				a.Close()
				t.Fatal("started with a bad mapping")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func pgxConnect(t testing.TB, url string) (*pgxpool.Pool, error) {
	return database.Open(context.Background(), url, app.Schema)
}
