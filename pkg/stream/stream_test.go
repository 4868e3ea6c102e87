package stream_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/metrics"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type env struct {
	pool *pgxpool.Pool
	js   jetstream.JetStream
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	pool, err := database.Open(ctx, testenv.Postgres(t), "svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := database.Migrate(ctx, pool, "svc", stream.Migrations); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE effects (event_id uuid, n int)`); err != nil {
		t.Fatal(err)
	}
	n := testenv.StartNATS(t)
	nc, js, err := stream.Connect(n.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := stream.Provision(ctx, js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	return &env{pool: pool, js: js}
}

// publish sends env without a message id, so JetStream stores every copy:
// the case of a republish after the duplicate window.
func (e *env) publish(t *testing.T, ev *pb.Envelope) {
	t.Helper()
	b, err := events.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(t.Context(), events.Subject(ev.Type), b); err != nil {
		t.Fatal(err)
	}
}

func (e *env) effects(t *testing.T) int {
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM effects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) run(t *testing.T, cfg stream.ConsumerConfig, h stream.Handler) *metrics.Factory {
	t.Helper()
	m := metrics.New("test")
	c, err := stream.NewConsumer(t.Context(), e.js, e.pool, m, testenv.Logger(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, stream.Each(h)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return m
}

func effect(ctx context.Context, tx pgx.Tx, m stream.Message) error {
	_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1, 1)`, m.EventId)
	return err
}

func newEvent(t *testing.T) *pb.Envelope {
	ev, err := events.New(events.NewID(), events.Service(events.Retraction), &pb.RetractionRequested{Reason: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestSameEventTwiceIsHandledOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var calls atomic.Int32
	e.run(t, stream.ConsumerConfig{Durable: "c1"}, func(ctx context.Context, tx pgx.Tx, m stream.Message) error {
		calls.Add(1)
		return effect(ctx, tx, m)
	})
	ev := newEvent(t)
	e.publish(t, ev)
	e.publish(t, ev)
	other := newEvent(t)
	e.publish(t, other) // delivered after both copies: when it is handled, both were
	testenv.Eventually(t, 10*time.Second, "both events handled", func() bool { return e.effects(t) == 2 })
	testenv.Eventually(t, 10*time.Second, "the duplicate acknowledged", func() bool {
		var n int
		e.pool.QueryRow(t.Context(), `SELECT count(*) FROM inbox WHERE consumer = 'c1'`).Scan(&n)
		return n == 2 && consumerIdle(t, e.js, "c1")
	})
	if got := calls.Load(); got != 2 {
		t.Fatalf("handler called %d times, want 2 (the duplicate skipped)", got)
	}
}

func TestFailedHandlerRollsBackAndIsRetried(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var calls atomic.Int32
	e.run(t, stream.ConsumerConfig{Durable: "c2", BackOff: []time.Duration{10 * time.Millisecond}}, func(ctx context.Context, tx pgx.Tx, m stream.Message) error {
		if err := effect(ctx, tx, m); err != nil {
			return err
		}
		if calls.Add(1) < 3 {
			return errors.New("transient") // its effect must be rolled back
		}
		return nil
	})
	e.publish(t, newEvent(t))
	testenv.Eventually(t, 10*time.Second, "handled on the third delivery", func() bool { return calls.Load() == 3 })
	testenv.Eventually(t, 5*time.Second, "acknowledged", func() bool { return consumerIdle(t, e.js, "c2") })
	if n := e.effects(t); n != 1 {
		t.Fatalf("effects = %d, want 1: failed attempts must leave nothing", n)
	}
}

func TestPermanentErrorTerminatesWithoutRetry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var calls atomic.Int32
	e.run(t, stream.ConsumerConfig{Durable: "c3", BackOff: []time.Duration{10 * time.Millisecond}}, func(ctx context.Context, tx pgx.Tx, m stream.Message) error {
		calls.Add(1)
		return stream.Permanent(errors.New("bad event"))
	})
	e.publish(t, newEvent(t))
	e.publish(t, newEvent(t))
	testenv.Eventually(t, 10*time.Second, "both delivered and terminated", func() bool {
		return calls.Load() >= 2 && consumerIdle(t, e.js, "c3")
	})
	// The handler may run twice for one delivery (a batch that failed is
	// applied again event by event); what must not happen is a redelivery.
	c, err := e.js.Consumer(t.Context(), events.Stream, "c3")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	e.pool.QueryRow(t.Context(), `SELECT count(*) FROM inbox`).Scan(&n)
	if n != 0 || info.Delivered.Consumer != 2 || info.NumRedelivered != 0 {
		t.Fatalf("inbox rows %d, deliveries %d, redelivered %d: a terminated event is neither recorded nor redelivered",
			n, info.Delivered.Consumer, info.NumRedelivered)
	}
}

func TestUndecodableMessageIsTerminated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var calls atomic.Int32
	e.run(t, stream.ConsumerConfig{Durable: "c4"}, func(ctx context.Context, tx pgx.Tx, m stream.Message) error {
		calls.Add(1)
		return effect(ctx, tx, m)
	})
	if _, err := e.js.Publish(t.Context(), "takedown.report.submitted", []byte("not protobuf \xff")); err != nil {
		t.Fatal(err)
	}
	e.publish(t, newEvent(t))
	testenv.Eventually(t, 10*time.Second, "the good event handled, the bad one terminated", func() bool {
		return e.effects(t) == 1 && consumerIdle(t, e.js, "c4")
	})
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times", calls.Load())
	}
}

func consumerIdle(t *testing.T, js jetstream.JetStream, name string) bool {
	c, err := js.Consumer(t.Context(), events.Stream, name)
	if err != nil {
		return false
	}
	info, err := c.Info(t.Context())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

func TestWaitingEventsShareATransactionAndAFailureStaysAlone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const n = 40
	release := make(chan struct{})
	poison := newEvent(t)
	var first, poisonCalls atomic.Int32
	e.run(t, stream.ConsumerConfig{Durable: "c5", Batch: 16, BackOff: []time.Duration{10 * time.Millisecond}},
		func(ctx context.Context, tx pgx.Tx, m stream.Message) error {
			if first.Add(1) == 1 {
				<-release // the others queue up meanwhile
			}
			if m.EventId == poison.EventId && poisonCalls.Add(1) <= 2 {
				return errors.New("transient")
			}
			_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1, txid_current())`, m.EventId)
			return err
		})
	for i := range n {
		if i == n/2 {
			e.publish(t, poison)
			continue
		}
		e.publish(t, newEvent(t))
	}
	testenv.Eventually(t, 10*time.Second, "the first event in hand", func() bool { return first.Load() >= 1 })
	close(release)
	testenv.Eventually(t, 20*time.Second, "every event handled", func() bool { return e.effects(t) >= n && consumerIdle(t, e.js, "c5") })

	var rows, events, txs int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT event_id), count(DISTINCT n) FROM effects`).Scan(&rows, &events, &txs); err != nil {
		t.Fatal(err)
	}
	if rows != n || events != n {
		t.Fatalf("%d effects of %d events, want %d of %d: each event takes effect once", rows, events, n, n)
	}
	if txs >= n/2 {
		t.Errorf("%d events took %d transactions: waiting events should share them", n, txs)
	}
	if got := poisonCalls.Load(); got != 3 {
		t.Errorf("the failing event was handled %d times, want 3 (two failures, then done)", got)
	}
	t.Logf("%d events in %d transactions", n, txs)
}

// With Linger, events that arrive apart, each after the one before was
// fetched, still share a transaction: the batch waits for more first.
func TestLingerGathersEventsThatArriveApart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const n = 5
	e.run(t, stream.ConsumerConfig{Durable: "c9", Batch: 16, Linger: 5 * time.Second},
		func(ctx context.Context, tx pgx.Tx, m stream.Message) error {
			_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1, txid_current())`, m.EventId)
			return err
		})
	for range n {
		e.publish(t, newEvent(t))
		time.Sleep(20 * time.Millisecond) // apart: without Linger, each would be a batch of one
	}
	testenv.Eventually(t, 20*time.Second, "every event handled", func() bool { return e.effects(t) >= n })
	var txs int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(DISTINCT n) FROM effects`).Scan(&txs); err != nil {
		t.Fatal(err)
	}
	if txs != 1 {
		t.Errorf("%d events arriving 20 ms apart took %d transactions, want 1 within a 5 s linger", n, txs)
	}
}

// A BatchHandler gets a batch's events together, in stream order, without
// the copies of an event handled before or repeated within the batch.
func TestBatchHandlerGetsTheBatchWithoutDuplicates(t *testing.T) {
	t.Parallel()
	e := setup(t)
	old := newEvent(t)
	fresh := []*pb.Envelope{newEvent(t), newEvent(t), newEvent(t)}
	var mu sync.Mutex
	var batches [][]string
	h := func(ctx context.Context, tx pgx.Tx, ms []stream.Message) error {
		ids := make([]string, len(ms))
		for i, m := range ms {
			ids[i] = m.EventId
			if err := effect(ctx, tx, m); err != nil {
				return err
			}
		}
		mu.Lock()
		batches = append(batches, ids)
		mu.Unlock()
		return nil
	}
	c, err := stream.NewConsumer(t.Context(), e.js, e.pool, metrics.New("test"), testenv.Logger(t),
		stream.ConsumerConfig{Durable: "c10", Batch: 16, Linger: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// old was handled before: its inbox row is there.
	if _, err := e.pool.Exec(t.Context(), `INSERT INTO inbox (consumer, event_id, stream_seq) VALUES ('c10', $1, 0)`, old.EventId); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []*pb.Envelope{fresh[0], old, fresh[1], fresh[0], fresh[2]} {
		e.publish(t, ev)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testenv.Eventually(t, 20*time.Second, "the batch handled and acknowledged", func() bool {
		return e.effects(t) >= len(fresh) && consumerIdle(t, e.js, "c10")
	})
	mu.Lock()
	defer mu.Unlock()
	want := []string{fresh[0].EventId, fresh[1].EventId, fresh[2].EventId}
	if len(batches) != 1 || !slices.Equal(batches[0], want) {
		t.Fatalf("batches %v, want one: %v", batches, want)
	}
}

// publishOn sends ev on a subject of the caller's choosing, as a forger (or
// a bug) could.
func (e *env) publishOn(t *testing.T, subject string, ev *pb.Envelope) {
	t.Helper()
	b, err := events.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(t.Context(), subject, b); err != nil {
		t.Fatal(err)
	}
}

func refusedCount(m *metrics.Factory, consumer, typ, reason string) float64 {
	return testutil.ToFloat64(m.Counter("events_refused_total", "", "consumer", "type", "reason").WithLabelValues(consumer, typ, reason))
}

// An envelope that disagrees with the ownership table is refused: an NCMEC
// receipt slipped onto takedown.staff.action (by a user that may publish
// staff actions) must not file anything, and must not come back.
func TestRefusedEventIsNotHandledAndIsCounted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var seen sync.Map
	m := e.run(t, stream.ConsumerConfig{Durable: "c6"}, func(ctx context.Context, tx pgx.Tx, m stream.Message) error {
		seen.Store(m.EventId, true)
		return effect(ctx, tx, m)
	})
	forged, err := events.New(events.NewID(), events.Staff("mallory", ""), &pb.NcmecFinished{NcmecReportId: 7})
	if err != nil {
		t.Fatal(err)
	}
	e.publishOn(t, events.Subject(events.StaffAction), forged)
	relabelled := proto.Clone(forged).(*pb.Envelope)
	relabelled.EventId, relabelled.Type = events.NewID(), events.StaffAction
	e.publishOn(t, events.Subject(events.StaffAction), relabelled)
	impostor, err := events.New(events.NewID(), events.Service(events.Intake), &pb.NcmecFinished{NcmecReportId: 7})
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, impostor)
	good := newEvent(t)
	e.publish(t, good) // after the others: once it is handled, they were decided
	testenv.Eventually(t, 10*time.Second, "the good event handled, the others terminated", func() bool {
		return e.effects(t) == 1 && consumerIdle(t, e.js, "c6")
	})
	for _, ev := range []*pb.Envelope{forged, relabelled, impostor} {
		if _, ok := seen.Load(ev.EventId); ok {
			t.Errorf("refused event %s (%s) reached the handler", ev.EventId, ev.Type)
		}
	}
	for _, c := range []struct{ typ, reason string }{
		{events.NcmecFinished, events.RefusedSubject},
		{events.StaffAction, events.RefusedPayload},
		{events.NcmecFinished, events.RefusedOwner},
	} {
		if n := refusedCount(m, "c6", c.typ, c.reason); n != 1 {
			t.Errorf("refused{type=%s,reason=%s} = %v, want 1", c.typ, c.reason, n)
		}
	}
	c, err := e.js.Consumer(t.Context(), events.Stream, "c6")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("%d refused events redelivered", info.NumRedelivered)
	}
}

// A consumer that keeps refused events (the audit-logger) gets them with
// the refusal, in order with the others, and acknowledges them once.
func TestKeepRefusedHandsTheRefusalOn(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var mu sync.Mutex
	got := map[string]*events.Refusal{}
	m := e.run(t, stream.ConsumerConfig{Durable: "c7", KeepRefused: true}, func(ctx context.Context, tx pgx.Tx, m stream.Message) error {
		mu.Lock()
		got[m.EventId] = m.Refused
		mu.Unlock()
		return effect(ctx, tx, m)
	})
	forged, err := events.New(events.NewID(), events.Staff("mallory", ""), &pb.NcmecFinished{NcmecReportId: 7})
	if err != nil {
		t.Fatal(err)
	}
	e.publishOn(t, events.Subject(events.StaffAction), forged)
	good := newEvent(t)
	e.publish(t, good)
	testenv.Eventually(t, 10*time.Second, "both handled", func() bool { return e.effects(t) == 2 && consumerIdle(t, e.js, "c7") })
	mu.Lock()
	defer mu.Unlock()
	if r := got[forged.EventId]; r == nil || r.Reason != events.RefusedSubject {
		t.Errorf("forged event handed on with refusal %v, want %s", r, events.RefusedSubject)
	}
	if r := got[good.EventId]; r != nil {
		t.Errorf("good event handed on as refused: %v", r)
	}
	if n := refusedCount(m, "c7", events.NcmecFinished, events.RefusedSubject); n != 1 {
		t.Errorf("refused count %v, want 1", n)
	}
}
