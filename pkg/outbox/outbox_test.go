package outbox_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/metrics"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type env struct {
	pool *pgxpool.Pool
	nats *testenv.NATS
	js   jetstream.JetStream
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	pool := testenv.Schema(t, "svc", outbox.Migrations)
	n := testenv.StartNATS(t)
	nc, js, err := stream.Connect(n.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := stream.Provision(ctx, js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	return &env{pool: pool, nats: n, js: js}
}

func (e *env) add(t *testing.T) *pb.Envelope {
	t.Helper()
	ev, err := events.New(events.NewID(), events.Service("test"), &pb.RetractionRequested{Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if err := database.InTx(t.Context(), e.pool, func(tx pgx.Tx) error { return outbox.Add(t.Context(), tx, ev) }); err != nil {
		t.Fatal(err)
	}
	return ev
}

func (e *env) streamMsgs(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, events.Stream)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

func (e *env) unpublished(t *testing.T) int64 {
	_, n, err := outbox.Lag(t.Context(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func runRelay(t *testing.T, r *outbox.Relay) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestRelayPublishesInOrderWithEventIDAsMsgID(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var want []string
	for range 5 {
		want = append(want, e.add(t).EventId)
	}
	runRelay(t, outbox.NewRelay(e.pool, e.js, metrics.New("test"), testenv.Logger(t), outbox.RelayOptions{}))
	testenv.Eventually(t, 10*time.Second, "5 events in the stream, none unpublished", func() bool {
		return e.streamMsgs(t) == 5 && e.unpublished(t) == 0
	})
	s, _ := e.js.Stream(t.Context(), events.Stream)
	for i, id := range want {
		m, err := s.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != id {
			t.Errorf("message %d: Nats-Msg-Id %s, want %s (in outbox order)", i+1, got, id)
		}
		if m.Subject != "takedown.retraction.requested" {
			t.Errorf("subject %s", m.Subject)
		}
	}
}

func TestEventsWrittenWhileNATSIsDownArePublishedOnceWhenItReturns(t *testing.T) {
	t.Parallel()
	e := setup(t)
	runRelay(t, outbox.NewRelay(e.pool, e.js, metrics.New("test"), testenv.Logger(t), outbox.RelayOptions{Poll: 50 * time.Millisecond}))
	e.nats.Stop()
	ev := e.add(t) // the state change commits although the broker is away
	if n := e.unpublished(t); n != 1 {
		t.Fatalf("unpublished = %d, want 1", n)
	}
	e.nats.Start()
	testenv.Eventually(t, 20*time.Second, "the event is published after NATS returns", func() bool {
		return e.unpublished(t) == 0
	})
	if n := e.streamMsgs(t); n != 1 {
		t.Fatalf("stream holds %d messages, want exactly 1", n)
	}
	s, _ := e.js.Stream(t.Context(), events.Stream)
	m, err := s.GetMsg(t.Context(), 1)
	if err != nil || m.Header.Get(jetstream.MsgIDHeader) != ev.EventId {
		t.Fatalf("message 1: %v %v", m, err)
	}
}

func TestCrashBetweenPublishAndMarkRepublishesWithoutDuplicate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ev := e.add(t)
	crashing := outbox.NewRelay(e.pool, e.js, metrics.New("test"), testenv.Logger(t), outbox.RelayOptions{})
	outbox.CrashAfterPublish(crashing, errors.New("killed"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { crashing.Run(ctx); close(done) }()
	testenv.Eventually(t, 10*time.Second, "the crashing relay published", func() bool { return e.streamMsgs(t) == 1 })
	cancel()
	<-done
	if n := e.unpublished(t); n != 1 {
		t.Fatalf("row marked although the relay died before marking (unpublished=%d)", n)
	}
	runRelay(t, outbox.NewRelay(e.pool, e.js, metrics.New("test"), testenv.Logger(t), outbox.RelayOptions{}))
	testenv.Eventually(t, 10*time.Second, "the restarted relay marks the row", func() bool { return e.unpublished(t) == 0 })
	if n := e.streamMsgs(t); n != 1 {
		t.Fatalf("stream holds %d messages for event %s, want 1 (deduplicated by Nats-Msg-Id)", n, ev.EventId)
	}
}

// Rows committed while a wake-up lingers are published in the same pass.
func TestRelayLingersForMoreRows(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := outbox.NewRelay(e.pool, e.js, metrics.New("test"), testenv.Logger(t), outbox.RelayOptions{Linger: 2 * time.Second, Poll: time.Hour})
	var passes atomic.Int32
	outbox.CountPasses(r, &passes)
	runRelay(t, r)
	testenv.Eventually(t, 10*time.Second, "the relay listens", func() bool {
		var n int
		_ = e.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND query = 'LISTEN "takedown_outbox_' || current_schema() || '"'`).Scan(&n)
		return n >= 1
	})
	// A first row, published by the relay's first pass or its wake-up,
	// so that the two below cannot meet a first pass already under way.
	e.add(t)
	testenv.Eventually(t, 10*time.Second, "the first row published", func() bool { return e.unpublished(t) == 0 && e.streamMsgs(t) == 1 })
	passes.Store(0)
	e.add(t)
	time.Sleep(100 * time.Millisecond) // apart: without lingering, each row would be a pass
	e.add(t)
	testenv.Eventually(t, 10*time.Second, "both rows published", func() bool { return e.unpublished(t) == 0 && e.streamMsgs(t) == 3 })
	if n := passes.Load(); n != 1 {
		t.Errorf("two rows 100 ms apart took %d passes, want 1 within a 2 s linger", n)
	}
}
