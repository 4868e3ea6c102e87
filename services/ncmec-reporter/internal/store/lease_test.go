package store

import (
	"context"
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
