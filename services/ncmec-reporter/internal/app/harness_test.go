package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/config"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/keyring"
	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/service"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
	"takedown/services/ncmec-reporter/internal/app"
	"takedown/services/ncmec-reporter/internal/filing"
	"takedown/services/ncmec-reporter/internal/worker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// harness is one test's PostgreSQL database, NATS server, S3 bucket and
// NCMEC simulators (production and test, with different credentials).
type harness struct {
	t        testing.TB
	db       string
	nats     *testenv.NATS
	s3       testenv.S3Env
	keys     *keyring.Keyring
	sim      *ncmecsim.Server
	testSim  *ncmecsim.Server
	cfg      app.Config
	js       jetstream.JetStream
	evidence *evidence.Store
	running  *running
	lastKey  *pb.WrappedKey
	pg       *pgxpool.Pool
	starts   int
}

type harnessOpts struct {
	xsd     bool                            // validate documents against the real XSD
	wrap    func(http.Handler) http.Handler // e.g. hostile answers
	latency time.Duration
	tune    func(*app.Config)
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, db: testenv.Postgres(t), nats: testenv.StartNATS(t), s3: testenv.S3(t)}
	k := make([]byte, 32)
	rand.Read(k)
	keysText := "k1:" + base64.StdEncoding.EncodeToString(k)
	var err error
	if h.keys, err = keyring.Parse(keysText, "k1"); err != nil {
		t.Fatal(err)
	}
	simOpts := ncmecsim.Options{Latency: o.latency}
	if o.xsd {
		simOpts.XSDPath = filepath.Join(testenv.SharedDir(t, "ncmec"), "cyber_tipline.xsd")
	}
	var prodURL string
	if o.wrap != nil {
		// Serve the simulator through the wrapper.
		simOpts.Username, simOpts.Password = ncmecsim.TestUsername, ncmecsim.TestPassword
		h.sim, err = ncmecsim.New(simOpts)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(o.wrap(h.sim))
		t.Cleanup(ts.Close)
		t.Cleanup(h.sim.Close)
		prodURL = ts.URL + ncmecsim.BasePath
	} else {
		h.sim, prodURL = ncmecsim.StartTest(t, simOpts)
	}
	testOpts := simOpts
	testOpts.Username, testOpts.Password = "exttest-user", "exttest-password"
	var testURL string
	h.testSim, testURL = ncmecsim.StartTest(t, testOpts)

	h.cfg = app.Config{
		Service: service.Config{ListenAddr: "127.0.0.1:0", DatabaseURL: config.Secret(testenv.ServiceLogins(t, h.db, app.Name)[app.Name].URL), NATSURL: h.nats.URL(),
			StreamReplicas: 1, ShutdownTimeout: 5 * time.Second},
		S3: evidence.Config{Endpoint: h.s3.Endpoint, AccessKey: h.s3.AccessKey, SecretKey: h.s3.SecretKey,
			Bucket: h.s3.Bucket, Region: h.s3.Region},
		MasterKeys: config.Secret(keysText), MasterKeyID: "k1",
		NCMEC: ncmec.Environments{
			Production:  ncmec.Environment{Name: "production", URL: prodURL, Username: ncmecsim.TestUsername, Password: ncmecsim.TestPassword},
			Test:        ncmec.Environment{Name: "test", URL: testURL, Username: "exttest-user", Password: "exttest-password"},
			CallTimeout: 5 * time.Second,
		},
		Worker: worker.Config{
			Concurrency: 4, UploadParallel: 1, Lease: 2 * time.Second, Poll: 50 * time.Millisecond,
			Window: 20 * time.Second, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
			Reporter: filing.Reporter{
				Person:          filing.Person{FirstName: "Trust", LastName: "Safety", Email: "ncmec@example.com", Phone: "+1 555 0100"},
				Address:         filing.Address{Street: "1 Example Way", City: "Springfield", ZipCode: "12345", State: "IL", Country: "US"},
				Contact:         filing.Person{FirstName: "Legal", LastName: "Desk", Email: "legal@example.com"},
				CompanyTemplate: "Serve legal process at legal@example.com; data is kept 1 year; 24h line +1 555 0199.",
				TermsOfService:  "https://example.com/terms",
				LegalURL:        "https://example.com/legal",
			},
		},
	}
	if o.tune != nil {
		o.tune(&h.cfg)
	}
	nc, js, err := stream.Connect(h.nats.URL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h.js = js
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stream.Provision(ctx, js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	if h.evidence, err = evidence.New(h.cfg.S3); err != nil {
		t.Fatal(err)
	}
	return h
}

// running is an App started by the harness.
type running struct {
	app    *app.App
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	url    string // the operational endpoints: /readyz, /metrics
}

// start runs the real wiring; a previous App must have stopped.
func (h *harness) start(o app.Options) *running {
	h.t.Helper()
	// Each start is another process (another replica taking over once the
	// leases end) unless the test names the instance that restarts.
	cfg := h.cfg
	h.starts++
	if cfg.Worker.Instance == "" {
		cfg.Worker.Instance = fmt.Sprintf("harness-%d", h.starts)
	}
	a, err := app.New(context.Background(), cfg, testenv.Logger(h.t), o)
	if err != nil {
		h.t.Fatal(err)
	}
	ln, err := a.Listen()
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{app: a, cancel: cancel, done: make(chan error, 1), url: "http://" + ln.Addr().String()}
	go func() { r.done <- a.Run(ctx, ln) }()
	h.running = r
	h.t.Cleanup(func() { r.stop(h.t) })
	return r
}

// stop ends the App (a no-op after a crash has ended it).
func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("ncmec-reporter stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("ncmec-reporter did not stop within 30s")
		}
		r.app.Close()
	})
}

// crashed waits until the App died at its crash point, and releases it.
func (r *running) crashed(t testing.TB) {
	t.Helper()
	select {
	case <-r.done:
		r.app.Close()
		r.once.Do(func() {})
	case <-time.After(30 * time.Second):
		t.Fatal("the crash point was never reached")
	}
}

type testFile struct {
	name string
	data []byte
}

func files3() []testFile {
	return []testFile{
		{"a.jpg", random(300 << 10)},
		{"b.png", random(70 << 10)},
		{"c.mp4", random(1<<20 + 17)},
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// submit stores the files encrypted in S3, as intake does, and publishes
// the report.submitted event. It returns our report id and the files.
func (h *harness) submit(test bool, files ...testFile) (string, []*pb.File) {
	h.t.Helper()
	ctx := context.Background()
	id := events.NewID()
	dataKey, wrapped, err := h.keys.NewDataKey(id)
	if err != nil {
		h.t.Fatal(err)
	}
	var pfs []*pb.File
	for i, f := range files {
		key := "reports/" + id + "/" + events.NewID()
		obj, err := h.evidence.Put(ctx, key, bytes.NewReader(f.data), dataKey)
		if err != nil {
			h.t.Fatal(err)
		}
		pfs = append(pfs, &pb.File{Id: events.NewID(), Index: uint32(i), Name: f.name, ObjectKey: key, Size: obj.Size,
			ContentType: "application/octet-stream", Md5: obj.MD5, Sha1: obj.SHA1, Sha256: obj.SHA256,
			LocationUrl: "https://example.com/media/" + f.name, OriginalUploadTime: timestamppb.New(time.Now().Add(-48 * time.Hour)),
			UploaderIp: "192.0.2.7", ViewedByStaff: i%2 == 0, Annotations: []string{"generativeAi", "something else"},
			IndustryClassification: "A1"})
	}
	h.publishSubmitted(id, test, pfs, &pb.WrappedKey{MasterKeyId: wrapped.MasterKeyID, Ciphertext: wrapped.Ciphertext})
	return id, pfs
}

func (h *harness) publishSubmitted(id string, test bool, pfs []*pb.File, key *pb.WrappedKey) {
	h.t.Helper()
	env, err := events.New(id, events.Staff("staff-1", "Staff One"), &pb.ReportSubmitted{
		Report: &pb.Report{Id: id, IncidentType: "Child Pornography (possession, manufacture, and distribution)",
			IncidentTime: timestamppb.New(time.Now().Add(-24 * time.Hour)), Platform: "Example",
			Urls:          []string{"https://example.com/u/1"},
			Uploader:      &pb.Uploader{Username: "bad-user", Email: "bad@example.net", Ip: "192.0.2.7"},
			LegalApproved: true, Approver: "legal@example.com", ActionsTaken: []string{"content removed", "account locked"},
			Test: test, SubmittedBy: "staff-1", SubmittedAt: timestamppb.Now(), Filing: 1},
		Files:   pfs,
		DataKey: key,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := events.Marshal(env)
	if err != nil {
		h.t.Fatal(err)
	}
	msg := nats.NewMsg(events.Subject(env.Type))
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, env.EventId)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.js.PublishMsg(ctx, msg); err != nil {
		h.t.Fatal(err)
	}
}

// events returns the ncmec.* events about reportID in stream order.
func (h *harness) events(reportID string) []*pb.Envelope {
	h.t.Helper()
	return h.eventsUnder(reportID, "takedown.ncmec.")
}

// eventsUnder returns the report's events whose subject starts with prefix.
func (h *harness) eventsUnder(reportID, prefix string) []*pb.Envelope {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, events.Stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*pb.Envelope
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || !strings.HasPrefix(m.Subject, prefix) {
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

func types(evs []*pb.Envelope) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// waitEnd waits for the filing's finished or failed event and returns the
// events.
func (h *harness) waitEnd(reportID string, timeout time.Duration) []*pb.Envelope {
	h.t.Helper()
	var evs []*pb.Envelope
	testenv.Eventually(h.t, timeout, "ncmec.finished or ncmec.failed for "+reportID, func() bool {
		evs = h.events(reportID)
		for _, e := range evs {
			if e.Type == events.NcmecFinished || e.Type == events.NcmecFailed {
				return true
			}
		}
		return false
	})
	return evs
}

func (h *harness) query(sql string, args ...any) pgx.Row {
	h.t.Helper()
	if h.pg == nil {
		pool, err := pgxpool.New(context.Background(), h.db)
		if err != nil {
			h.t.Fatal(err)
		}
		h.t.Cleanup(pool.Close)
		h.pg = pool
	}
	return h.pg.QueryRow(context.Background(), sql, args...)
}

// submitAs is submit with a chosen report id.
func (h *harness) submitAs(id string, files ...testFile) []*pb.File {
	h.t.Helper()
	ctx := context.Background()
	dataKey, wrapped, err := h.keys.NewDataKey(id)
	if err != nil {
		h.t.Fatal(err)
	}
	var pfs []*pb.File
	for i, f := range files {
		key := "reports/" + id + "/" + events.NewID()
		obj, err := h.evidence.Put(ctx, key, bytes.NewReader(f.data), dataKey)
		if err != nil {
			h.t.Fatal(err)
		}
		pfs = append(pfs, &pb.File{Id: events.NewID(), Index: uint32(i), Name: f.name, ObjectKey: key, Size: obj.Size, Md5: obj.MD5, Sha1: obj.SHA1, Sha256: obj.SHA256})
	}
	h.publishSubmitted(id, false, pfs, &pb.WrappedKey{MasterKeyId: wrapped.MasterKeyID, Ciphertext: wrapped.Ciphertext})
	return pfs
}

func testEventually(t testing.TB, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "condition", cond)
}

// submitReader stores one file read from r under report id without
// publishing; the wrapped key is kept in h.lastKey for publishSubmitted.
func (h *harness) submitReader(id, name string, r io.Reader) []*pb.File {
	h.t.Helper()
	dataKey, wrapped, err := h.keys.NewDataKey(id)
	if err != nil {
		h.t.Fatal(err)
	}
	key := "reports/" + id + "/" + events.NewID()
	obj, err := h.evidence.Put(context.Background(), key, r, dataKey)
	if err != nil {
		h.t.Fatal(err)
	}
	h.lastKey = &pb.WrappedKey{MasterKeyId: wrapped.MasterKeyID, Ciphertext: wrapped.Ciphertext}
	return []*pb.File{{Id: events.NewID(), Name: name, ObjectKey: key, Size: obj.Size, Md5: obj.MD5, Sha1: obj.SHA1, Sha256: obj.SHA256}}
}
