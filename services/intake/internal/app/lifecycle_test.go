package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/auth"
	"takedown/pkg/config"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/keyring"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/app"
	"takedown/services/intake/internal/lifecycle"
)

// retention is short so that tests see it end; governance mode so that the
// cleanup can remove what is left.
const retention = 3 * time.Second

// startLocked runs intake over a bucket with S3 object lock.
func startLocked(t *testing.T, opts ...func(*app.Config)) *harness {
	t.Helper()
	s3 := testenv.S3(t)
	s3.Bucket += "-lock"
	c := s3.Client(t)
	t.Cleanup(func() {
		ctx := context.Background()
		for o := range c.ListObjects(ctx, s3.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			_ = c.RemoveObject(ctx, s3.Bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID, GovernanceBypass: true})
		}
		_ = c.RemoveBucket(ctx, s3.Bucket)
	})
	return start(t, s3, append([]func(*app.Config){func(c *app.Config) {
		c.CreateBucket = true
		c.Retention = lifecycle.Policy{Retention: retention, Retracted: retention, ObjectLock: true, Mode: evidence.Governance}
		c.LifecycleEvery = time.Hour // the tests drive the job
	}}, opts...)...)
}

func (h *harness) submitOne(data []byte) string {
	h.t.Helper()
	ct, b := body(h.t, goodReport, file{"a.bin", data})
	resp, out := h.post(ct, bytes.NewReader(b), token)
	if resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("submit: %d %v", resp.StatusCode, out)
	}
	return out["id"].(string)
}

func (h *harness) do(method, path string, in any) (int, map[string]any) {
	h.t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, h.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// file row of a report's only file.
type fileRow struct {
	id, key, sha256 string
	destroyed       bool
	lockedUntil     *time.Time
}

func (h *harness) fileOf(reportID string) fileRow {
	h.t.Helper()
	conn, err := pgxConnect(h.t, h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var f fileRow
	if err := conn.QueryRow(context.Background(), `SELECT id::text, object_key, sha256, destroyed_at IS NOT NULL, locked_until
		FROM intake.files WHERE report_id = $1`, reportID).Scan(&f.id, &f.key, &f.sha256, &f.destroyed, &f.lockedUntil); err != nil {
		h.t.Fatal(err)
	}
	return f
}

func (h *harness) query(sql string, args []any, dest ...any) {
	h.t.Helper()
	conn, err := pgxConnect(h.t, h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		h.t.Fatal(err)
	}
}

// versions lists every S3 version of key.
func (h *harness) versions(key string) []minio.ObjectInfo {
	h.t.Helper()
	var out []minio.ObjectInfo
	for o := range h.s3.Client(h.t).ListObjects(context.Background(), h.s3.Bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}) {
		if o.Err == nil && o.Key == key {
			out = append(out, o)
		}
	}
	return out
}

func (h *harness) finish(reportID string) {
	h.t.Helper()
	h.publish(h.t.(*testing.T), reportID, &pb.NcmecFinished{NcmecReportId: 4242, FinishedAt: timestamppb.Now(), ReceiptXml: "<receipt/>"})
	testenv.Eventually(h.t, 10*time.Second, "retention set on finish", func() bool {
		var set bool
		h.query(`SELECT retain_until IS NOT NULL FROM intake.reports WHERE id = $1`, []any{reportID}, &set)
		return set
	})
}

func TestRetentionHoldAndExpiry(t *testing.T) {
	t.Parallel()
	h := startLocked(t)
	ctx := t.Context()
	lc := h.app.Lifecycle
	a, b := h.submitOne(random(5000)), h.submitOne(random(6000))
	// The lifecycle job locks a report's objects as soon as it is stored,
	// told by the submission: the periodic lock (hourly here) does not.
	var fa, fb fileRow
	testenv.Eventually(t, 10*time.Second, "the objects locked after upload", func() bool {
		fa, fb = h.fileOf(a), h.fileOf(b)
		return fa.lockedUntil != nil && fb.lockedUntil != nil
	})
	c := h.s3.Client(t)

	// Not yet finished: nothing expires, and S3 refuses to delete.
	if got, err := lc.Expire(ctx, false); err != nil || len(got) != 0 {
		t.Fatalf("Expire before finish = %v, %v", got, err)
	}
	for _, v := range h.versions(fa.key) {
		if err := c.RemoveObject(ctx, h.s3.Bucket, fa.key, minio.RemoveObjectOptions{VersionID: v.VersionID}); err == nil {
			t.Fatal("S3 deleted a locked version")
		}
	}

	h.finish(a)
	h.finish(b)
	if _, err := lc.Lock(ctx); err != nil { // extends the lock to finish + retention
		t.Fatal(err)
	}
	code, hold := h.do(http.MethodPost, "/api/v1/reports/"+b+"/holds", map[string]string{"reason": "litigation 2026-17"})
	if code != http.StatusCreated {
		t.Fatalf("place hold: %d %v", code, hold)
	}
	if code, out := h.do(http.MethodPost, "/api/v1/reports/"+b+"/holds", map[string]string{}); code != http.StatusBadRequest {
		t.Errorf("hold without a reason: %d %v", code, out)
	}

	// Retention not ended: the service deletes nothing, S3 refuses.
	if got, err := lc.Expire(ctx, false); err != nil || len(got) != 0 {
		t.Fatalf("Expire before retention ends = %v, %v", got, err)
	}
	if err := evidenceStore(t, h).Delete(ctx, fa.key); err == nil {
		t.Fatal("the evidence store deleted an object under retention")
	}

	// Retention ends: the dry run names a only (b is held), deletes nothing.
	var dry []any
	testenv.Eventually(t, 20*time.Second, "retention of a ends", func() bool {
		_, out := h.do(http.MethodGet, "/api/v1/evidence/expiry", nil)
		dry, _ = out["would_delete"].([]any)
		return len(dry) > 0
	})
	if len(dry) != 1 || dry[0].(map[string]any)["report_id"] != a {
		t.Fatalf("dry run = %v, want report %s only", dry, a)
	}
	if len(h.versions(fa.key)) == 0 {
		t.Fatal("the dry run deleted")
	}
	// S3's own lock ends with the record (same period); wait for it.
	time.Sleep(time.Until(*h.fileOf(a).lockedUntil) + 200*time.Millisecond)
	got, err := lc.Expire(ctx, false)
	if err != nil || len(got) != 1 || got[0].ReportID != a {
		t.Fatalf("Expire = %v, %v; want report %s", got, err, a)
	}
	if v := h.versions(fa.key); len(v) != 0 {
		t.Errorf("versions of a left after expiry: %d", len(v))
	}
	after := h.fileOf(a)
	var ncmecID int64
	h.query(`SELECT ncmec_report_id FROM intake.reports WHERE id = $1`, []any{a}, &ncmecID)
	if !after.destroyed || after.sha256 != fa.sha256 || ncmecID != 4242 {
		t.Errorf("after expiry: destroyed %v sha256 %q (want %q) ncmec id %d", after.destroyed, after.sha256, fa.sha256, ncmecID)
	}
	if len(h.versions(fb.key)) == 0 {
		t.Fatal("the held report's file was deleted")
	}

	// The hold keeps b past its retention; lifting it lets expiry proceed.
	time.Sleep(time.Until(*h.fileOf(b).lockedUntil) + 200*time.Millisecond)
	if got, _ := lc.Expire(ctx, false); len(got) != 0 {
		t.Fatalf("Expire deleted held evidence: %v", got)
	}
	holdID := hold["id"].(string)
	if code, out := h.do(http.MethodDelete, "/api/v1/reports/"+b+"/holds/"+holdID, map[string]string{"reason": "case closed"}); code != http.StatusNoContent {
		t.Fatalf("lift hold: %d %v", code, out)
	}
	if got, err := lc.Expire(ctx, false); err != nil || len(got) != 1 || got[0].ReportID != b {
		t.Fatalf("Expire after the hold was lifted = %v, %v", got, err)
	}
	if v := h.versions(fb.key); len(v) != 0 {
		t.Errorf("versions of b left: %d", len(v))
	}
	testenv.Eventually(t, 10*time.Second, "two expiry certificates in the stream", func() bool {
		return len(h.events(events.EvidenceDestroyed)) == 2
	})
}

func evidenceStore(t *testing.T, h *harness) *evidence.Store {
	s, err := evidence.New(h.cfg.S3)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wrappedKey returns the wrapped data key the stream's submitted event of
// the report carries, waiting for the relay to publish it (under load it
// may not have yet), failing when it does not come.
func (h *harness) wrappedKey(reportID string) *pb.WrappedKey {
	h.t.Helper()
	var key *pb.WrappedKey
	testenv.Eventually(h.t, 10*time.Second, "the submitted event of report "+reportID+" in the stream", func() bool {
		for _, ev := range h.submitted() {
			if ev.ReportId == reportID {
				key = ev.GetReportSubmitted().DataKey
				return true
			}
		}
		return false
	})
	return key
}

// waitKeyPurged drives the lifecycle job's stream purge until no copy of
// the report's wrapped key is left: not in intake's reports, its outbox or
// the stream.
func (h *harness) waitKeyPurged(reportID string) {
	h.t.Helper()
	testenv.Eventually(h.t, 10*time.Second, "the submitted event erased from the stream", func() bool {
		if _, err := h.app.Lifecycle.PurgeStream(h.t.Context()); err != nil {
			h.t.Log(err)
		}
		for _, ev := range h.submitted() {
			if ev.ReportId == reportID {
				return false
			}
		}
		return true
	})
	var keyGone, purged bool
	var outboxed int
	h.query(`SELECT data_key IS NULL, stream_purged_at IS NOT NULL, (SELECT count(*) FROM intake.outbox o JOIN intake.report_events e USING (event_id)
		WHERE e.report_id = $1 AND e.type = $2) FROM intake.reports WHERE id = $1`, []any{reportID, events.ReportSubmitted}, &keyGone, &purged, &outboxed)
	if !keyGone || !purged || outboxed != 0 {
		h.t.Errorf("key destroyed %v, purge recorded %v, submitted events in the outbox %d", keyGone, purged, outboxed)
	}
}

// secondAdmin approves the destructions the dev token's staff member
// ("dev") requests.
var secondAdmin = auth.Staff{Subject: "second-admin", Name: "Second Admin", Roles: []string{auth.RoleEvidenceAdmin}}

// requestDestruction records, as the dev token's staff member, a
// law-enforcement request to destroy the report's evidence and returns its id.
func (h *harness) requestDestruction(reportID, agency, reference string) string {
	h.t.Helper()
	code, req := h.do(http.MethodPost, "/api/v1/reports/"+reportID+"/destruction-requests",
		map[string]string{"agency": agency, "reference": reference, "requested_on": "2026-03-01"})
	if code != http.StatusCreated {
		h.t.Fatalf("record request: %d %v", code, req)
	}
	return req["id"].(string)
}

// TestDestructionRequestRefusals: the request's date and the agency are
// part of the permanent record; a date in the future, or a body that names
// two agencies, is refused and records nothing.
func TestDestructionRequestRefusals(t *testing.T) {
	t.Parallel()
	h := startLocked(t)
	id := h.submitOne(random(7000))
	path := "/api/v1/reports/" + id + "/destruction-requests"
	today := time.Now().UTC()
	for _, tc := range []struct {
		name        string
		body        any
		status      int
		code, field string
	}{
		{"in two days", map[string]string{"agency": "A", "reference": "R", "requested_on": today.AddDate(0, 0, 2).Format(time.DateOnly)}, 400, "invalid", "requested_on"},
		{"next year", map[string]string{"agency": "A", "reference": "R", "requested_on": today.AddDate(1, 0, 0).Format(time.DateOnly)}, 400, "invalid", "requested_on"},
		{"agency twice", json.RawMessage(`{"agency": "A", "agency": "B", "reference": "R", "requested_on": "2026-03-01"}`), 400, "invalid_json", ""},
		{"agency twice but for case", json.RawMessage(`{"agency": "A", "Agency": "B", "reference": "R", "requested_on": "2026-03-01"}`), 400, "invalid_json", ""},
	} {
		code, out := h.do(http.MethodPost, path, tc.body)
		e, _ := out["error"].(map[string]any)
		if code != tc.status || e["code"] != tc.code || tc.field != "" && e["field"] != tc.field {
			t.Errorf("%s: %d %v, want %d %s %s", tc.name, code, out, tc.status, tc.code, tc.field)
		}
	}
	if n := h.count("destruction_requests"); n != 0 {
		t.Fatalf("%d requests recorded from refused bodies", n)
	}
	// Today by the calendar of the earliest time zone is not in the future.
	for _, day := range []time.Time{today, today.Add(14 * time.Hour)} {
		if code, out := h.do(http.MethodPost, path, map[string]string{"agency": "A", "reference": "R", "requested_on": day.Format(time.DateOnly)}); code != http.StatusCreated {
			t.Errorf("requested on %s: %d %v", day.Format(time.DateOnly), code, out)
		}
	}
}

func TestDestructionNeedsTwoPeople(t *testing.T) {
	t.Parallel()
	h := startLocked(t)
	ctx := t.Context()
	id := h.submitOne(random(7000))
	f := h.fileOf(id)
	h.finish(id) // under retention for a while yet

	reqID := h.requestDestruction(id, "FBI Field Office", "LE-2026-0042")
	// The dev token is the same person who recorded it.
	if code, out := h.do(http.MethodPost, "/api/v1/destruction-requests/"+reqID+"/approve", nil); code != http.StatusForbidden {
		t.Fatalf("approval by the requester: %d %v", code, out)
	}
	if len(h.versions(f.key)) == 0 {
		t.Fatal("destroyed without a second approval")
	}
	// A copy of the wrapped key read from the stream before the destruction.
	w := h.wrappedKey(id)
	d, err := h.app.Lifecycle.ApproveDestruction(ctx, secondAdmin, reqID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Files) != 1 || d.Files[0].Method != "deleted" {
		t.Errorf("files = %v", d.Files)
	}
	if _, err := h.app.Lifecycle.ApproveDestruction(ctx, secondAdmin, reqID); err == nil {
		t.Error("approved twice")
	}

	// No path reads the bytes: no S3 version, no wrapped key in intake.
	if v := h.versions(f.key); len(v) != 0 {
		t.Errorf("%d versions left", len(v))
	}
	h.waitKeyPurged(id)
	dk, err := h.keys.Unwrap(id, keyring.WrappedKey{MasterKeyID: w.MasterKeyId, Ciphertext: w.Ciphertext})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evidenceStore(t, h).Open(ctx, f.key, dk); !errors.Is(err, evidence.ErrNotFound) {
		t.Errorf("Open after destruction: %v, want ErrNotFound", err)
	}
	// The certificate is in the stream for the audit log.
	var cert *pb.EvidenceDestroyed
	testenv.Eventually(t, 10*time.Second, "destruction certificate published", func() bool {
		for _, ev := range h.events(events.EvidenceDestroyed) {
			if ev.ReportId == id {
				cert = ev.GetEvidenceDestroyed()
			}
		}
		return cert != nil
	})
	if cert.RequestedBy != "dev" || cert.ApprovedBy != "second-admin" || cert.Agency != "FBI Field Office" ||
		cert.Reference != "LE-2026-0042" || !cert.DataKeyDestroyed || len(cert.Files) != 1 || cert.Files[0].Sha256 != f.sha256 {
		t.Errorf("certificate = %v", cert)
	}
}

// Under compliance retention nobody can remove the objects before their
// lock ends, so a destruction destroys every copy of the report's key
// instead, and the ciphertext left in the bucket decrypts with none of
// them.
func TestComplianceDestructionDestroysTheKey(t *testing.T) {
	t.Parallel()
	h := startLocked(t, func(c *app.Config) {
		c.Retention.Mode = evidence.Compliance
		c.Retention.Retention = time.Hour // locked for the whole test
	})
	ctx := t.Context()
	data := random(7001)
	id := h.submitOne(data)
	f := h.fileOf(id)
	h.finish(id)
	d, err := h.app.Lifecycle.ApproveDestruction(ctx, secondAdmin, h.requestDestruction(id, "NCA", "UK-2026-7"))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Files) != 1 || d.Files[0].Method != "key_destroyed" {
		t.Errorf("files = %v, want one key_destroyed", d.Files)
	}
	v := h.versions(f.key)
	if len(v) == 0 {
		t.Fatal("an object under compliance retention was removed")
	}
	h.waitKeyPurged(id)
	// What is left is ciphertext: not a byte run of the upload in it.
	obj, err := h.s3.Client(t).GetObject(ctx, h.s3.Bucket, f.key, minio.GetObjectOptions{VersionID: v[0].VersionID})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) < len(data) || bytes.Contains(stored, data[:64]) {
		t.Errorf("the object left behind (%d bytes) is not the ciphertext of the %d uploaded", len(stored), len(data))
	}
}

// A destroyed key's purge waits until intake's progress consumer has
// recorded where every filing's submitted event is in the stream, rather
// than calling the report done with a copy left behind.
func TestStreamPurgeWaitsForEverySubmittedEvent(t *testing.T) {
	t.Parallel()
	h := startLocked(t)
	ctx := t.Context()
	id := h.submitOne(random(7002))
	h.finish(id)
	conn, err := pgxConnect(t, h.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// As if the consumer had not handled the submitted event yet.
	var eventID string
	var seq int64
	testenv.Eventually(t, 10*time.Second, "the submitted event handled, then forgotten", func() bool {
		return conn.QueryRow(ctx, `DELETE FROM intake.inbox i USING intake.report_events e
			WHERE e.event_id = i.event_id AND e.report_id = $1 AND e.type = $2 RETURNING i.event_id::text, i.stream_seq`,
			id, events.ReportSubmitted).Scan(&eventID, &seq) == nil
	})
	if _, err := h.app.Lifecycle.ApproveDestruction(ctx, secondAdmin, h.requestDestruction(id, "FBI Field Office", "LE-2026-0043")); err != nil {
		t.Fatal(err)
	}
	if n, err := h.app.Lifecycle.PurgeStream(ctx); err != nil || n != 0 {
		t.Fatalf("PurgeStream = %d, %v; want 0 reports done while the event's place is unknown", n, err)
	}
	h.wrappedKey(id) // still in the stream
	if _, err := conn.Exec(ctx, `INSERT INTO intake.inbox (consumer, event_id, stream_seq) VALUES ('intake-progress', $1, $2)`, eventID, seq); err != nil {
		t.Fatal(err)
	}
	h.waitKeyPurged(id)
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	h := startLocked(t)
	ctx := t.Context()
	before := random(9000)
	r1 := h.submitOne(before) // under k1

	// A second intake, with k2 added and current, runs beside the first:
	// no downtime.
	k2 := random(32)
	cfg2 := h.cfg
	cfg2.MasterKeys = config.Secret(h.cfg.MasterKeys.Reveal() + ",k2:" + base64.StdEncoding.EncodeToString(k2))
	cfg2.MasterKeyID = "k2"
	h2 := *h
	h2.cfg = cfg2
	a2, err := app.New(ctx, cfg2, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a2.Close)
	ln, err := a2.Listen()
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a2.Run(runCtx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	h2.url = "http://" + ln.Addr().String()
	afterData := random(8000)
	r2 := h2.submitOne(afterData) // under k2

	// Rewrap skips a row another transaction holds (the progress consumer
	// may still be folding r1's events): the periodic job takes it on its
	// next run, as this loop does.
	rewrapped := 0
	testenv.Eventually(t, 20*time.Second, "r1's key rewrapped under k2", func() bool {
		n, err := a2.Lifecycle.Rewrap(ctx)
		if err != nil {
			t.Fatalf("Rewrap: %v", err)
		}
		rewrapped += n
		return rewrapped >= 1
	})
	if rewrapped != 1 {
		t.Fatalf("Rewrap rewrapped %d keys, want 1 (r1's)", rewrapped)
	}
	use, err := a2.Lifecycle.KeysInUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range use {
		if u.MasterKeyID == "k1" && u.DataKeys != 0 || u.MasterKeyID == "k2" && u.DataKeys != 2 {
			t.Errorf("key use after rewrap: %+v", use)
		}
	}

	// k1 retired: both reports' files still decrypt under k2.
	only2, err := keyring.Parse("k2:"+base64.StdEncoding.EncodeToString(k2), "k2")
	if err != nil {
		t.Fatal(err)
	}
	store := evidenceStore(t, h)
	for id, want := range map[string][]byte{r1: before, r2: afterData} {
		var w keyring.WrappedKey
		h.query(`SELECT data_key_id, data_key FROM intake.reports WHERE id = $1`, []any{id}, &w.MasterKeyID, &w.Ciphertext)
		dk, err := only2.Unwrap(id, w)
		if err != nil {
			t.Fatalf("unwrap %s after rotation: %v", id, err)
		}
		rc, err := store.Open(ctx, h.fileOf(id).key, dk)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("report %s: read %d bytes, %v; want its %d bytes", id, len(got), err, len(want))
		}
	}
	// A key wrapped under the retired k1 (the submitted event's copy) is refused.
	for _, ev := range h.submitted() {
		if ev.ReportId != r1 {
			continue
		}
		w := ev.GetReportSubmitted().DataKey
		_, err := only2.Unwrap(r1, keyring.WrappedKey{MasterKeyID: w.MasterKeyId, Ciphertext: w.Ciphertext})
		var retired *keyring.RetiredKeyError
		if !errors.As(err, &retired) || !strings.Contains(err.Error(), "k1") {
			t.Errorf("unwrap under a retired key: %v", err)
		}
	}
}

// The operator's commands (intake keys, rewrap, expire; docs/operator-guide.md)
// read the service's configuration from the environment, as in production,
// and print JSON. Not parallel: it sets the environment.
func TestOperatorCommands(t *testing.T) {
	h := startLocked(t)
	h.submitOne(random(6000)) // its data key wrapped by k1
	env := func(masterKeys, current string) {
		for k, v := range map[string]string{
			"DATABASE_URL": h.db, "NATS_URL": h.nats.URL(), "S3_ENDPOINT": h.s3.Endpoint, "S3_TLS": "false",
			"S3_ACCESS_KEY": h.s3.AccessKey, "S3_SECRET_KEY": h.s3.SecretKey, "S3_BUCKET": h.s3.Bucket, "S3_REGION": h.s3.Region,
			"MASTER_KEYS": masterKeys, "MASTER_KEY_ID": current, "TAKEDOWN_DEV_TOKEN": token,
			"RETRACTION_URL": "https://retraction.example", // the service's whole configuration, as in production
		} {
			t.Setenv(k, v)
		}
	}
	run := func(out any, args ...string) {
		t.Helper()
		var b bytes.Buffer
		if err := app.Command(t.Context(), args, &b); err != nil {
			t.Fatalf("intake %s: %v", strings.Join(args, " "), err)
		}
		if err := json.Unmarshal(b.Bytes(), out); err != nil {
			t.Fatalf("intake %s printed %q: %v", strings.Join(args, " "), b.String(), err)
		}
	}
	keysInUse := func() map[string]int {
		t.Helper()
		var use []lifecycle.KeyUse
		run(&use, "keys")
		out := map[string]int{}
		for _, u := range use {
			out[u.MasterKeyID] = u.DataKeys
		}
		return out
	}

	env(h.cfg.MasterKeys.Reveal(), "k1")
	if got := keysInUse(); got["k1"] != 1 {
		t.Errorf("keys before rotation: %v, want k1: 1", got)
	}
	env(h.cfg.MasterKeys.Reveal()+",k2:"+base64.StdEncoding.EncodeToString(random(32)), "k2")
	var rewrapped map[string]int
	run(&rewrapped, "rewrap")
	if rewrapped["rewrapped"] != 1 {
		t.Errorf("rewrap printed %v, want 1 rewrapped", rewrapped)
	}
	if got := keysInUse(); got["k1"] != 0 || got["k2"] != 1 {
		t.Errorf("keys after rotation: %v, want k2: 1 and k1: 0", got)
	}
	var expired []lifecycle.Candidate
	run(&expired, "expire", "-dry-run")
	if len(expired) != 0 {
		t.Errorf("expire -dry-run lists %v; nothing is past the year's retention", expired)
	}
	if err := app.Command(t.Context(), []string{"expire", "-now"}, io.Discard); err == nil {
		t.Error("an unknown flag was accepted")
	}
}
