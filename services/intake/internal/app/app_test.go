package app_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go/jetstream"

	"takedown/pkg/config"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/keyring"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/service"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/app"
	"takedown/services/intake/internal/reports"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const token = "test-token"

type harness struct {
	t     testing.TB
	url   string
	db    string
	nats  *testenv.NATS
	s3    testenv.S3Env
	keys  *keyring.Keyring
	cfg   app.Config
	stop  func()
	js    jetstream.JetStream
	limit reports.Limits
	app   *app.App
}

func masterKeys(t testing.TB) (string, *keyring.Keyring) {
	k := make([]byte, 32)
	rand.Read(k)
	text := "k1:" + base64.StdEncoding.EncodeToString(k)
	kr, err := keyring.Parse(text, "k1")
	if err != nil {
		t.Fatal(err)
	}
	return text, kr
}

// start runs the real intake wiring against real PostgreSQL, NATS and S3.
func start(t testing.TB, s3 testenv.S3Env, opts ...func(*app.Config)) *harness {
	t.Helper()
	return startLogging(t, s3, testenv.Logger(t), opts...)
}

// startLogging is start with the service's log going to log.
func startLogging(t testing.TB, s3 testenv.S3Env, log *slog.Logger, opts ...func(*app.Config)) *harness {
	t.Helper()
	keysText, kr := masterKeys(t)
	h := &harness{t: t, db: testenv.Postgres(t), nats: testenv.StartNATS(t), s3: s3, keys: kr,
		limit: reports.Limits{MaxFileSize: 30 << 20, MaxFiles: 5, MaxTotalSize: 64 << 20}}
	h.cfg = app.Config{
		Service: service.Config{ListenAddr: "127.0.0.1:0", DatabaseURL: config.Secret(testenv.ServiceLogins(t, h.db, app.Name)[app.Name].URL), NATSURL: h.nats.URL(),
			StreamReplicas: 1, ShutdownTimeout: 5 * time.Second},
		S3: evidence.Config{Endpoint: s3.Endpoint, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey,
			Bucket: s3.Bucket, Region: s3.Region},
		MasterKeys: config.Secret(keysText), MasterKeyID: "k1", DevToken: token,
		Limits: h.limit, SweepEvery: time.Hour,
	}
	for _, o := range opts {
		o(&h.cfg)
	}
	a, err := app.New(t.Context(), h.cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	h.app = a
	ln, err := a.Listen()
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("intake stopped with %v", err)
		}
		a.Close()
	}
	t.Cleanup(h.stop)
	nc, js, err := stream.Connect(h.nats.URL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h.js = js
	return h
}

type file struct {
	name string
	data []byte
}

const goodReport = `{"incident_type": "Child Pornography (possession, manufacture, and distribution)",
	"incident_time": "2026-01-02T15:04:05Z", "platform": "Example", "urls": ["https://example.com/x"],
	"uploader": {"username": "u1", "email": "u1@example.com", "ip": "192.0.2.1"},
	"legal_approved": true, "approver": "legal@example.com", "actions_taken": ["content removed"],
	"files": [{"location_url": "https://example.com/a", "upload_time": "2026-01-01T00:00:00Z", "viewed_by_staff": true}]}`

func body(t testing.TB, reportJSON string, files ...file) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if reportJSON != "" {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", `form-data; name="report"`)
		hdr.Set("Content-Type", "application/json")
		p, _ := w.CreatePart(hdr)
		p.Write([]byte(reportJSON))
	}
	for _, f := range files {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, f.name))
		hdr.Set("Content-Type", "application/octet-stream")
		p, _ := w.CreatePart(hdr)
		p.Write(f.data)
	}
	w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

func (h *harness) post(contentType string, r io.Reader, tok string) (*http.Response, map[string]any) {
	h.t.Helper()
	return h.postWith(contentType, r, tok, "")
}

// postWith is post with an Idempotency-Key (none when empty).
func (h *harness) postWith(contentType string, r io.Reader, tok, key string) (*http.Response, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/api/v1/reports", r)
	req.Header.Set("Content-Type", contentType)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func (h *harness) get(path string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (h *harness) count(table string) int {
	h.t.Helper()
	pool, err := pgxConnect(h.t, h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	defer pool.Close(context.Background())
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM intake.`+table).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) objects() []minio.ObjectInfo {
	h.t.Helper()
	var out []minio.ObjectInfo
	for o := range h.s3.Client(h.t).ListObjects(context.Background(), h.s3.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			h.t.Fatal(o.Err)
		}
		out = append(out, o)
	}
	return out
}

// submitted returns the report.submitted events in the stream.
func (h *harness) submitted() []*pb.Envelope { return h.events(events.ReportSubmitted) }

// events returns the events of one type in the stream.
func (h *harness) events(eventType string) []*pb.Envelope {
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
		if err != nil {
			continue
		}
		if m.Subject != events.Subject(eventType) {
			continue
		}
		env, err := events.Unmarshal(m.Data)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func hexOf(h interface{ Sum([]byte) []byte }) string { return hex.EncodeToString(h.Sum(nil)) }

func TestThreeFilesStoredEncryptedHashedAndAnnounced(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	files := []file{
		{"large.bin", random(20<<20 + 12345)},
		{"notes.txt", []byte("plain text evidence description, not media\n")},
		{"img.png", append([]byte("\x89PNG\r\n\x1a\n"), random(5000)...)},
	}
	ct, b := body(t, goodReport, files...)
	resp, out := h.post(ct, bytes.NewReader(b), token)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %v", resp.StatusCode, out)
	}
	id := out["id"].(string)
	if loc := resp.Header.Get("Location"); loc != "/api/v1/reports/"+id {
		t.Errorf("Location %q", loc)
	}
	got := out["files"].([]any)
	if len(got) != 3 {
		t.Fatalf("%d files in the answer", len(got))
	}
	for i, f := range files {
		g := got[i].(map[string]any)
		want := map[string]string{"md5": hexOf(md5.New()), "sha1": "", "sha256": ""}
		m, s1, s2 := md5.Sum(f.data), sha1.Sum(f.data), sha256.Sum256(f.data)
		want["md5"], want["sha1"], want["sha256"] = hex.EncodeToString(m[:]), hex.EncodeToString(s1[:]), hex.EncodeToString(s2[:])
		for k, v := range want {
			if g[k] != v {
				t.Errorf("file %d %s = %v, want %s", i, k, g[k], v)
			}
		}
		if g["name"] != f.name || int(g["size"].(float64)) != len(f.data) {
			t.Errorf("file %d: name %v size %v", i, g["name"], g["size"])
		}
	}
	if ct := got[2].(map[string]any)["content_type"]; ct != "image/png" {
		t.Errorf("content type of the PNG = %v", ct)
	}

	// Exactly one event, carrying the hashes and the wrapped data key.
	testenv.Eventually(t, 10*time.Second, "the submitted event is in the stream", func() bool { return len(h.submitted()) >= 1 })
	evs := h.submitted()
	if len(evs) != 1 {
		t.Fatalf("%d submitted events, want 1", len(evs))
	}
	sub := evs[0].GetReportSubmitted()
	if evs[0].ReportId != id || len(sub.Files) != 3 || sub.Report.Platform != "Example" {
		t.Fatalf("event: %v", evs[0])
	}
	key, err := h.keys.Unwrap(id, keyring.WrappedKey{MasterKeyID: sub.DataKey.MasterKeyId, Ciphertext: sub.DataKey.Ciphertext})
	if err != nil {
		t.Fatal(err)
	}

	// Three objects: ciphertext at rest, the upload after decryption.
	if n := len(h.objects()); n != 3 {
		t.Fatalf("%d objects in the bucket, want 3", n)
	}
	store, err := evidence.New(h.cfg.S3)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range sub.Files {
		if f.Sha256 != got[i].(map[string]any)["sha256"] || f.Name != files[i].name {
			t.Errorf("event file %d: %v", i, f)
		}
		raw, err := h.s3.Client(t).GetObject(context.Background(), h.s3.Bucket, f.ObjectKey, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := io.ReadAll(raw)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(stored, files[i].data[:min(64, len(files[i].data))]) {
			t.Errorf("file %d is stored in plaintext", i)
		}
		if strings.Contains(f.ObjectKey, files[i].name) {
			t.Errorf("object key %q holds the uploaded name", f.ObjectKey)
		}
		rc, err := store.Open(context.Background(), f.ObjectKey, key)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(plain, files[i].data) {
			t.Errorf("file %d decrypts to %d bytes (%v), want the %d uploaded", i, len(plain), err, len(files[i].data))
		}
	}

	// The report reads back, and lists.
	status, rep := h.get("/api/v1/reports/" + id)
	if status != 200 || rep["status"] != "submitted" || len(rep["files"].([]any)) != 3 {
		t.Fatalf("GET: %d %v", status, rep)
	}
	testenv.Eventually(t, 10*time.Second, "the history shows the submission", func() bool {
		_, rep := h.get("/api/v1/reports/" + id)
		evs, _ := rep["events"].([]any)
		return len(evs) == 1
	})
	status, list := h.get("/api/v1/reports?limit=10")
	if status != 200 || len(list["reports"].([]any)) != 1 {
		t.Fatalf("list: %d %v", status, list)
	}
	if raw, _ := json.Marshal(rep); bytes.Contains(raw, files[1].data) {
		t.Error("the API answer contains file content")
	}
}

func TestNATSDownAtSubmitStill201AndPublishedOnceWhenBack(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	h.nats.Stop()
	ct, b := body(t, goodReport, file{"a.bin", random(1000)})
	resp, out := h.post(ct, bytes.NewReader(b), token)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %v", resp.StatusCode, out)
	}
	if n := h.count("outbox WHERE published_at IS NULL"); n != 1 {
		t.Fatalf("%d unpublished outbox rows, want 1", n)
	}
	h.nats.Start()
	testenv.Eventually(t, 30*time.Second, "the outbox row is published once NATS is back", func() bool {
		return h.count("outbox WHERE published_at IS NULL") == 0 && len(h.submitted()) == 1
	})
	if evs := h.submitted(); len(evs) != 1 || evs[0].ReportId != out["id"] {
		t.Fatalf("events: %v", evs)
	}
}

func TestS3DownAnswers503AndKeepsNothing(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3Server(t)
	s3 := srv.Bucket(t)
	h := start(t, s3)
	srv.Stop(t)
	ct, b := body(t, goodReport, file{"a.bin", random(100 << 10)}, file{"b.bin", random(1000)})
	resp, out := h.post(ct, bytes.NewReader(b), token)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %v", resp.StatusCode, out)
	}
	e := out["error"].(map[string]any)
	if e["code"] != "storage_unavailable" || !strings.Contains(e["message"].(string), "evidence store") {
		t.Errorf("error %v", e)
	}
	srv.Start(t)
	if n := h.count("reports") + h.count("files") + h.count("outbox"); n != 0 {
		t.Errorf("%d rows kept", n)
	}
	if objs := h.objects(); len(objs) != 0 {
		t.Errorf("objects left behind: %v", objs)
	}
}

func TestBadInputIsRefusedAndLeavesNothing(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	small := file{"a.bin", []byte("x")}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	truncated := func() (string, []byte) {
		ct, b := body(t, goodReport, file{"a.bin", random(10000)})
		return ct, b[:len(b)-5000]
	}
	many := make([]file, 6)
	for i := range many {
		many[i] = file{fmt.Sprintf("f%d.bin", i), []byte("data")}
	}
	cases := []struct {
		name   string
		make   func() (string, []byte)
		token  string
		status int
		code   string
		field  string
	}{
		{"no file", func() (string, []byte) { return body(t, goodReport) }, token, 400, "no_file", "file"},
		{"empty file", func() (string, []byte) { return body(t, goodReport, small, file{"empty.bin", nil}) }, token, 400, "empty_file", "files[1]"},
		{"too many files", func() (string, []byte) { return body(t, goodReport, many...) }, token, 413, "too_many_files", "file"},
		{"missing report", func() (string, []byte) { return body(t, "", small) }, token, 400, "invalid", "report"},
		{"malformed report", func() (string, []byte) { return body(t, `{"incident_time": `, small) }, token, 400, "invalid_json", "report"},
		{"unknown field", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "colour": 1}`, small)
		}, token, 400, "invalid_json", "report"},
		{"member given twice", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "platform": "A", "platform": "B"}`, small)
		}, token, 400, "invalid_json", "report"},
		{"member given twice but for case", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "platform": "A", "Platform": "B"}`, small)
		}, token, 400, "invalid_json", "report"},
		{"unknown incident type", func() (string, []byte) {
			return body(t, `{"incident_type": "Spam", "incident_time": "2026-01-01T00:00:00Z"}`, small)
		}, token, 400, "invalid", "incident_type"},
		{"incident in the future", func() (string, []byte) {
			return body(t, `{"incident_time": "`+future+`"}`, small)
		}, token, 400, "invalid", "incident_time"},
		{"name with slash", func() (string, []byte) { return body(t, goodReport, file{"dir/a.jpg", []byte("x")}) }, token, 400, "invalid_file_name", "files[0].name"},
		{"name with backslash", func() (string, []byte) { return body(t, goodReport, file{`c:\a.jpg`, []byte("x")}) }, token, 400, "invalid_file_name", "files[0].name"},
		{"name with dot-dot", func() (string, []byte) { return body(t, goodReport, file{"..", []byte("x")}) }, token, 400, "invalid_file_name", "files[0].name"},
		// A control character cannot even travel in a part header: the body is malformed.
		{"name with control character in the part", func() (string, []byte) { return body(t, goodReport, file{"a\x01b.jpg", []byte("x")}) }, token, 400, "malformed_body", ""},
		{"name with control character in the JSON", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "files": [{"name": "a\u0007b.jpg"}]}`, small)
		}, token, 400, "invalid_file_name", "files[0].name"},
		{"name not UTF-8", func() (string, []byte) { return body(t, goodReport, file{"a\xff.jpg", []byte("x")}) }, token, 400, "invalid_file_name", "files[0].name"},
		{"name in JSON with path", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "files": [{"name": "../../etc/passwd"}]}`, small)
		}, token, 400, "invalid_file_name", "files[0].name"},
		// One set of rules (reportrules): what the NCMEC encoder or the
		// Salesforce case would refuse later is a 400 now, naming the field.
		{"URL with a space", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "urls": ["https://example.com/a b"]}`, small)
		}, token, 400, "invalid", "urls[0]"},
		{"URL with NBSP", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "urls": ["https://example.com/ok", "https://example.com/a\u00a0b"]}`, small)
		}, token, 400, "invalid", "urls[1]"},
		{"username of 300 characters", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "uploader": {"username": "`+strings.Repeat("u", 300)+`"}}`, small)
		}, token, 400, "invalid", "uploader.username"},
		{"action too long", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "actions_taken": ["`+strings.Repeat("a", 1000)+`"]}`, small)
		}, token, 400, "invalid", "actions_taken[0]"},
		{"NUL in notes", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "notes": "a\u0000b"}`, small)
		}, token, 400, "invalid", "notes"},
		{"NUL in platform", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "platform": "a\u0000b"}`, small)
		}, token, 400, "invalid", "platform"},
		{"NUL in an action", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "actions_taken": ["a\u0000"]}`, small)
		}, token, 400, "invalid", "actions_taken[0]"},
		{"NUL in the e-mail", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "uploader": {"email": "a@example.com\u0000"}}`, small)
		}, token, 400, "invalid", "uploader.email"},
		{"NUL in a file's annotation", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "files": [{"annotations": ["x\u0000"]}]}`, small)
		}, token, 400, "invalid", "files[0].annotations[0]"},
		{"NUL in a file's location", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "files": [{"location_url": "https://example.com/\u0000"}]}`, small)
		}, token, 400, "invalid", "files[0].location_url"},
		{"NUL in a file name in the JSON", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "files": [{"name": "a\u0000.jpg"}]}`, small)
		}, token, 400, "invalid_file_name", "files[0].name"},
		// A raw NUL cannot travel in a part header; an encoded one can.
		{"NUL in the part's file name", func() (string, []byte) { return body(t, goodReport, file{"a\x00b.jpg", []byte("x")}) }, token, 400, "malformed_body", ""},
		{"NUL in the part's RFC 2231 file name", func() (string, []byte) {
			ct, b := body(t, goodReport, file{"PLACEHOLDER", []byte("x")})
			return ct, bytes.Replace(b, []byte(`filename="PLACEHOLDER"`), []byte(`filename*=UTF-8''a%00b.jpg`), 1)
		}, token, 400, "invalid_file_name", "files[0].name"},
		{"bidi override in the part's RFC 2231 file name", func() (string, []byte) {
			ct, b := body(t, goodReport, file{"PLACEHOLDER", []byte("x")})
			return ct, bytes.Replace(b, []byte(`filename="PLACEHOLDER"`), []byte(`filename*=UTF-8''photo%E2%80%AEgpj.exe`), 1)
		}, token, 400, "invalid_file_name", "files[0].name"},
		{"bidi override in the part's file name", func() (string, []byte) {
			return body(t, goodReport, file{"photo\u202egpj.exe", []byte("x")})
		}, token, 400, "invalid_file_name", "files[0].name"},
		{"zero-width space in the JSON's file name", func() (string, []byte) {
			return body(t, `{"incident_time": "2026-01-01T00:00:00Z", "files": [{"name": "a\u200b.jpg"}]}`, small)
		}, token, 400, "invalid_file_name", "files[0].name"},
		{"bidi isolate in a second file's name", func() (string, []byte) {
			return body(t, goodReport, small, file{"a\u2066b\u2069.jpg", []byte("x")})
		}, token, 400, "invalid_file_name", "files[1].name"},
		{"truncated body", truncated, token, 400, "malformed_body", ""},
		{"wrong content type", func() (string, []byte) { return "application/json", []byte(goodReport) }, token, 415, "unsupported_media_type", ""},
		{"missing token", func() (string, []byte) { return body(t, goodReport, small) }, "", 401, "unauthenticated", ""},
		{"wrong token", func() (string, []byte) { return body(t, goodReport, small) }, "nope", 401, "unauthenticated", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct, b := c.make()
			resp, out := h.post(ct, bytes.NewReader(b), c.token)
			e, _ := out["error"].(map[string]any)
			if resp.StatusCode != c.status || e["code"] != c.code || (e["field"] != nil && e["field"] != c.field) || (c.field != "" && e["field"] != c.field) {
				t.Fatalf("got %d %v; want %d %s field %q", resp.StatusCode, out, c.status, c.code, c.field)
			}
			if msg, _ := e["message"].(string); len(msg) < 10 {
				t.Errorf("message %q does not explain", msg)
			}
		})
	}
	h.assertNothingStored()
}

// Names with dots inside are honest and kept; an e-mail pasted with its
// display name is stored (and sent on) as the bare address.
func TestDottedNameAndBareEmailAreStored(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	ct, b := body(t, `{"incident_time": "2026-01-01T00:00:00Z", "uploader": {"email": "\"x\" <a@example.com>"}}`,
		file{"a..b.png", []byte("x")})
	resp, out := h.post(ct, bytes.NewReader(b), token)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %v", resp.StatusCode, out)
	}
	_, rep := h.get("/api/v1/reports/" + out["id"].(string))
	if u := rep["uploader"].(map[string]any); u["email"] != "a@example.com" {
		t.Errorf("stored uploader %v, want the e-mail a@example.com", u)
	}
	if f := rep["files"].([]any)[0].(map[string]any); f["name"] != "a..b.png" {
		t.Errorf("stored file name %v, want a..b.png", f["name"])
	}
}

func (h *harness) assertNothingStored() {
	h.t.Helper()
	// Refusals are recorded as staff actions for the audit log; nothing else may be.
	if n := h.count("reports") + h.count("files") + h.count("outbox WHERE subject <> 'takedown.staff.action'") + h.count("orphan_objects"); n != 0 {
		h.t.Errorf("%d rows kept", n)
	}
	if objs := h.objects(); len(objs) != 0 {
		h.t.Errorf("%d objects left behind", len(objs))
	}
}

// endless yields n bytes without holding them and counts what was read.
type endless struct{ n, read int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.read >= e.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), e.n-e.read)
	e.read += k
	return int(k), nil
}

func TestOversizedFileIsCutOffWithoutReadingTheRest(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	const size = 1 << 30 // far over the 30 MiB limit
	src := &endless{n: size}
	pr, pw := io.Pipe()
	w := multipart.NewWriter(pw)
	go func() {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", `form-data; name="report"`)
		p, _ := w.CreatePart(hdr)
		p.Write([]byte(goodReport))
		p, _ = w.CreateFormFile("file", "big.bin")
		if _, err := io.Copy(p, src); err != nil {
			pw.CloseWithError(err)
			return
		}
		pw.CloseWithError(w.Close())
	}()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/api/v1/reports", pr)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	pr.CloseWithError(io.ErrClosedPipe)
	if err == nil {
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 413 || out["error"].(map[string]any)["code"] != "file_too_large" {
			t.Fatalf("got %d %v, want 413 file_too_large", resp.StatusCode, out)
		}
	} // else: the server closed the connection while the client still wrote, as it should
	if src.read > 256<<20 {
		t.Fatalf("the server read %d MiB of a 1 GiB file with a 30 MiB limit", src.read>>20)
	}
	t.Logf("read %d MiB before the cut-off (limit 30 MiB)", src.read>>20)
	h.assertNothingStored()
}

// A client that lost the answer to a submission sends it again with the
// same Idempotency-Key and gets the report stored the first time: one
// report, one event, one copy of each file, also when both copies arrive at
// once. (Without the key, every retry was a second report, and a second
// NCMEC report about the same incident: seen in the chaos suite after an
// intake kill.)
func TestResentSubmissionIsStoredOnce(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	ct, b := body(t, goodReport, file{"a.bin", random(300 << 10)})

	resp, first := h.postWith(ct, bytes.NewReader(b), token, "key-1")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("first: status %d: %v", resp.StatusCode, first)
	}
	resp, again := h.postWith(ct, bytes.NewReader(b), token, "key-1")
	if resp.StatusCode != http.StatusCreated || again["id"] != first["id"] {
		t.Fatalf("sent again: status %d, report %v, want 201 and %v", resp.StatusCode, again["id"], first["id"])
	}
	if loc := resp.Header.Get("Location"); loc != "/api/v1/reports/"+first["id"].(string) {
		t.Errorf("sent again: Location %q", loc)
	}

	// Both copies at once: one stores, the other answers with it.
	var wg sync.WaitGroup
	ids := make([]any, 2)
	for i := range ids {
		wg.Go(func() {
			resp, out := h.postWith(ct, bytes.NewReader(b), token, "key-2")
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("concurrent copy %d: status %d: %v", i, resp.StatusCode, out)
			}
			ids[i] = out["id"]
		})
	}
	wg.Wait()
	if ids[0] != ids[1] || ids[0] == first["id"] {
		t.Errorf("concurrent copies answered %v and %v, want one new report", ids[0], ids[1])
	}
	if n := h.count("reports"); n != 2 {
		t.Errorf("%d reports stored, want 2", n)
	}
	// The relay publishes after the commit: wait for both events, then
	// count (a resend that published a third would be seen here too, as
	// the relay keeps the outbox's order).
	testenv.Eventually(t, 10*time.Second, "both reports' events published", func() bool { return len(h.submitted()) >= 2 })
	if n := len(h.submitted()); n != 2 {
		t.Errorf("%d report.submitted events, want 2", n)
	}
	if n := len(h.objects()); n != 2 {
		t.Errorf("%d objects stored, want 2 (the losing copy's file deleted)", n)
	}

	resp, out := h.postWith(ct, bytes.NewReader(b), token, "two words")
	if resp.StatusCode != http.StatusBadRequest || out["error"].(map[string]any)["code"] != "invalid_idempotency_key" {
		t.Errorf("a key with a space: status %d: %v", resp.StatusCode, out)
	}
	if n := h.count("reports"); n != 2 {
		t.Errorf("%d reports stored after a refused key, want 2", n)
	}
}
