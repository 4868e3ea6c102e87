package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"takedown/pkg/database"
	"takedown/pkg/leasetest"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The owed retractions keep the lease contract unfenced: Due leases a
// retraction by moving its next attempt past the lease, and nothing marks
// who holds it, so a stalled worker's Settle or Retry still lands after
// another has taken the retraction over (the fenced contract case fails
// here). The service relies on a repeated retraction being harmless:
// NCMEC answers a second retract with 5101, a success (retract.settle).
func TestRetractionsLeaseContract(t *testing.T) {
	leasetest.Run(t, leasetest.Features{}, func(t *testing.T) leasetest.Table {
		pool, err := database.Open(t.Context(), testenv.Postgres(t), "retraction")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		if err := database.Migrate(t.Context(), pool, "retraction", Migrations); err != nil {
			t.Fatal(err)
		}
		return retractions{&Store{Pool: pool}}
	})
}

type retractions struct{ s *Store }

func (r retractions) Add(ctx context.Context) (string, error) {
	id := uuid.NewString()
	return id, database.InTx(ctx, r.s.Pool, func(tx pgx.Tx) error {
		if _, err := r.s.Lock(ctx, tx, id); err != nil {
			return err
		}
		_, err := r.s.Request(ctx, tx, id, "contract test", "staff", true)
		return err
	})
}

// Claim has no worker: Due records no owner.
func (r retractions) Claim(ctx context.Context, _ string, lease time.Duration) (leasetest.Job, error) {
	ids, err := r.s.Due(ctx, 1, lease)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	rep, err := r.s.Get(ctx, r.s.Pool, ids[0])
	if err != nil {
		return nil, err
	}
	return retractionJob{s: r.s, id: rep.ReportID, filing: rep.Filing}, nil
}

type retractionJob struct {
	s      *Store
	id     string
	filing int
}

func (j retractionJob) Key() string { return j.id }

func (j retractionJob) Settle(ctx context.Context) error {
	return database.InTx(ctx, j.s.Pool, func(tx pgx.Tx) error {
		_, err := j.s.Settle(ctx, tx, j.id, j.filing, Retracted, "")
		return err
	})
}

func (j retractionJob) Retry(ctx context.Context, delay time.Duration) error {
	return j.s.Retry(ctx, j.id, j.filing, delay, "contract test")
}
