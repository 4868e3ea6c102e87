package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"takedown/pkg/auth"
	"takedown/pkg/config"
	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/service"
	"takedown/pkg/staffaction"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
	"takedown/services/audit-logger/internal/app"
	"takedown/services/audit-logger/internal/auditlog"
	"takedown/services/audit-logger/internal/httpapi"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	token         = "test-token"
	reporterToken = "reporter-token"
)

// reporterSignIn signs in a staff member who may submit reports but not
// read the audit log.
func reporterSignIn(r *http.Request) (auth.Staff, bool, error) {
	if r.Header.Get("Authorization") != "Bearer "+reporterToken {
		return auth.Staff{}, false, nil
	}
	return auth.Staff{Subject: "alice", Name: "Alice", Roles: []string{auth.RoleReporter}}, true, nil
}

type harness struct {
	t      *testing.T
	url    string
	db     string
	writer string // the role the service works as (AUDIT_DB_ROLE)
	js     jetstream.JetStream
}

// start runs the real audit-logger wiring against real PostgreSQL and NATS.
func start(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, db: testenv.Postgres(t)}
	// On its own login, as in production: it owns its schema, and works
	// as a writer role an administrator made and granted it.
	login := testenv.ServiceLogins(t, h.db, app.Name)[app.Name]
	h.writer = login.AuditRole
	n := testenv.StartNATS(t)
	cfg := app.Config{
		Service: service.Config{ListenAddr: "127.0.0.1:0", DatabaseURL: config.Secret(login.URL), NATSURL: n.URL(),
			StreamReplicas: 1, ShutdownTimeout: 5 * time.Second},
		DBRole:   login.AuditRole,
		DevToken: token,
		Authn:    []auth.Authenticator{reporterSignIn},
	}
	a, err := app.New(t.Context(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := a.Listen()
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("audit-logger stopped with %v", err)
		}
		a.Close()
	})
	nc, js, err := stream.Connect(n.URL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h.js = js
	return h
}

// publish sends env to the stream; with msgID the stream drops a copy sent
// within its duplicate window, without it the stream keeps every copy (a
// republish after the window), which the logger must see through itself.
func (h *harness) publish(env *pb.Envelope, msgID bool) {
	h.t.Helper()
	b, err := events.Marshal(env)
	if err != nil {
		h.t.Fatal(err)
	}
	m := nats.NewMsg(events.Subject(env.Type))
	m.Data = b
	if msgID {
		m.Header.Set(jetstream.MsgIDHeader, env.EventId)
	}
	if _, err := h.js.PublishMsg(h.t.Context(), m); err != nil {
		h.t.Fatal(err)
	}
}

func newEvent(t *testing.T, reportID string, actor *pb.Actor, payload proto.Message) *pb.Envelope {
	t.Helper()
	env, err := events.New(reportID, actor, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (h *harness) get(path, tok string, out any) int {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		h.t.Fatalf("GET %s: %d, undecodable answer: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// owner connects as the database owner (the test's superuser), as someone
// with direct database access would.
func (h *harness) owner() *pgx.Conn {
	h.t.Helper()
	c, err := pgx.Connect(h.t.Context(), h.db+"&search_path=audit")
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (h *harness) count() int {
	h.t.Helper()
	c := h.owner()
	var n int
	if err := c.QueryRow(h.t.Context(), `SELECT count(*) FROM entries`).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// waitEntries waits until the log holds n entries.
func (h *harness) waitEntries(n int) {
	h.t.Helper()
	testenv.Eventually(h.t, 20*time.Second, "audit entries recorded", func() bool { return h.count() >= n })
	if got := h.count(); got != n {
		h.t.Fatalf("%d entries, want %d", got, n)
	}
}

func (h *harness) list(query string) httpapi.Page {
	h.t.Helper()
	var p httpapi.Page
	if code := h.get("/api/v1/audit"+query, token, &p); code != http.StatusOK {
		h.t.Fatalf("GET /api/v1/audit%s: %d", query, code)
	}
	return p
}

func (h *harness) verifyAPI() auditlog.Result {
	h.t.Helper()
	var r auditlog.Result
	if code := h.get("/api/v1/audit/verify", token, &r); code != http.StatusOK {
		h.t.Fatalf("GET /api/v1/audit/verify: %d", code)
	}
	return r
}

// verifyCommand runs the verify command's function on the test's database.
func (h *harness) verifyCommand() (int, auditlog.Result) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"DATABASE_URL": h.db}
	code := app.Verify(h.t.Context(), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &out, &errOut)
	var r auditlog.Result
	if code != app.VerifyError {
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			h.t.Fatalf("verify printed %q: %v", out.String(), err)
		}
	} else {
		h.t.Logf("verify: %s", errOut.String())
	}
	return code, r
}

func staffAction(t *testing.T, e httpapi.Entry) *pb.StaffAction {
	t.Helper()
	var env pb.Envelope
	if err := protojson.Unmarshal(e.Event, &env); err != nil {
		t.Fatalf("entry %d: %v", e.Seq, err)
	}
	if env.GetStaffAction() == nil {
		t.Fatalf("entry %d is a %s, not a staff action", e.Seq, e.Type)
	}
	return env.GetStaffAction()
}

func TestEveryEventRecordedOnceInOrder(t *testing.T) {
	t.Parallel()
	h := start(t)
	report := events.NewID()
	wrappedKey := []byte("wrapped-data-key-never-logged")
	evs := []*pb.Envelope{
		newEvent(t, report, events.Staff("alice", "Alice"), &pb.ReportSubmitted{Report: &pb.Report{Id: report},
			Files: []*pb.File{{Id: events.NewID(), Sha256: "ab12"}}, DataKey: &pb.WrappedKey{MasterKeyId: "k1", Ciphertext: wrappedKey}}),
		newEvent(t, report, events.Service("ncmec-reporter"), &pb.NcmecOpened{NcmecReportId: 7}),
		newEvent(t, report, events.Service("case-writer"), &pb.CaseUpserted{CaseId: "500x"}),
		newEvent(t, "", events.Staff("bob", "Bob"), &pb.StaffAction{Action: "sign_in", Method: "GET", Path: "/", RemoteAddr: "192.0.2.7:5555"}),
		newEvent(t, report, events.Service("ncmec-reporter"), &pb.NcmecFinished{NcmecReportId: 7}),
	}
	for i, e := range evs {
		h.publish(e, true)
		if i == 1 {
			h.publish(e, false) // the same event again, past the duplicate window
		}
	}
	h.publish(evs[0], true) // within the window: the stream drops it
	h.waitEntries(len(evs))

	page := h.list("")
	if len(page.Entries) != len(evs) || page.NextAfter != nil {
		t.Fatalf("%d entries (next %v), want %d", len(page.Entries), page.NextAfter, len(evs))
	}
	prev := auditlog.GenesisHash
	for i, e := range page.Entries {
		if e.Seq != int64(i+1) || e.EventID != evs[i].EventId || e.Type != evs[i].Type || e.ReportID != evs[i].ReportId {
			t.Errorf("entry %d = seq %d %s %s, want %s %s", i, e.Seq, e.EventID, e.Type, evs[i].EventId, evs[i].Type)
		}
		if i > 0 && e.StreamSeq <= page.Entries[i-1].StreamSeq {
			t.Errorf("entry %d: stream seq %d not after %d", e.Seq, e.StreamSeq, page.Entries[i-1].StreamSeq)
		}
		if want := auditlog.ActorOf(evs[i].Actor); e.Actor != want {
			t.Errorf("entry %d: actor %+v, want %+v", e.Seq, e.Actor, want)
		}
		// Anyone holding the answer can check the chain themselves.
		if e.PrevHash != auditlog.HexHash(prev) || e.Hash != auditlog.HexHash(auditlog.Hash(prev, []byte(e.Content))) {
			t.Errorf("entry %d does not chain: prev %s hash %s", e.Seq, e.PrevHash, e.Hash)
		}
		prev = auditlog.Hash(prev, []byte(e.Content))
	}
	first := page.Entries[0]
	if strings.Contains(first.Content, "d3JhcHBlZC1kYXRh") || bytes.Contains(first.Event, []byte("d3JhcHBlZC1kYXRh")) {
		t.Error("the report's wrapped data key is in the audit log")
	}
	if !bytes.Contains(first.Event, []byte(`"masterKeyId":"k1"`)) || !bytes.Contains(first.Event, []byte(`"ab12"`)) {
		t.Errorf("event of entry 1: %s", first.Event)
	}

	// The auditor's read is an entry of its own.
	h.waitEntries(len(evs) + 1)
	page = h.list("?after=5")
	read := page.Entries[0]
	if sa := staffAction(t, read); read.Actor.ID != "dev" || sa.Action != httpapi.ActionRead || sa.Path != "/api/v1/audit" || sa.RemoteAddr == "" {
		t.Errorf("read recorded as %+v by %+v", sa, read.Actor)
	}

	if r := h.verifyAPI(); !r.OK || r.Entries < 6 || r.FirstBad != nil {
		t.Fatalf("verify = %+v", r)
	}
	h.waitEntries(len(evs) + 3) // the second read and the verify
	page = h.list("?after=7")
	if sa := staffAction(t, page.Entries[0]); sa.Action != httpapi.ActionVerify || !strings.HasPrefix(sa.Detail, "ok: ") {
		t.Errorf("verify recorded as %+v", sa)
	}
	h.waitEntries(len(evs) + 4)
	if code, r := h.verifyCommand(); code != app.VerifyOK || !r.OK || r.Entries != int64(len(evs)+4) {
		t.Fatalf("verify command = %d %+v", code, r)
	}

	var metrics bytes.Buffer
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`takedown_audit_logger_entries_total{type="ncmec.opened"} 1`,
		`takedown_audit_logger_chain_last_seq 9`, `takedown_audit_logger_verify_total{result="ok"} 1`} {
		if !strings.Contains(metrics.String(), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func TestReportFilterAndPagination(t *testing.T) {
	t.Parallel()
	h := start(t)
	a, b := events.NewID(), events.NewID()
	svc := events.Service("ncmec-reporter")
	evs := []*pb.Envelope{
		newEvent(t, a, svc, &pb.NcmecOpened{NcmecReportId: 1}),
		newEvent(t, b, svc, &pb.NcmecOpened{NcmecReportId: 2}),
		newEvent(t, a, svc, &pb.NcmecFinished{NcmecReportId: 1}),
		newEvent(t, "", events.Staff("bob", "Bob"), &pb.StaffAction{Action: "sign_in"}),
		newEvent(t, a, events.Staff("carol", "Carol"), &pb.RetractionRequested{Reason: "test"}),
		newEvent(t, b, svc, &pb.NcmecFinished{NcmecReportId: 2}),
	}
	for _, e := range evs {
		h.publish(e, true)
	}
	h.waitEntries(len(evs))

	ofA := h.list("?report_id=" + a)
	var got []string
	for _, e := range ofA.Entries {
		got = append(got, e.EventID)
	}
	if want := []string{evs[0].EventId, evs[2].EventId, evs[4].EventId}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("report a: %v, want %v", got, want)
	}
	// Who read report a's trail shows in report a's trail.
	h.waitEntries(len(evs) + 1)
	ofA = h.list("?report_id=" + a)
	if n := len(ofA.Entries); n != 4 || staffAction(t, ofA.Entries[3]).Action != httpapi.ActionRead {
		t.Fatalf("report a after a read: %d entries", n)
	}

	// Pages of two walk the whole log in order (reads keep adding entries).
	var seqs []int64
	after := int64(0)
	for pages := 0; ; pages++ {
		if pages > 50 {
			t.Fatal("pagination does not end")
		}
		p := h.list("?limit=2&after=" + strconv.FormatInt(after, 10))
		if len(p.Entries) > 2 {
			t.Fatalf("page of %d", len(p.Entries))
		}
		for _, e := range p.Entries {
			seqs = append(seqs, e.Seq)
		}
		if p.NextAfter == nil {
			break
		}
		after = *p.NextAfter
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("pages gave seqs %v", seqs)
		}
	}
	if len(seqs) < len(evs)+1 {
		t.Fatalf("pages gave %d entries", len(seqs))
	}

	for q, field := range map[string]string{"?report_id=nope": "report_id", "?limit=0": "limit",
		"?limit=1001": "limit", "?after=-1": "after", "?after=x": "after"} {
		var e struct {
			Error struct{ Code, Message, Field string }
		}
		if code := h.get("/api/v1/audit"+q, token, &e); code != http.StatusBadRequest || e.Error.Field != field || e.Error.Code != "invalid" {
			t.Errorf("%s: %d %+v", q, code, e)
		}
	}
}

func TestRefusalsAreAnsweredAndRecorded(t *testing.T) {
	t.Parallel()
	h := start(t)
	for _, tc := range []struct {
		path, tok string
		status    int
		code      string
	}{
		{"/api/v1/audit", "", http.StatusUnauthorized, "unauthenticated"},
		{"/api/v1/audit/verify", "wrong-token", http.StatusUnauthorized, "unauthenticated"},
		{"/api/v1/audit?report_id=" + events.NewID(), reporterToken, http.StatusForbidden, "forbidden"},
	} {
		var e struct {
			Error struct{ Code, Message string }
		}
		if code := h.get(tc.path, tc.tok, &e); code != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
			t.Errorf("GET %s with %q: %d %+v, want %d %s", tc.path, tc.tok, code, e, tc.status, tc.code)
		}
	}
	h.waitEntries(3)
	var alice, anonymous int
	for _, e := range h.list("").Entries[:3] {
		sa := staffAction(t, e)
		if sa.Action != httpapi.ActionDenied {
			t.Errorf("entry %d: %+v", e.Seq, sa)
		}
		switch {
		case e.Actor.ID == "alice" && e.Actor.Kind == "staff" && strings.HasPrefix(sa.Detail, "403"):
			alice++
		case e.Actor.ID == "anonymous" && strings.HasPrefix(sa.Detail, "401"):
			anonymous++
		default:
			t.Errorf("entry %d: denial of %+v recorded as %+v", e.Seq, e.Actor, sa)
		}
	}
	if alice != 1 || anonymous != 2 {
		t.Errorf("denials: alice %d, anonymous %d", alice, anonymous)
	}
}

// An anonymous client must not be able to grow the log without bound: its
// refusals are recorded cut to size, without its query's values, and only
// the first few of each minute one by one (the rest as one aggregate entry,
// pkg/staffaction).
func TestAnonymousRefusalsCannotFloodTheLog(t *testing.T) {
	t.Parallel()
	h := start(t)
	long := strings.Repeat("A", 200_000)
	for range 30 {
		var e struct{ Error struct{ Code string } }
		if code := h.get("/api/v1/audit?secret="+long+"&more="+long, "", &e); code != http.StatusUnauthorized {
			t.Fatalf("anonymous request answered %d %+v", code, e)
		}
	}
	testenv.Eventually(t, 20*time.Second, "the first denials recorded", func() bool { return h.count() >= staffaction.PerClient })
	// The auditor's read is recorded after every denial the flood made.
	h.list("?limit=1")
	testenv.Eventually(t, 20*time.Second, "the read recorded", func() bool {
		for _, e := range h.list("?limit=1000").Entries {
			if staffAction(t, e).Action == httpapi.ActionRead {
				return true
			}
		}
		return false
	})
	denials := 0
	for _, e := range h.list("?limit=1000").Entries {
		sa := staffAction(t, e)
		if sa.Action != httpapi.ActionDenied {
			continue
		}
		denials++
		if len(e.Content) > 4096 || sa.Path != "/api/v1/audit?secret=&more=" {
			t.Errorf("entry %d holds %d bytes, path %.80q...", e.Seq, len(e.Content), sa.Path)
		}
	}
	if denials != staffaction.PerClient {
		t.Errorf("%d denials recorded one by one from 30 anonymous requests; want %d", denials, staffaction.PerClient)
	}
}

// seed records five events and returns their ids by seq.
func seed(t *testing.T, h *harness) map[int64]string {
	t.Helper()
	ids := map[int64]string{}
	for i := range 5 {
		e := newEvent(t, events.NewID(), events.Service("ncmec-reporter"), &pb.NcmecOpened{NcmecReportId: int64(i)})
		h.publish(e, true)
		ids[int64(i+1)] = e.EventId
	}
	h.waitEntries(5)
	return ids
}

func insert(t *testing.T, c *pgx.Conn, e auditlog.Entry) {
	t.Helper()
	if _, err := c.Exec(t.Context(), `INSERT INTO entries (seq, event_id, type, report_id, actor_kind, actor_id,
		actor_name, occurred_at, recorded_at, stream_seq, content, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		e.Seq, e.EventID, e.Type, e.ReportID, e.Actor.Kind, e.Actor.ID, e.Actor.Name, e.OccurredAt, e.RecordedAt,
		int64(e.StreamSeq), e.Content, e.PrevHash, e.Hash); err != nil {
		t.Fatal(err)
	}
}

// forge makes an entry that follows seq as the logger would have made it:
// whoever has the database can compute SHA-256 too.
func forge(t *testing.T, c *pgx.Conn, after int64) auditlog.Entry {
	t.Helper()
	var prev []byte
	if err := c.QueryRow(t.Context(), `SELECT hash FROM entries WHERE seq = $1`, after).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	env := newEvent(t, events.NewID(), events.Staff("mallory", "Mallory"), &pb.RetractionRequested{Reason: "forged"})
	e, err := auditlog.NewEntry(after, prev, env, 999, time.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Tampering with the stored log directly, as someone with the owner's
// access to the database could, is caught by verify, which names the first
// bad entry.
func TestTamperingIsCaughtByVerify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, c *pgx.Conn)
		bad     int64
		eventOf int64 // the seq (before tampering) of the event named; 0: none
		reason  string
	}{
		{"content changed", func(t *testing.T, c *pgx.Conn) {
			exec(t, c, `UPDATE entries SET content = convert_to(replace(convert_from(content, 'UTF8'),
				'"ncmec.opened"', '"ncmec.closed"'), 'UTF8'), type = 'ncmec.closed' WHERE seq = 3`)
		}, 3, 3, "hash does not match"},
		{"column changed", func(t *testing.T, c *pgx.Conn) {
			exec(t, c, `UPDATE entries SET actor_name = 'Mallory' WHERE seq = 2`)
		}, 2, 2, "actor differs from the hashed content"},
		{"refusal erased", func(t *testing.T, c *pgx.Conn) {
			exec(t, c, `UPDATE entries SET refused = 'owner: forged' WHERE seq = 2`)
		}, 2, 2, "refused differs from the hashed content"},
		{"hash rewritten", func(t *testing.T, c *pgx.Conn) {
			exec(t, c, `UPDATE entries SET hash = sha256(content) WHERE seq = 4`)
		}, 4, 4, "hash does not match"},
		{"deleted", func(t *testing.T, c *pgx.Conn) {
			exec(t, c, `DELETE FROM entries WHERE seq = 3`)
		}, 4, 4, "entry 3 is missing"},
		{"last deleted", func(t *testing.T, c *pgx.Conn) {
			exec(t, c, `DELETE FROM entries WHERE seq = 5`)
		}, 5, 0, "the chain head is at 5"},
		{"inserted at the end", func(t *testing.T, c *pgx.Conn) {
			insert(t, c, forge(t, c, 5))
		}, 6, -1, "past the chain head"},
		{"inserted in the middle, head moved", func(t *testing.T, c *pgx.Conn) {
			exec(t, c, `UPDATE entries SET seq = seq + 1000 WHERE seq >= 3`)
			exec(t, c, `UPDATE entries SET seq = seq - 999 WHERE seq >= 1000`)
			insert(t, c, forge(t, c, 2))
			exec(t, c, `UPDATE chain_head SET seq = 6, hash = (SELECT hash FROM entries WHERE seq = 6)`)
		}, 4, 3, "prev_hash is not the hash of entry 3"},
		{"reordered", func(t *testing.T, c *pgx.Conn) {
			exec(t, c, `UPDATE entries SET seq = 1000 WHERE seq = 2`)
			exec(t, c, `UPDATE entries SET seq = 2 WHERE seq = 3`)
			exec(t, c, `UPDATE entries SET seq = 3 WHERE seq = 1000`)
		}, 2, 3, "prev_hash is not the hash of entry 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := start(t)
			ids := seed(t, h)
			if code, r := h.verifyCommand(); code != app.VerifyOK || !r.OK {
				t.Fatalf("before tampering: %d %+v", code, r)
			}
			c := h.owner()
			// The triggers refuse even the owner; a tamperer disables them first.
			exec(t, c, `ALTER TABLE entries DISABLE TRIGGER USER`)
			exec(t, c, `ALTER TABLE chain_head DISABLE TRIGGER USER`)
			var forged string
			if tc.eventOf == -1 {
				tc.tamper(t, c)
				if err := c.QueryRow(t.Context(), `SELECT event_id::text FROM entries WHERE seq = 6`).Scan(&forged); err != nil {
					t.Fatal(err)
				}
			} else {
				tc.tamper(t, c)
			}
			exec(t, c, `ALTER TABLE entries ENABLE TRIGGER USER`)
			exec(t, c, `ALTER TABLE chain_head ENABLE TRIGGER USER`)

			wantEvent := ids[tc.eventOf]
			if tc.eventOf == -1 {
				wantEvent = forged
			}
			check := func(how string, r auditlog.Result) {
				t.Helper()
				if r.OK || r.FirstBad == nil {
					t.Fatalf("%s: tampering not caught: %+v", how, r)
				}
				if r.FirstBad.Seq != tc.bad || r.FirstBad.EventID != wantEvent || !strings.Contains(r.FirstBad.Reason, tc.reason) {
					t.Errorf("%s: first bad %+v, want seq %d event %q reason %q", how, r.FirstBad, tc.bad, wantEvent, tc.reason)
				}
			}
			code, r := h.verifyCommand()
			if code != app.VerifyBad {
				t.Errorf("verify command exited %d, want %d", code, app.VerifyBad)
			}
			check("command", r)
			check("API", h.verifyAPI())
		})
	}
}

func exec(t *testing.T, c *pgx.Conn, sql string) {
	t.Helper()
	if _, err := c.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// refused runs sql and returns the SQLSTATE and message it failed with.
func refused(t *testing.T, c *pgx.Conn, sql string) (string, string) {
	t.Helper()
	_, err := c.Exec(t.Context(), sql)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("%s: not refused (%v)", sql, err)
	}
	return pgErr.Code, pgErr.Message
}

func TestAppendOnlyByTriggerAndByRole(t *testing.T) {
	t.Parallel()
	h := start(t)
	seed(t, h)
	c := h.owner()

	// The owner is refused by the triggers.
	for _, sql := range []string{
		`UPDATE entries SET actor_name = 'x' WHERE seq = 1`,
		`DELETE FROM entries WHERE seq = 5`,
		`TRUNCATE entries`,
		`DELETE FROM chain_head`,
		`TRUNCATE chain_head`,
	} {
		if _, msg := refused(t, c, sql); !strings.Contains(msg, "append-only") {
			t.Errorf("owner: %s refused with %q", sql, msg)
		}
	}
	if _, msg := refused(t, c, `UPDATE chain_head SET seq = 3, hash = (SELECT hash FROM entries WHERE seq = 3)`); !strings.Contains(msg, "may only advance") {
		t.Errorf("owner moved the chain head back: %q", msg)
	}

	// The service's role lacks the privileges in the first place.
	exec(t, c, `SET ROLE `+h.writer)
	for _, sql := range []string{
		`UPDATE entries SET actor_name = 'x' WHERE seq = 1`,
		`DELETE FROM entries WHERE seq = 5`,
		`TRUNCATE entries`,
		`ALTER TABLE entries DISABLE TRIGGER USER`,
		`DELETE FROM chain_head`,
		`INSERT INTO chain_head (singleton, seq, hash) VALUES (false, 0, '')`,
	} {
		if code, msg := refused(t, c, sql); code != "42501" {
			t.Errorf("writer role: %s refused with %s %q, want 42501 (insufficient privilege)", sql, code, msg)
		}
	}
	// What it may do, append, it may only do as the next link.
	e := forge(t, c, 2)
	_, err := c.Exec(t.Context(), `INSERT INTO entries (seq, event_id, type, report_id, actor_kind, actor_id,
		actor_name, recorded_at, stream_seq, content, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		e.Seq, e.EventID, e.Type, e.ReportID, e.Actor.Kind, e.Actor.ID, e.Actor.Name, e.RecordedAt,
		int64(e.StreamSeq), e.Content, e.PrevHash, e.Hash)
	if err == nil || !strings.Contains(err.Error(), "not the next link") {
		t.Errorf("writer role spliced an entry into the chain: %v", err)
	}
	if _, msg := refused(t, c, `UPDATE chain_head SET seq = 9`); !strings.Contains(msg, "may only advance") {
		t.Errorf("writer role moved the head: %q", msg)
	}
	exec(t, c, `RESET ROLE`)

	if code, r := h.verifyCommand(); code != app.VerifyOK || r.Entries != 5 {
		t.Fatalf("after the refusals: %d %+v", code, r)
	}
}

func TestVerifyCommandErrors(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	none := func(string) (string, bool) { return "", false }
	if code := app.Verify(t.Context(), none, &out, &errOut); code != app.VerifyError || !strings.Contains(errOut.String(), "DATABASE_URL") {
		t.Errorf("without DATABASE_URL: %d %q", code, errOut.String())
	}
	db := testenv.Postgres(t) // a database without an audit log
	errOut.Reset()
	lookup := func(k string) (string, bool) { return db, k == "DATABASE_URL" }
	if code := app.Verify(t.Context(), lookup, &out, &errOut); code != app.VerifyError || out.Len() != 0 {
		t.Errorf("without a log: %d %q %q", code, out.String(), errOut.String())
	}
}

// An event the consumer refuses (here an NCMEC receipt slipped onto
// takedown.staff.action) is still logged, marked refused, so the log shows
// the forgery; the chain verifies and the refusal is counted.
func TestRefusedEventIsRecordedAsRefused(t *testing.T) {
	t.Parallel()
	h := start(t)
	report := events.NewID()
	forged := newEvent(t, report, events.Service(events.NcmecReporter), &pb.NcmecFinished{NcmecReportId: 7})
	b, err := events.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.Publish(t.Context(), events.Subject(events.StaffAction), b); err != nil {
		t.Fatal(err)
	}
	impostor := newEvent(t, report, events.Service(events.Intake), &pb.NcmecOpened{NcmecReportId: 7})
	h.publish(impostor, true)
	ordinary := newEvent(t, report, events.Service(events.NcmecReporter), &pb.NcmecOpened{NcmecReportId: 7})
	h.publish(ordinary, true)
	h.waitEntries(3)

	page := h.list("?report_id=" + report)
	if len(page.Entries) != 3 {
		t.Fatalf("%d entries, want 3", len(page.Entries))
	}
	for i, c := range []struct {
		env     *pb.Envelope
		refused string
	}{{forged, events.RefusedSubject + ": "}, {impostor, events.RefusedOwner + ": "}, {ordinary, ""}} {
		e := page.Entries[i]
		if e.EventID != c.env.EventId || e.Type != c.env.Type {
			t.Errorf("entry %d is %s %s, want %s %s", i, e.EventID, e.Type, c.env.EventId, c.env.Type)
		}
		if !strings.HasPrefix(e.Refused, c.refused) || (c.refused == "") != (e.Refused == "") {
			t.Errorf("entry %d (%s) refused %q, want %q…", i, e.Type, e.Refused, c.refused)
		}
		if c.refused != "" && !strings.Contains(e.Content, `"refused":"`+c.refused) {
			t.Errorf("entry %d: the refusal is not in the hashed content: %s", i, e.Content)
		}
	}
	if r := h.verifyAPI(); !r.OK {
		t.Fatalf("verify = %+v", r)
	}
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, m := range []string{
		`takedown_audit_logger_events_refused_total{consumer="audit-logger",reason="subject",type="ncmec.finished"} 1`,
		`takedown_audit_logger_events_refused_total{consumer="audit-logger",reason="owner",type="ncmec.opened"} 1`,
	} {
		if !strings.Contains(metrics.String(), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}
