package progress_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/progress"
	"takedown/services/intake/internal/store"
)

// countingTx counts the statements sent through the transaction it wraps:
// everything the handler does goes through the tx it is given.
type countingTx struct {
	pgx.Tx
	n int
}

func (c *countingTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.n++
	return c.Tx.Exec(ctx, sql, args...)
}

func (c *countingTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.n++
	return c.Tx.Query(ctx, sql, args...)
}

func (c *countingTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c.n++
	return c.Tx.QueryRow(ctx, sql, args...)
}

func (c *countingTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	c.n += b.Len()
	return c.Tx.SendBatch(ctx, b)
}

// intakeDB is a fresh intake schema holding reports a and b, the first
// with one file, both pending their first filing.
func intakeDB(t *testing.T, a, b, fileA string) (context.Context, *pgxpool.Pool) {
	t.Helper()
	ctx := t.Context()
	pool := testenv.Schema(t, "intake", store.Migrations)
	if _, err := pool.Exec(ctx, `INSERT INTO reports (id, submitted_at, submitted_by, incident_time, details, data_key_id, data_key, ncmec_state)
		SELECT id, '2026-01-01T00:00:00Z', 'staff', '2026-01-01T00:00:00Z', '{}', 'k', '\x00', 'pending'
		FROM unnest($1::uuid[]) AS u (id)`, []string{a, b}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO files (id, report_id, idx, name, object_key, size, content_type, md5, sha1, sha256, meta)
		VALUES ($1, $2, 0, 'a.jpg', 'k/a', 1, 'image/jpeg', 'md5', 'sha1', 'sha256', '{}')`, fileA, a); err != nil {
		t.Fatal(err)
	}
	return ctx, pool
}

// snapshot is everything the progress consumer writes, as JSON, but the
// time of the writing (updated_at).
func snapshot(t *testing.T, ctx context.Context, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	if err := pool.QueryRow(ctx, `SELECT jsonb_build_array(
			(SELECT jsonb_agg(to_jsonb(r) - 'updated_at' ORDER BY id) FROM reports r),
			(SELECT jsonb_agg(to_jsonb(f) ORDER BY id) FROM files f),
			(SELECT jsonb_agg(to_jsonb(e) ORDER BY event_id) FROM report_events e),
			(SELECT jsonb_agg(to_jsonb(c) ORDER BY environment) FROM ncmec_connections c))::text`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// A batch holding events of two reports, mixed, of a report intake does not
// know and of the NCMEC connection leaves the reports, files, history and
// connection as applying its events one by one does, with one statement
// for the history, one load and one save per report besides the effects.
func TestBatchIsItsEventsOneByOneInFewerStatements(t *testing.T) {
	t.Parallel()
	id := func() string { return uuid.Must(uuid.NewV7()).String() }
	a, b, unknown, fileA := id(), id(), id(), id()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var ms []stream.Message
	add := func(report string, payload proto.Message) {
		env, err := events.New(report, events.Service("test"), payload)
		if err != nil {
			t.Fatal(err)
		}
		env.OccurredAt = timestamppb.New(start.Add(time.Duration(len(ms)) * time.Second))
		ms = append(ms, stream.Message{Envelope: env, StreamSeq: uint64(len(ms) + 1)})
	}
	add(a, &pb.NcmecOpened{NcmecReportId: 11, Environment: "test", Filing: 1})
	add(b, &pb.NcmecOpened{NcmecReportId: 21, Environment: "test", Filing: 1})
	add(unknown, &pb.NcmecOpened{NcmecReportId: 31, Environment: "test", Filing: 1})
	add("", &pb.NcmecConnection{Environment: "test", State: "ok", Detail: "fine"})
	add(a, &pb.NcmecFileUploaded{NcmecReportId: 11, FileId: fileA, NcmecFileId: "n1", NcmecMd5: "m1", Filing: 1})
	add(b, &pb.NcmecFailed{Step: "finish", Code: 5000, Description: "down", ReportOpened: true, NcmecReportId: 21, Filing: 1})
	add(a, &pb.NcmecFinished{NcmecReportId: 11, NcmecFileIds: []string{"n1"}, Filing: 1, LearnedFrom: filing.FromReceipt})
	add(b, &pb.ReportSubmitted{Report: &pb.Report{Id: b, Filing: 2}})
	// The first filing's finish, late: history only.
	add(b, &pb.NcmecFinished{NcmecReportId: 21, Filing: 1, LearnedFrom: filing.FromReceipt})
	add(a, &pb.CaseUpserted{CaseId: "500A", State: "finished", Filing: 1, NcmecReportId: 11})

	ctx, one := intakeDB(t, a, b, fileA)
	for _, m := range ms {
		if err := database.InTx(ctx, one, func(tx pgx.Tx) error {
			return progress.Apply(ctx, tx, []stream.Message{m})
		}); err != nil {
			t.Fatal(err)
		}
	}
	_, batch := intakeDB(t, a, b, fileA)
	tx := &countingTx{}
	if err := database.InTx(ctx, batch, func(inner pgx.Tx) error {
		tx.Tx = inner
		return progress.Apply(ctx, tx, ms)
	}); err != nil {
		t.Fatal(err)
	}

	want := snapshot(t, ctx, one)
	if got := snapshot(t, ctx, batch); got != want {
		t.Errorf("batch:\n%s\none by one:\n%s", got, want)
	}
	// The fold did happen: a finished, b filed again with its first
	// filing's NCMEC report in the past, every report event in the history.
	var stateA, stateB string
	var filingB, history int
	if err := batch.QueryRow(ctx, `SELECT (SELECT ncmec_state FROM reports WHERE id = $1),
			(SELECT ncmec_state FROM reports WHERE id = $2), (SELECT filing FROM reports WHERE id = $2),
			(SELECT count(*) FROM report_events)`, a, b).Scan(&stateA, &stateB, &filingB, &history); err != nil {
		t.Fatal(err)
	}
	if stateA != string(filing.Finished) || stateB != string(filing.Pending) || filingB != 2 || history != len(ms)-1 {
		t.Errorf("a %s, b %s in filing %d, %d history rows; want finished, pending in filing 2, %d",
			stateA, stateB, filingB, history, len(ms)-1)
	}
	// History 1, filings loaded 1, saved 2 (a and b); the effects: a's
	// file's NCMEC id 1, a's retention 1, a's case 2 (read, write), the
	// connection 1.
	if most := 1 + 1 + 2 + 5; tx.n > most {
		t.Errorf("batch of %d events took %d statements, want at most %d", len(ms), tx.n, most)
	}
}
