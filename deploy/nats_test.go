package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"takedown/pkg/events"
	"takedown/pkg/filing"
	"takedown/pkg/metrics"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
)

// owned is the ownership table of pkg/events by service: the events each
// NATS user must be able to publish, and no other user may. It is derived,
// not written here, so that a type added to the table is checked against
// nats.conf without anyone remembering to.
var owned = func() map[string][]string {
	o := map[string][]string{}
	for _, s := range events.Table {
		for _, svc := range s.Owners {
			o[svc] = append(o[svc], s.Type)
		}
	}
	return o
}()

// durable is each service's consumer of the TAKEDOWN stream.
var durable = map[string]string{
	"intake": "intake-progress", "ncmec-reporter": "ncmec-reporter", "case-writer": "case-writer",
	"retraction": "retraction", "audit-logger": "audit-logger",
}

// allTypes is every event type of the table.
var allTypes = func() []string {
	var all []string
	for _, s := range events.Table {
		all = append(all, s.Type)
	}
	return all
}()

// loadConf reads deploy/nats/nats.conf, with a password for each service.
func loadConf(t *testing.T) (opts *server.Options, passwords map[string]string) {
	t.Helper()
	passwords = map[string]string{}
	for svc := range owned {
		passwords[svc] = "pw-" + svc
		t.Setenv("NATS_PASSWORD_"+strings.ToUpper(strings.ReplaceAll(svc, "-", "_")), passwords[svc])
	}
	opts, err := server.ProcessConfigFile("nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	return opts, passwords
}

// nats.conf's event permissions are the ownership table, both ways: every
// owner's user may publish takedown.<type> for each type it owns, and every
// takedown.* subject a user may publish is one of its own types, spelt out
// (no wildcard, nothing the table does not explain). The live tests below
// then show the server enforcing it.
func TestNATSPublishPermissionsAreTheOwnershipTable(t *testing.T) {
	opts, _ := loadConf(t)
	users := map[string]bool{}
	for _, u := range opts.Users {
		users[u.Username] = true
		var allow []string
		if p := u.Permissions; p != nil && p.Publish != nil {
			allow = p.Publish.Allow
		}
		for _, subj := range allow {
			if !strings.HasPrefix(subj, events.SubjectPrefix) {
				continue // JetStream API, KV, acks: checked by the live tests
			}
			typ := strings.TrimPrefix(subj, events.SubjectPrefix)
			if events.Owners(typ) == nil {
				t.Errorf("user %s may publish %s, which is no event type of the ownership table (pkg/events)", u.Username, subj)
			} else if !slices.Contains(owned[u.Username], typ) {
				t.Errorf("user %s may publish %s, but the ownership table (pkg/events) gives %s to %v",
					u.Username, subj, typ, events.Owners(typ))
			}
		}
		for _, typ := range owned[u.Username] {
			if !slices.Contains(allow, events.Subject(typ)) {
				t.Errorf("user %s may not publish %s, which it owns (pkg/events): its outbox relay would stall there",
					u.Username, events.Subject(typ))
			}
		}
	}
	for svc := range owned {
		if !users[svc] {
			t.Errorf("nats.conf has no user %s, which owns %v", svc, owned[svc])
		}
	}
}

// natsServer runs deploy/nats/nats.conf, as docker-compose does, on a free
// loopback port with a temporary store. Only what cannot work in a test is
// changed: addresses, store directory, logging.
func natsServer(t *testing.T) (url string, passwords map[string]string) {
	t.Helper()
	opts, passwords := loadConf(t)
	if !opts.SyncAlways || !opts.JetStream {
		t.Errorf("nats.conf: JetStream %v, sync_interval always %v; want both", opts.JetStream, opts.SyncAlways)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir = t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL(), passwords
}

// client is one service's connection, recording the permission violations
// the server reports.
type client struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu     sync.Mutex
	denied []string
}

func connect(t *testing.T, url, user, password string) *client {
	t.Helper()
	c := &client{}
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		c.mu.Lock()
		c.denied = append(c.denied, err.Error())
		c.mu.Unlock()
	}))
	if err != nil {
		t.Fatalf("%s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	c.js, _ = jetstream.New(nc)
	return c
}

// wasDenied reports whether the server refused something naming subject.
func (c *client) wasDenied(subject string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.denied, func(e string) bool { return strings.Contains(e, `"`+subject+`"`) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// Each service's user can do what the service really does, through the
// same library calls: provision the stream, create and read its durable
// consumer, publish its own events, and (reporter, retraction) use the
// handover bucket.
func TestNATSPermissionsAllowWhatEachServiceDoes(t *testing.T) {
	url, pw := natsServer(t)
	log := slog.New(slog.DiscardHandler)
	for svc, types := range owned {
		c := connect(t, url, svc, pw[svc])
		if _, err := stream.Provision(ctx(t), c.js, stream.Config{}); err != nil {
			t.Fatalf("%s: provision: %v", svc, err)
		}
		m := metrics.New(svc)
		if _, err := stream.NewConsumer(ctx(t), c.js, nil, m, log, stream.ConsumerConfig{Durable: durable[svc]}); err != nil {
			t.Fatalf("%s: consumer: %v", svc, err)
		}
		for _, typ := range types {
			if _, err := c.js.Publish(ctx(t), events.Subject(typ), []byte("x"), jetstream.WithMsgID(svc+typ)); err != nil {
				t.Errorf("%s: publish its own %s: %v", svc, typ, err)
			}
		}
		cons, err := c.js.Consumer(ctx(t), events.Stream, durable[svc])
		if err != nil {
			t.Fatalf("%s: consumer info: %v", svc, err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("%s: fetch: %v", svc, err)
		}
		n := 0
		for msg := range batch.Messages() {
			if err := msg.DoubleAck(ctx(t)); err != nil {
				t.Errorf("%s: ack: %v", svc, err)
			}
			n++
		}
		if n != 1 || batch.Error() != nil {
			t.Errorf("%s: fetched %d events (%v), want 1", svc, n, batch.Error())
		}
		if svc == "ncmec-reporter" || svc == "retraction" {
			h := filing.NewHandover(c.js, filing.HandoverConfig{})
			if err := h.Opened(ctx(t), "r-"+svc, 1); err != nil {
				t.Errorf("%s: handover claim: %v", svc, err)
			}
			if _, err := h.RetractionBegun(ctx(t), "r-"+svc, 1); err != nil {
				t.Errorf("%s: handover get: %v", svc, err)
			}
		}
		if svc == "intake" {
			// The lifecycle job erases the submitted events of a report
			// whose data key was destroyed.
			ack, err := c.js.Publish(ctx(t), events.Subject(events.ReportSubmitted), []byte("key"), jetstream.WithMsgID("to-erase"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.js.Stream(ctx(t), events.Stream)
			if err != nil {
				t.Fatalf("intake: stream info: %v", err)
			}
			if _, err := s.GetMsg(ctx(t), ack.Sequence); err != nil {
				t.Errorf("intake: get message: %v", err)
			}
			if err := s.SecureDeleteMsg(ctx(t), ack.Sequence); err != nil {
				t.Errorf("intake: erase message: %v", err)
			}
		}
		if len(c.denied) > 0 {
			t.Errorf("%s: refused: %v", svc, c.denied)
		}
	}
}

// Every user may publish its own events and no other: intake cannot
// pretend NCMEC answered, the audit-logger publishes nothing but
// staff.action, none but intake (erasing destroyed keys) can delete an
// event, and none can delete the stream, read events outside
// JetStream, or use another service's consumer or the handover bucket
// unless it is the reporter or retraction.
func TestNATSPermissionsRefuseEverythingElse(t *testing.T) {
	url, pw := natsServer(t)
	admin := connect(t, url, "intake", pw["intake"])
	if _, err := stream.Provision(ctx(t), admin.js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	for svc := range owned {
		t.Run(svc, func(t *testing.T) {
			c := connect(t, url, svc, pw[svc])
			for _, typ := range allTypes {
				if err := c.nc.Publish(events.Subject(typ), []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.nc.SubscribeSync("takedown.>"); err != nil {
				t.Fatal(err)
			}
			if err := c.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			// The server reports refusals asynchronously.
			testenv.Eventually(t, 5*time.Second, "refusals reported", func() bool {
				return c.wasDenied(events.Subject(allTypes[len(allTypes)-1])) || slices.Contains(owned[svc], allTypes[len(allTypes)-1])
			})
			time.Sleep(100 * time.Millisecond) // the last refusals of the flushed batch
			for _, typ := range allTypes {
				mine := slices.Contains(owned[svc], typ)
				if denied := c.wasDenied(events.Subject(typ)); denied == mine {
					t.Errorf("publish %s: refused %v, want refused %v", events.Subject(typ), denied, !mine)
				}
			}
			if !c.wasDenied("takedown.>") {
				t.Error("a plain subscription to takedown.> was allowed: events are read through the durable consumer only")
			}

			// A refused API request gets no answer: wait briefly.
			short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			err := c.js.DeleteStream(short, events.Stream)
			cancel()
			if err == nil {
				t.Error("deleted the TAKEDOWN stream")
			}
			if svc != "intake" {
				s, err := c.js.Stream(ctx(t), events.Stream)
				if err != nil {
					t.Fatal(err)
				}
				short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
				err = s.DeleteMsg(short, 1)
				cancel()
				if err == nil {
					t.Error("deleted an event from the stream")
				}
			}
			for other, d := range durable {
				if other == svc {
					continue
				}
				short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
				_, err := c.js.CreateOrUpdateConsumer(short, events.Stream, jetstream.ConsumerConfig{Durable: d, AckPolicy: jetstream.AckExplicitPolicy})
				cancel()
				if err == nil {
					t.Errorf("created %s's consumer %s", other, d)
				}
			}
			if svc != "ncmec-reporter" && svc != "retraction" {
				short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
				_, err := c.js.CreateOrUpdateKeyValue(short, jetstream.KeyValueConfig{Bucket: filing.Bucket})
				cancel()
				if err == nil {
					t.Error("bound the handover bucket")
				}
				if err := c.nc.Publish("$KV."+filing.Bucket+".some-report", []byte("finished")); err != nil {
					t.Fatal(err)
				}
				c.nc.Flush()
				testenv.Eventually(t, 5*time.Second, "KV write refused", func() bool { return c.wasDenied("$KV." + filing.Bucket + ".some-report") })
			}
		})
	}
	// Only the owners' publishes reached the stream.
	info, err := admin.js.Stream(ctx(t), events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, types := range owned {
		want += len(types)
	}
	if got := info.CachedInfo().State.Msgs; got != uint64(want) {
		t.Errorf("stream holds %d events, want %d (one per owned type and owner)", got, want)
	}
}

// A message the reporter's consumer gives up on (MaxDeliver) reaches the
// retraction service through its advisory stream, with the permissions of
// the two users alone (DESIGN.md §3: a failure, not silence).
func TestNATSMaxDeliveriesAdvisoryReachesRetraction(t *testing.T) {
	url, pw := natsServer(t)
	rep := connect(t, url, "ncmec-reporter", pw["ncmec-reporter"])
	ret := connect(t, url, "retraction", pw["retraction"])
	log := slog.New(slog.DiscardHandler)
	if _, err := stream.Provision(ctx(t), rep.js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	// As services/retraction/internal/retract/advisory.go provisions it.
	adv, err := ret.js.CreateOrUpdateStream(ctx(t), jetstream.StreamConfig{
		Name: "TAKEDOWN_ADVISORIES", Subjects: []string{"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + events.Stream + ".>"},
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("retraction: advisory stream: %v", err)
	}
	advCons, err := adv.CreateOrUpdateConsumer(ctx(t), jetstream.ConsumerConfig{Durable: "retraction-advisories", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("retraction: advisory consumer: %v", err)
	}
	if _, err := stream.NewConsumer(ctx(t), rep.js, nil, metrics.New("r"), log, stream.ConsumerConfig{
		Durable: "ncmec-reporter", Subjects: []string{events.ReportSubmitted}, MaxDeliver: 2, BackOff: []time.Duration{10 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	intake := connect(t, url, "intake", pw["intake"])
	if _, err := intake.js.Publish(ctx(t), events.Subject(events.ReportSubmitted), []byte("x")); err != nil {
		t.Fatal(err)
	}
	cons, err := rep.js.Consumer(ctx(t), events.Stream, "ncmec-reporter")
	if err != nil {
		t.Fatal(err)
	}
	// Two deliveries, both refused; the server gives up on the next pull.
	for i := range 2 {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for msg := range batch.Messages() {
			if err := msg.Nak(); err != nil {
				t.Fatalf("nak %d: %v", i, err)
			}
		}
	}
	if b, err := cons.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond)); err == nil {
		for msg := range b.Messages() {
			t.Errorf("delivered a third time: %s", msg.Subject())
		}
	}
	batch, err := advCons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for msg := range batch.Messages() {
		got = append(got, msg.Subject())
		_ = msg.Ack()
	}
	want := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.ncmec-reporter", events.Stream)
	if len(got) != 1 || got[0] != want {
		t.Errorf("retraction read advisories %v, want [%s]", got, want)
	}
	for _, c := range []*client{rep, ret, intake} {
		if len(c.denied) > 0 {
			t.Errorf("refused: %v", c.denied)
		}
	}
}
