package pool_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
	"takedown/pkg/metrics"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
	"takedown/services/ncmec-reporter/internal/store"
	"takedown/services/ncmec-reporter/internal/worker/pool"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// claims counts the claim statements a pool's connections run.
type claims struct{ n atomic.Int32 }

func (c *claims) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(strings.TrimSpace(d.SQL), "UPDATE filings SET lease_owner = $1") {
		c.n.Add(1)
	}
	return ctx
}

func (c *claims) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A recorded filing wakes one idle worker, not all of them: each would run
// a claim that finds nothing. The worker that claims it wakes one more, so
// a backlog is still taken up by as many workers as it needs.
func TestWakeStartsOneClaimAndABacklogSpreads(t *testing.T) {
	ctx := t.Context()
	schema := testenv.Schema(t, "ncmec", outbox.Migrations, store.Migrations)
	cfg := schema.Config()
	var counted claims
	cfg.ConnConfig.Tracer = &counted
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)

	const workers = 8
	p := pool.New(pool.Config{Concurrency: workers, Lease: time.Minute, Poll: time.Hour, Instance: "t"},
		store.New(db), metrics.New("test"), testenv.Logger(t))
	held := make(chan string, workers)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Run(runCtx, func(stop, _ context.Context, f *store.Filing, _ *slog.Logger) error {
			held <- f.ReportID
			<-stop.Done()
			return pool.ErrStopped
		})
	}()
	t.Cleanup(func() { stop(); <-done })

	record := func() {
		t.Helper()
		sub := &pb.ReportSubmitted{Report: &pb.Report{Id: uuid.NewString(), Filing: 1}}
		if err := database.InTx(ctx, schema, func(tx pgx.Tx) error { return store.Record(ctx, tx, uuid.NewString(), sub) }); err != nil {
			t.Fatal(err)
		}
	}
	// Every worker looks once as it starts, and finds nothing.
	testenv.Eventually(t, 10*time.Second, "each worker's first look", func() bool { return counted.n.Load() == workers })

	record()
	p.Wake()
	<-held
	// The claim, and the one more it woke, which finds nothing.
	testenv.Eventually(t, 10*time.Second, "the claim and the one it passed on", func() bool { return counted.n.Load() >= workers+2 })
	time.Sleep(300 * time.Millisecond) // a broadcast's other claims would have run by now
	if n := counted.n.Load() - workers; n != 2 {
		t.Fatalf("one wake-up with %d idle workers ran %d claims, want 2", workers-1, n)
	}

	// A backlog: three filings, one wake-up, three workers.
	for range 3 {
		record()
	}
	p.Wake()
	deadline := time.After(10 * time.Second)
	for range 3 {
		select {
		case <-held:
		case <-deadline:
			t.Fatal("three recorded filings and one wake-up: not every one was taken up")
		}
	}
}
