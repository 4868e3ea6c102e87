package store

import (
	"context"
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/database"
	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
	"takedown/services/case-writer/internal/cases"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Cases recorded before migration 0002 keep their NCMEC state as the first
// filing, and the filing model's status survives a round trip.
func TestFilingStatusMigratedAndKept(t *testing.T) {
	ctx := context.Background()
	pool, err := database.Open(ctx, testenv.Postgres(t), "casewriter")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	first, err := fs.ReadFile(migrationFiles, "migrations/0001_cases.sql")
	if err != nil {
		t.Fatal(err)
	}
	before := Migrations
	before.FS = fstest.MapFS{"migrations/0001_cases.sql": {Data: first}}
	if err := database.Migrate(ctx, pool, "casewriter", before); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `INSERT INTO cases (report_id, ncmec_state, ncmec_report_id, ncmec_at, ncmec_finished_at)
		VALUES ('old', 'finished', 42, $1, $1)`, at); err != nil {
		t.Fatal(err)
	}
	if err := database.Migrate(ctx, pool, "casewriter", Migrations); err != nil {
		t.Fatal(err)
	}
	s := New(pool)
	c, _, err := s.Get(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if n := c.NCMEC; n.Filing != 1 || n.State != filing.Finished || n.NCMECReportID != 42 || !n.At.Equal(at) || !n.FinishedAt.Equal(at) || n.LearnedFrom != filing.FromReceipt {
		t.Fatalf("migrated status %+v", n)
	}

	// A report filed again: everything the case shows is stored.
	err = database.InTx(ctx, pool, func(tx pgx.Tx) error {
		return Apply(ctx, tx, []Edit{{ReportID: "new", Change: func(c *cases.Case) bool {
			c.Submitted = &pb.ReportSubmitted{Report: &pb.Report{Id: "new", Filing: 2}}
			c.NCMEC = filing.Status{Filing: 2, State: filing.Finished, NCMECReportID: 9, At: at, FinishedAt: at,
				LearnedFrom: filing.FromFinish5102, Ambiguous: 1, Past: []int64{7}}
			c.NCMECFiles["f1"] = "nf1"
			c.ExtraCopiesOf = []string{"f1"}
			c.Earlier[7] = filing.Retracted
			return true
		}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	c, st, err := s.Get(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	n := c.NCMEC
	if st.Rev != 1 || n.Filing != 2 || n.State != filing.Finished || n.NCMECReportID != 9 || !n.At.Equal(at) ||
		n.LearnedFrom != filing.FromFinish5102 || n.Ambiguous != 1 || !slices.Equal(n.Past, []int64{7}) {
		t.Errorf("stored status %+v (rev %d)", n, st.Rev)
	}
	if c.NCMECFiles["f1"] != "nf1" || !slices.Equal(c.ExtraCopiesOf, []string{"f1"}) || c.Earlier[7] != filing.Retracted {
		t.Errorf("stored files %v, extra copies %v, earlier %v", c.NCMECFiles, c.ExtraCopiesOf, c.Earlier)
	}
}
