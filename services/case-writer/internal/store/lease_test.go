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
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
	"takedown/services/case-writer/internal/cases"
)

// The cases keep the lease contract, fenced by the claim's token. A claim
// cannot be renewed: a Salesforce write must end within one lease.
func TestCasesLeaseContract(t *testing.T) {
	leasetest.Run(t, leasetest.Features{Fenced: true, LeaseLost: ErrLeaseLost}, func(t *testing.T) leasetest.Table {
		pool := testenv.Schema(t, "casewriter", outbox.Migrations, Migrations)
		return caseTable{pool: pool, s: New(pool)}
	})
}

type caseTable struct {
	pool *pgxpool.Pool
	s    *Store
}

func (c caseTable) Add(ctx context.Context) (string, error) {
	id := uuid.NewString()
	return id, database.InTx(ctx, c.pool, func(tx pgx.Tx) error {
		return Apply(ctx, tx, []Edit{{ReportID: id, Change: func(c *cases.Case) bool {
			c.Submitted = &pb.ReportSubmitted{Report: &pb.Report{Id: id}}
			return true
		}}})
	})
}

// Claim has no worker: the claim's token is its owner.
func (c caseTable) Claim(ctx context.Context, _ string, lease time.Duration) (leasetest.Job, error) {
	cl, err := c.s.Claim(ctx, lease)
	if cl == nil {
		return nil, err
	}
	return caseJob{s: c.s, cl: cl}, nil
}

type caseJob struct {
	s  *Store
	cl *Claim
}

func (j caseJob) Key() string { return j.cl.Case.ReportID }

func (j caseJob) Settle(ctx context.Context) error {
	ev, err := events.New(j.cl.Case.ReportID, events.Service("case-writer"), &pb.CaseUpserted{CaseId: "500x"})
	if err != nil {
		return err
	}
	return j.s.Synced(ctx, j.cl, "500x", ev)
}

func (j caseJob) Retry(ctx context.Context, delay time.Duration) error {
	return j.s.Retry(ctx, j.cl, delay, "contract test")
}
