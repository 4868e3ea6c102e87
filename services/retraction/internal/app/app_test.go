package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/auth"
	"takedown/pkg/config"
	"takedown/pkg/events"
	"takedown/pkg/filing"
	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/service"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
	"takedown/services/retraction/internal/app"
	"takedown/services/retraction/internal/retract"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	token         = "test-token"
	reporterToken = "reporter-only"
)

// reporterOnly authenticates a staff member who may report but not retract.
func reporterOnly(r *http.Request) (auth.Staff, bool, error) {
	if r.Header.Get("Authorization") != "Bearer "+reporterToken {
		return auth.Staff{}, false, nil
	}
	return auth.Staff{Subject: "rita", Name: "Rita", Roles: []string{auth.RoleReporter}}, true, nil
}

type harness struct {
	t      *testing.T
	url    string
	sim    *ncmecsim.Server
	client *ncmec.Client
	js     jetstream.JetStream
	nc     *nats.Conn
	ho     *filing.Handover
}

func start(t *testing.T, opts ...func(*app.Config)) *harness {
	t.Helper()
	sim, simURL := ncmecsim.StartTest(t, ncmecsim.Options{})
	n := testenv.StartNATS(t)
	cfg := app.Config{
		Service: service.Config{ListenAddr: "127.0.0.1:0", DatabaseURL: config.Secret(testenv.ServiceLogins(t, testenv.Postgres(t), retract.Name)[retract.Name].URL), NATSURL: n.URL(),
			StreamReplicas: 1, ShutdownTimeout: 5 * time.Second},
		NCMEC: ncmec.Environments{
			Production:  ncmec.Environment{Name: "production", URL: simURL, Username: ncmecsim.TestUsername, Password: ncmecsim.TestPassword},
			CallTimeout: 5 * time.Second,
		},
		DevToken:         token,
		ReporterConsumer: "ncmec-reporter",
		Retract: retract.Config{Poll: 20 * time.Millisecond, Lease: 5 * time.Second, MinDelay: 10 * time.Millisecond,
			MaxDelay: 50 * time.Millisecond, GiveUpAfter: time.Hour, StaleAfter: time.Hour, Sweep: time.Hour},
		Auth: []auth.Authenticator{reporterOnly},
	}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := app.New(t.Context(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := a.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("retraction stopped with %v", err)
		}
		a.Close()
	})
	nc, js, err := stream.Connect(n.URL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	client, err := ncmec.New(ncmec.Options{BaseURL: simURL, Username: ncmecsim.TestUsername, Password: ncmecsim.TestPassword})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, url: "http://" + ln.Addr().String(), sim: sim, client: client, js: js, nc: nc,
		ho: filing.NewHandover(js, filing.HandoverConfig{})}
}

// emit publishes an event as its owning service's relay would.
func (h *harness) emit(reportID string, payload proto.Message) *pb.Envelope {
	h.t.Helper()
	ev, err := events.New(reportID, nil, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	ev.Actor = events.Service(events.Owners(ev.Type)[0]) // consumers refuse a service publishing what it does not own
	b, _ := events.Marshal(ev)
	msg := nats.NewMsg(events.Subject(ev.Type))
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, ev.EventId)
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
		h.t.Fatal(err)
	}
	return ev
}

// submitted announces a new report, as intake does.
func (h *harness) submitted() string {
	id := events.NewID()
	h.emit(id, &pb.ReportSubmitted{Report: &pb.Report{Id: id, Filing: 1, IncidentTime: timestamppb.Now()}})
	return id
}

// open files a report at the simulator and announces it, as the reporter does.
func (h *harness) open(id string) int64 {
	h.t.Helper()
	nid := h.openAtNCMEC(id, 1)
	h.emit(id, &pb.NcmecOpened{NcmecReportId: nid, Environment: "production", Filing: 1})
	return nid
}

// openAtNCMEC opens filing n of a report at the simulator and marks it
// opened in the hand-over, as the reporter does, but announces nothing.
func (h *harness) openAtNCMEC(id string, n int) int64 {
	h.t.Helper()
	nid := h.submitAtNCMEC()
	if err := h.ho.Opened(context.Background(), id, n); err != nil {
		h.t.Fatalf("hand-over: opened: %v", err)
	}
	return nid
}

// submitAtNCMEC opens a report at the simulator and nothing else: a
// /submit whose answer the reporter never got.
func (h *harness) submitAtNCMEC() int64 {
	h.t.Helper()
	doc, err := ncmec.EncodeReport(&ncmec.Report{
		IncidentSummary: ncmec.IncidentSummary{IncidentType: ncmec.IncidentChildPornography, IncidentDateTime: time.Now().Add(-time.Hour)},
		Reporter: ncmec.Reporter{ReportingPerson: ncmec.Person{FirstName: "Trust", LastName: "Safety",
			Email: []ncmec.Email{{Address: "tns@example.com"}}}},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.client.SubmitXML(context.Background(), doc)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.ReportID
}

// claim is the filing's claim in the hand-over bucket ("" for none).
func (h *harness) claim(id string, n int) string {
	h.t.Helper()
	kv, err := h.js.KeyValue(context.Background(), filing.Bucket)
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), fmt.Sprintf("%s.%d", id, n))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return string(e.Value())
}

func (h *harness) status(ncmecID int64) string {
	r, ok := h.sim.Report(ncmecID)
	if !ok {
		return "missing"
	}
	return r.Status
}

func (h *harness) calls(endpoint string) int { return h.sim.State().Calls[endpoint] }

func (h *harness) retract(id, tok, reason string) (int, map[string]any) {
	h.t.Helper()
	return h.post(id, tok, map[string]any{"reason": reason})
}

// post sends body to the report's retraction endpoint.
func (h *harness) post(id, tok string, payload map[string]any) (int, map[string]any) {
	h.t.Helper()
	body, _ := json.Marshal(payload)
	return h.postRaw(id, tok, body)
}

// postRaw sends body, as it is, to the report's retraction endpoint.
func (h *harness) postRaw(id, tok string, body []byte) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/api/v1/reports/"+id+"/retraction", bytes.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (h *harness) state(id string) map[string]any {
	req, _ := http.NewRequest(http.MethodGet, h.url+"/api/v1/reports/"+id+"/retraction", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// count returns how many events of type about report are in the stream.
func (h *harness) count(typ, report string) int {
	h.t.Helper()
	return len(h.published(typ, report))
}

// published returns the events of type about report in the stream.
func (h *harness) published(typ, report string) []*pb.Envelope {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), events.Stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*pb.Envelope
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil || m.Subject != events.Subject(typ) {
			continue
		}
		ev, err := events.Unmarshal(m.Data)
		if err == nil && ev.ReportId == report {
			out = append(out, ev)
		}
	}
	return out
}

func (h *harness) waitRetracted(id string, ncmecID int64) {
	h.t.Helper()
	testenv.Eventually(h.t, 20*time.Second, "the report is retracted at NCMEC and the event published", func() bool {
		return h.status(ncmecID) == "retracted" && h.count(events.NcmecRetracted, id) == 1
	})
}

func TestFailureAtEachStepAfterOpeningIsRetractedOnce(t *testing.T) {
	t.Parallel()
	h := start(t)
	for _, step := range []string{"upload", "fileinfo", "finish"} {
		t.Run(step, func(t *testing.T) {
			id := h.submitted()
			nid := h.open(id)
			before := h.calls("retract")
			failed := &pb.NcmecFailed{Step: step, Code: 2000, Description: "injected", ReportOpened: true, NcmecReportId: nid}
			h.emit(id, failed)
			h.emit(id, failed) // a second delivery of the same failure (a new event id) changes nothing
			h.waitRetracted(id, nid)
			testenv.Eventually(t, 5*time.Second, "the status says retracted", func() bool { return h.state(id)["retraction"] == "retracted" })
			if n := h.calls("retract") - before; n != 1 {
				t.Fatalf("%d /retract calls, want exactly 1", n)
			}
			if c := h.claim(id, 1); c != "retracted" {
				t.Errorf("hand-over claim %q", c)
			}
		})
	}
}

func TestTransientNCMECFaultsAreRetried(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	h.sim.Inject(ncmecsim.Fault{Endpoint: "retract", Kind: "http", Status: 503, Times: 2})
	h.emit(id, &pb.NcmecFailed{Step: "upload", Code: 2000, ReportOpened: true, NcmecReportId: nid})
	h.waitRetracted(id, nid)
	if n := h.count(events.NcmecRetractionFailed, id); n != 0 {
		t.Fatalf("%d retraction_failed events for a transient fault", n)
	}
}

func TestLostRetractAnswerIsRepeatedAnd5101CountsAsDone(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	h.sim.Inject(ncmecsim.Fault{Endpoint: "retract", Kind: "lost_response", Times: 1})
	h.emit(id, &pb.NcmecFailed{Step: "fileinfo", Code: 2000, ReportOpened: true, NcmecReportId: nid})
	h.waitRetracted(id, nid)
}

func TestPermanentFaultEndsInRetractionFailed(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	h.sim.Inject(ncmecsim.Fault{Endpoint: "retract", Kind: "code", Code: 3100, Times: -1})
	h.emit(id, &pb.NcmecFailed{Step: "upload", Code: 2000, ReportOpened: true, NcmecReportId: nid})
	testenv.Eventually(t, 10*time.Second, "retraction_failed published", func() bool { return h.count(events.NcmecRetractionFailed, id) == 1 })
	if st := h.state(id); st["retraction"] != "failed" || !strings.Contains(st["last_error"].(string), "3100") {
		t.Fatalf("state %v", st)
	}
}

func TestReporterExhaustingDeliveriesIsRetractedThroughTheAdvisory(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	// The reporter's consumer gives up on the report's event.
	cons, err := h.js.CreateOrUpdateConsumer(context.Background(), events.Stream, jetstream.ConsumerConfig{
		Durable: "ncmec-reporter", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 2,
		FilterSubject: events.Subject(events.ReportSubmitted), AckWait: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			m.Nak()
		}
	}
	// The server gives up, and says so, when the consumer next pulls.
	if _, err := cons.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the advisory is kept", func() bool {
		s, err := h.js.Stream(context.Background(), retract.AdvisoryStream)
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background())
		return err == nil && info.State.Msgs > 0
	})
	h.waitRetracted(id, nid)
	if st := h.state(id); !strings.Contains(st["reason"].(string), "gave up") {
		t.Errorf("reason %v", st["reason"])
	}
}

func TestRetractingAFinishedReportIs409AndSendsNothing(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	ctx := context.Background()
	if err := h.ho.ClaimFinish(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Finish(ctx, nid); err != nil {
		t.Fatal(err)
	}
	if err := h.ho.Finished(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	h.emit(id, &pb.NcmecFinished{NcmecReportId: nid})
	testenv.Eventually(t, 5*time.Second, "the service learnt of the report", func() bool { return h.state(id)["ncmec_report_id"] == float64(nid) })
	status, out := h.retract(id, token, "changed my mind")
	if status != http.StatusConflict || out["error"].(map[string]any)["code"] != "finished" {
		t.Fatalf("got %d %v, want 409 finished", status, out)
	}
	if n := h.calls("retract"); n != 0 {
		t.Fatalf("%d /retract calls, want none", n)
	}
	if h.status(nid) != "finished" {
		t.Fatal("the finished report changed")
	}
}

func TestRetractingTwiceRetractsOnce(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	testenv.Eventually(t, 5*time.Second, "the service learnt of the report", func() bool { return h.state(id)["ncmec_report_id"] == float64(nid) })
	if status, out := h.retract(id, token, "uploaded by mistake"); status != http.StatusAccepted {
		t.Fatalf("first: %d %v", status, out)
	}
	status, out := h.retract(id, token, "again")
	if status != http.StatusConflict || out["error"].(map[string]any)["code"] != "already_retracted" {
		t.Fatalf("second: %d %v, want 409 already_retracted", status, out)
	}
	h.waitRetracted(id, nid)
	if n := h.calls("retract"); n != 1 {
		t.Fatalf("%d /retract calls, want 1", n)
	}
	if st := h.state(id); st["reason"] != "uploaded by mistake" || st["requested_by"] != "development sign-in" {
		t.Errorf("state %v", st)
	}
	if n := h.count(events.RetractionRequested, id); n != 1 {
		t.Errorf("%d retraction.requested events, want 1", n)
	}
}

// The race of issue 5: whoever claims the report first wins, and the other
// side backs off, whatever the timing.
func TestRetractionWhileUploadingEndsRetractedNeverFinished(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	testenv.Eventually(t, 5*time.Second, "the service learnt of the report", func() bool { return h.state(id)["ncmec_report_id"] == float64(nid) })
	if status, out := h.retract(id, token, "wrong account"); status != http.StatusAccepted {
		t.Fatalf("%d %v", status, out)
	}
	// The reporter, done uploading, asks for the finish claim and is refused.
	if err := h.ho.ClaimFinish(context.Background(), id, 1); !errors.Is(err, filing.ErrRetracting) {
		t.Fatalf("the reporter got the finish claim after a retraction began: %v", err)
	}
	h.waitRetracted(id, nid)
	if n := h.sim.State().Calls["finish"]; n != 0 {
		t.Fatalf("%d finish calls", n)
	}
}

func TestRetractionWhileFinishingIs409AndTheReportEndsFinished(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	ctx := context.Background()
	testenv.Eventually(t, 5*time.Second, "the service learnt of the report", func() bool { return h.state(id)["ncmec_report_id"] == float64(nid) })
	if err := h.ho.ClaimFinish(ctx, id, 1); err != nil {
		t.Fatalf("the reporter could not claim the finish: %v", err)
	}
	status, out := h.retract(id, token, "too late")
	if status != http.StatusConflict || out["error"].(map[string]any)["code"] != "finished" {
		t.Fatalf("got %d %v, want 409 finished", status, out)
	}
	if _, err := h.client.Finish(ctx, nid); err != nil {
		t.Fatal(err)
	}
	if h.status(nid) != "finished" || h.calls("retract") != 0 {
		t.Fatalf("status %s, %d retract calls", h.status(nid), h.calls("retract"))
	}
}

// The reporter claims "finishing" before /finish; when NCMEC refuses the
// finish the filing fails with that claim still in place, and the report
// must be retracted all the same (the chaos suite found it left open).
func TestFinishRefusedAfterClaimIsRetracted(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	if err := h.ho.ClaimFinish(context.Background(), id, 1); err != nil {
		t.Fatalf("the reporter could not claim the finish: %v", err)
	}
	h.emit(id, &pb.NcmecFailed{Step: "finish", Code: 4000, Description: "injected", ReportOpened: true, NcmecReportId: nid})
	h.waitRetracted(id, nid)
	if c := h.claim(id, 1); c != "retracted" {
		t.Errorf("hand-over claim %q, want retracted", c)
	}
}

// A staff member who asks to retract a report whose finish NCMEC refused is
// told the retraction is owed (202), not that the report is being finished:
// the reporter's "finishing" claim outlives its failure.
func TestStaffRetractionAfterARefusedFinishIsAccepted(t *testing.T) {
	t.Parallel()
	// The worker sleeps through the test, so that the request, not the
	// worker, is the first to meet the reporter's claim.
	h := start(t, func(c *app.Config) { c.Retract.Poll = time.Hour })
	id := h.submitted()
	nid := h.open(id)
	ctx := context.Background()
	if err := h.ho.ClaimFinish(ctx, id, 1); err != nil {
		t.Fatalf("the reporter could not claim the finish: %v", err)
	}
	h.emit(id, &pb.NcmecFailed{Step: "finish", Code: 4000, Description: "injected", ReportOpened: true, NcmecReportId: nid})
	testenv.Eventually(t, 5*time.Second, "the service learnt of the failure", func() bool { return h.state(id)["ncmec_state"] == "failed" })
	status, out := h.retract(id, token, "NCMEC refused the finish")
	if status != http.StatusAccepted {
		t.Fatalf("got %d %v, want 202", status, out)
	}
	if c := h.claim(id, 1); c != "retracting" {
		t.Errorf("hand-over claim %q, want retracting", c)
	}
	testenv.Eventually(t, 5*time.Second, "the staff request is on record", func() bool { return h.count(events.RetractionRequested, id) == 1 })
}

func TestRetractionBeforeNCMECOpenedSendsNothing(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	testenv.Eventually(t, 5*time.Second, "the service learnt of the report", func() bool { return h.state(id)["retraction"] == "none" })
	if status, out := h.retract(id, token, "duplicate"); status != http.StatusAccepted {
		t.Fatalf("%d %v", status, out)
	}
	// The reporter finds the claim taken before /submit and files nothing.
	if c := h.claim(id, 1); c != "retracting" {
		t.Fatalf("hand-over claim %q", c)
	}
	h.emit(id, &pb.NcmecFailed{Step: "submit", Description: "staff asked for a retraction before the report was filed", ReportOpened: false})
	testenv.Eventually(t, 10*time.Second, "retracted without NCMEC", func() bool {
		return h.state(id)["retraction"] == "retracted" && h.count(events.NcmecRetracted, id) == 1
	})
	if n := h.calls("retract") + h.calls("submit"); n != 0 {
		t.Fatalf("%d NCMEC calls", n)
	}
}

func TestSweepRetractsAReportLeftOpen(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *app.Config) { c.Retract.StaleAfter, c.Retract.Sweep = 300*time.Millisecond, 50*time.Millisecond })
	id := h.submitted()
	nid := h.open(id) // and then nothing: the failure event was lost
	h.waitRetracted(id, nid)
	if st := h.state(id); !strings.Contains(st["reason"].(string), "unchanged") {
		t.Errorf("reason %v", st["reason"])
	}
}

func TestEndpointRefusals(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	h.open(id)
	testenv.Eventually(t, 5*time.Second, "the service learnt of the report", func() bool { return h.state(id)["retraction"] == "none" })
	for _, c := range []struct {
		name, tok, reason string
		status            int
		code              string
	}{
		{"missing token", "", "why", 401, "unauthenticated"},
		{"wrong token", "nope", "why", 401, "unauthenticated"},
		{"no retractor role", reporterToken, "why", 403, "forbidden"},
		{"empty reason", token, "  ", 400, "invalid"},
	} {
		status, out := h.retract(id, c.tok, c.reason)
		if status != c.status || out["error"].(map[string]any)["code"] != c.code {
			t.Errorf("%s: got %d %v, want %d %s", c.name, status, out, c.status, c.code)
		}
	}
	// A member given twice reads differently to different readers (the
	// audit log could keep one reason, the service act on the other).
	for _, body := range []string{`{"reason": "", "reason": "why"}`, `{"reason": "", "Reason": "why"}`} {
		status, out := h.postRaw(id, token, []byte(body))
		if status != http.StatusBadRequest || out["error"].(map[string]any)["code"] != "invalid_json" {
			t.Errorf("%s: got %d %v, want 400 invalid_json", body, status, out)
		}
	}
	if status, _ := h.retract(events.NewID(), token, "why"); status != http.StatusNotFound {
		t.Errorf("unknown report: %d", status)
	}
	if h.state(id)["retraction"] != "none" || h.calls("retract") != 0 {
		t.Fatal("a refused request changed something")
	}
}

func TestFailureHandledBeforeTheReportsOtherEventsIsStillRetracted(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := events.NewID()
	failedFirst := &pb.NcmecFailed{Step: "upload", Code: 2000, ReportOpened: true}
	// The failure is published first; submitted and opened follow.
	h.emit(id, failedFirst)
	h.emit(id, &pb.ReportSubmitted{Report: &pb.Report{Id: id, Filing: 1, IncidentTime: timestamppb.Now()}})
	nid := h.open(id)
	h.waitRetracted(id, nid)
}

// drained waits until the service's consumer has handled every event
// published so far.
func (h *harness) drained() {
	h.t.Helper()
	testenv.Eventually(h.t, 10*time.Second, "the service handled every event", func() bool {
		c, err := h.js.Consumer(context.Background(), events.Stream, retract.Name)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// A failed filing whose finish went through after all (an answer lost, the
// reporter gave up) is answered 5102 by /retract: the retraction says so
// with already_finished, the filing and its environment, which makes the
// filing finished in every fold, and the hand-over ends finished.
func TestRetraction5102PublishesAlreadyFinished(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	nid := h.open(id)
	ctx := context.Background()
	if err := h.ho.ClaimFinish(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Finish(ctx, nid); err != nil { // its answer lost
		t.Fatal(err)
	}
	h.emit(id, &pb.NcmecFailed{Filing: 1, Step: "finish", Code: 1000, Description: "gave up", ReportOpened: true, NcmecReportId: nid})
	testenv.Eventually(t, 10*time.Second, "retraction_failed published", func() bool { return h.count(events.NcmecRetractionFailed, id) == 1 })
	f := h.published(events.NcmecRetractionFailed, id)[0].GetNcmecRetractionFailed()
	if !f.AlreadyFinished || f.Filing != 1 || f.Environment != "production" || f.NcmecReportId != nid || f.Code != int32(ncmec.CodeAlreadyFinished) || f.Lost {
		t.Fatalf("retraction_failed %v", f)
	}
	if ev, ok := filing.Of(h.published(events.NcmecRetractionFailed, id)[0]); !ok || ev.State != filing.Finished {
		t.Fatalf("the fold reads it as %+v", ev)
	}
	if st := h.state(id); st["ncmec_state"] != "finished" || st["retraction"] != "finished_at_ncmec" {
		t.Fatalf("state %v", st)
	}
	if c := h.claim(id, 1); c != "finished" {
		t.Errorf("hand-over claim %q, want finished", c)
	}
	if h.status(nid) != "finished" || h.count(events.NcmecRetracted, id) != 0 {
		t.Fatal("the finished report was taken for retracted")
	}
	// Staff are told it is finished.
	if status, out := h.retract(id, token, "retract anyway"); status != http.StatusConflict || out["error"].(map[string]any)["code"] != "finished" {
		t.Fatalf("got %d %v, want 409 finished", status, out)
	}
}

// A report filed again: filing 1's failure arriving late is history, and
// must not retract filing 2's NCMEC report.
func TestLateFailureOfAnEarlierFilingSchedulesNothing(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := events.NewID()
	h.emit(id, &pb.ReportSubmitted{Report: &pb.Report{Id: id, Filing: 2, IncidentTime: timestamppb.Now()}})
	nid := h.openAtNCMEC(id, 2)
	h.emit(id, &pb.NcmecOpened{Filing: 2, NcmecReportId: nid, Environment: "production"})
	testenv.Eventually(t, 5*time.Second, "the service learnt of filing 2", func() bool { return h.state(id)["ncmec_report_id"] == float64(nid) })
	h.emit(id, &pb.NcmecFailed{Filing: 1, Step: "upload", Code: 2000, Description: "old", ReportOpened: true, NcmecReportId: nid - 1})
	h.drained()
	time.Sleep(200 * time.Millisecond) // a few worker polls
	st := h.state(id)
	if st["retraction"] != "none" || st["filing"] != float64(2) || st["ncmec_state"] != "opened" || st["ncmec_report_id"] != float64(nid) {
		t.Fatalf("state %v", st)
	}
	if n := h.calls("retract"); n != 0 {
		t.Fatalf("%d /retract calls", n)
	}
}

// An /submit whose answer was lost may have opened an NCMEC report; staff
// who learn its id from NCMEC retract it by name. The report's own filing
// is left alone.
func TestRetractLostNCMECReport(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	lost := h.submitAtNCMEC() // the answer never reached the reporter
	h.emit(id, &pb.NcmecSubmitAmbiguous{Filing: 1, Attempt: 1, Description: "connection dropped"})
	nid := h.open(id) // the reporter's fresh /submit
	testenv.Eventually(t, 5*time.Second, "the service learnt of the report and its ambiguous submit", func() bool {
		return h.state(id)["ncmec_report_id"] == float64(nid)
	})
	h.drained()
	status, out := h.post(id, token, map[string]any{"reason": "NCMEC told us of report " + fmt.Sprint(lost), "ncmec_report_id": lost, "environment": "production"})
	if status != http.StatusAccepted {
		t.Fatalf("got %d %v, want 202", status, out)
	}
	testenv.Eventually(t, 20*time.Second, "the lost report is retracted at NCMEC and the event published", func() bool {
		return h.status(lost) == "retracted" && h.count(events.NcmecRetracted, id) == 1
	})
	r := h.published(events.NcmecRetracted, id)[0].GetNcmecRetracted()
	if !r.Lost || r.NcmecReportId != lost || r.Filing != 1 || r.Environment != "production" {
		t.Fatalf("retracted event %v", r)
	}
	req := h.published(events.RetractionRequested, id)
	if len(req) != 1 || req[0].GetRetractionRequested().NcmecReportId != lost || req[0].Actor.GetKind() != pb.Actor_KIND_STAFF {
		t.Fatalf("retraction.requested %v", req)
	}
	// The filing itself goes on: its report is open, nothing owed.
	h.drained()
	if st := h.state(id); h.status(nid) != "open" || st["retraction"] != "none" || st["ncmec_state"] != "opened" || st["ncmec_report_id"] != float64(nid) {
		t.Fatalf("the filing moved: NCMEC %s, state %v", h.status(nid), st)
	}
	if c := h.claim(id, 1); c != "filing" {
		t.Errorf("hand-over claim %q, want filing", c)
	}
	if st := h.state(id); len(st["lost_retractions"].([]any)) != 1 || st["lost_retractions"].([]any)[0].(map[string]any)["outcome"] != "retracted" {
		t.Errorf("lost retractions %v", st["lost_retractions"])
	}
	// Asking again is refused; so are the report's own id and another environment.
	for _, c := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"reason": "again", "ncmec_report_id": lost}, 409, "already_retracted"},
		{map[string]any{"reason": "own", "ncmec_report_id": nid}, 400, "invalid"},
		{map[string]any{"reason": "elsewhere", "ncmec_report_id": lost + 1000, "environment": "test"}, 400, "invalid"},
		{map[string]any{"reason": "bad env", "ncmec_report_id": lost + 1000, "environment": "staging"}, 400, "invalid"},
		{map[string]any{"reason": "env alone", "environment": "production"}, 400, "invalid"},
	} {
		status, out := h.post(id, token, c.body)
		if status != c.status || out["error"].(map[string]any)["code"] != c.code {
			t.Errorf("%v: got %d %v, want %d %s", c.body, status, out, c.status, c.code)
		}
	}
	if n := h.calls("retract"); n != 1 {
		t.Fatalf("%d /retract calls, want 1", n)
	}
}

// Without an ambiguous /submit every NCMEC report of the report is known:
// an id from elsewhere is refused, and nothing is sent to NCMEC.
func TestRetractLostWithoutAmbiguousSubmitIsRefused(t *testing.T) {
	t.Parallel()
	h := start(t)
	id := h.submitted()
	h.open(id)
	other := h.submitAtNCMEC()
	testenv.Eventually(t, 5*time.Second, "the service learnt of the report", func() bool { return h.state(id)["ncmec_state"] == "opened" })
	status, out := h.post(id, token, map[string]any{"reason": "typo", "ncmec_report_id": other, "environment": "production"})
	if status != http.StatusConflict || out["error"].(map[string]any)["code"] != "no_ambiguous_submit" ||
		!strings.Contains(out["error"].(map[string]any)["message"].(string), "without an answer") {
		t.Fatalf("got %d %v, want 409 no_ambiguous_submit", status, out)
	}
	time.Sleep(100 * time.Millisecond)
	if h.calls("retract") != 0 || h.status(other) != "open" || h.count(events.RetractionRequested, id) != 0 {
		t.Fatal("a refused request changed something")
	}
}

// A filing whose files are uploading is open at NCMEC as much as one just
// opened: the sweep retracts it when it stops changing.
func TestSweepRetractsAnUploadingFiling(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *app.Config) { c.Retract.StaleAfter, c.Retract.Sweep = 300*time.Millisecond, 50*time.Millisecond })
	id := h.submitted()
	// Only the upload is announced (its opened event lost), so that the
	// filing is never merely "opened" here.
	nid := h.openAtNCMEC(id, 1)
	h.emit(id, &pb.NcmecFileUploaded{Filing: 1, NcmecReportId: nid, FileId: "f1"})
	h.waitRetracted(id, nid)
	if st := h.state(id); !strings.Contains(st["reason"].(string), "unchanged") || st["ncmec_state"] != "retracted" {
		t.Errorf("state %v", st)
	}
}
