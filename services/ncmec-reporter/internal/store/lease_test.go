package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/leasetest"
	"takedown/pkg/ncmec"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The filings keep the lease contract, fenced: a worker whose lease was
// taken over writes nothing.
func TestFilingsLeaseContract(t *testing.T) {
	leasetest.Run(t, leasetest.Features{Fenced: true, LeaseLost: ErrLeaseLost}, func(t *testing.T) leasetest.Table {
		pool := testenv.Schema(t, "ncmec", outbox.Migrations, Migrations)
		return filings{pool: pool, s: New(pool)}
	})
}

type filings struct {
	pool *pgxpool.Pool
	s    *Store
}

func (f filings) Add(ctx context.Context) (string, error) {
	id := uuid.NewString()
	sub := &pb.ReportSubmitted{Report: &pb.Report{Id: id, Filing: 1}}
	return id, database.InTx(ctx, f.pool, func(tx pgx.Tx) error { return Record(ctx, tx, uuid.NewString(), sub) })
}

func (f filings) Claim(ctx context.Context, worker string, lease time.Duration) (leasetest.Job, error) {
	fl, err := f.s.Claim(ctx, worker, lease)
	if fl == nil {
		return nil, err
	}
	return filingJob{s: f.s, f: fl}, nil
}

type filingJob struct {
	s *Store
	f *Filing
}

func (j filingJob) Key() string { return j.f.ReportID }

func (j filingJob) Settle(ctx context.Context) error {
	ev, err := events.New(j.f.ReportID, events.Service("ncmec-reporter"), &pb.NcmecFinished{NcmecReportId: 1, Filing: 1})
	if err != nil {
		return err
	}
	return j.s.Finished(ctx, j.f, Call{Endpoint: ncmec.EndpointFinish}, nil, ev)
}

func (j filingJob) Retry(ctx context.Context, delay time.Duration) error {
	return j.s.Retry(ctx, j.f, time.Now().Add(delay), Call{})
}

func (j filingJob) Renew(ctx context.Context, lease time.Duration) error {
	return j.s.Renew(ctx, j.f, lease)
}

// Every step of a filing is fenced, whether it changes the filings row of
// its own (Opened) or only touches it to take the lease's row lock
// (UploadAttempt): a worker whose lease was taken over gets ErrLeaseLost
// and changes nothing, not the filing, its files, its calls nor the outbox.
func TestStaleWorkerStepsChangeNothing(t *testing.T) {
	ctx := t.Context()
	pool := testenv.Schema(t, "ncmec", outbox.Migrations, Migrations)
	s := New(pool)
	id := uuid.NewString()
	sub := &pb.ReportSubmitted{Report: &pb.Report{Id: id, Filing: 1},
		Files: []*pb.File{{Id: uuid.NewString(), ObjectKey: "k0", Size: 1, Md5: "00"}}}
	if err := database.InTx(ctx, pool, func(tx pgx.Tx) error { return Record(ctx, tx, uuid.NewString(), sub) }); err != nil {
		t.Fatal(err)
	}
	stale, err := s.Claim(ctx, "stalled", 10*time.Millisecond)
	if err != nil || stale == nil {
		t.Fatalf("claim: %v, %v", stale, err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fresh, err := s.Claim(ctx, "w2", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if fresh != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled worker's filing was not taken over")
		}
	}

	event := func() *pb.Envelope {
		ev, err := events.New(id, events.Service("ncmec-reporter"), &pb.NcmecFinished{NcmecReportId: 1, Filing: 1})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	resp := &ncmec.Response{ReportID: 1, RequestID: "r"}
	call := Call{Endpoint: ncmec.EndpointSubmit, Err: errors.New("boom")}
	steps := []struct {
		name string
		run  func() error
	}{
		{"BeginSubmit", func() error { return s.BeginSubmit(ctx, stale, []byte("<report/>")) }},
		{"SubmitNotApplied", func() error { return s.SubmitNotApplied(ctx, stale, call) }},
		{"SubmitAmbiguous", func() error { return s.SubmitAmbiguous(ctx, stale, &call, event()) }},
		{"Opened", func() error { return s.Opened(ctx, stale, resp, event()) }},
		{"UploadAttempt", func() error { return s.UploadAttempt(ctx, stale, 0, event()) }},
		{"UploadRefused", func() error { return s.UploadRefused(ctx, stale, 0, call) }},
		{"Uploaded", func() error { return s.Uploaded(ctx, stale, 0, &ncmec.UploadResult{FileID: "f", Hash: "00"}) }},
		{"Described", func() error { return s.Described(ctx, stale, 0, []byte("<fileDetails/>"), resp, event()) }},
		{"Finished", func() error { return s.Finished(ctx, stale, call, []string{"f"}, event()) }},
		{"Failed", func() error { return s.Failed(ctx, stale, "submit", 1000, "refused", &call, event()) }},
		{"Retracted", func() error { return s.Retracted(ctx, stale) }},
		{"Retry", func() error { return s.Retry(ctx, stale, time.Now(), call) }},
	}
	snapshot := func() string {
		var filing, files string
		var calls, outboxRows int
		if err := pool.QueryRow(ctx, `SELECT (SELECT to_jsonb(f)::text FROM filings f WHERE id = $1),
				(SELECT jsonb_agg(to_jsonb(x) ORDER BY idx)::text FROM filing_files x WHERE filing_id = $1),
				(SELECT count(*) FROM calls), (SELECT count(*) FROM outbox)`, stale.ID).Scan(&filing, &files, &calls, &outboxRows); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("filing %s\nfiles %s\n%d calls, %d outbox rows", filing, files, calls, outboxRows)
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			before := snapshot()
			if err := step.run(); !errors.Is(err, ErrLeaseLost) {
				t.Errorf("stale worker's step: %v, want %v", err, ErrLeaseLost)
			}
			if after := snapshot(); after != before {
				t.Errorf("stale worker's step changed\n%s\ninto\n%s", before, after)
			}
		})
	}
}
