package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"takedown/pkg/leasetest"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The owed retractions are fenced: Due gives each claim a new lease token,
// and the writes of a worker whose token is no longer the row's fail with
// ErrLeaseLost, so a stalled worker cannot record (and publish) a second
// outcome after another worker took the retraction over.
func TestRetractionsLeaseContract(t *testing.T) {
	leasetest.Run(t, leasetest.Features{Fenced: true, LeaseLost: ErrLeaseLost}, func(t *testing.T) leasetest.Table {
		pool := testenv.Schema(t, "retraction", Migrations)
		return retractions{New(pool)}
	})
}

type retractions struct{ s *Store }

func (r retractions) Add(ctx context.Context) (string, error) {
	id := uuid.NewString()
	return id, r.s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := r.s.Lock(ctx, tx, id); err != nil {
			return err
		}
		_, err := r.s.Request(ctx, tx, id, "contract test", "staff", true)
		return err
	})
}

// Claim has no worker: Due's lease token stands for it.
func (r retractions) Claim(ctx context.Context, _ string, lease time.Duration) (leasetest.Job, error) {
	ids, err := r.s.Due(ctx, 1, lease)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	rep, err := r.s.Get(ctx, ids[0].ReportID)
	if err != nil {
		return nil, err
	}
	return retractionJob{s: r.s, c: ids[0], filing: rep.Filing}, nil
}

type retractionJob struct {
	s      *Store
	c      Claim
	filing int
}

func (j retractionJob) Key() string { return j.c.ReportID }

func (j retractionJob) Settle(ctx context.Context) error {
	return j.s.InTx(ctx, func(tx pgx.Tx) error {
		_, err := j.s.Settle(ctx, tx, j.c, j.filing, Retracted, "")
		return err
	})
}

func (j retractionJob) Retry(ctx context.Context, delay time.Duration) error {
	return j.s.Retry(ctx, j.c, j.filing, delay, "contract test")
}
