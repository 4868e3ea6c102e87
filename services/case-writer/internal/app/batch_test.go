package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/database"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
	"takedown/services/case-writer/internal/app"
	"takedown/services/case-writer/internal/store"
)

// A batch holding the events of two reports, interleaved, leaves the same
// rows as its events handled one by one, each in its own transaction.
func TestBatchLeavesTheRowsOfEventsOneByOne(t *testing.T) {
	t.Parallel()
	pool := testenv.Schema(t, app.Schema, store.Migrations)
	h := &harness{t: t}
	a, b := report(2), report(1)
	aid, bid := a.Report.Id, b.Report.Id
	var ms []stream.Message
	for _, e := range []*pb.Envelope{
		// b's upload before its submission: its row is created by it.
		h.event(bid, &pb.NcmecFileUploaded{NcmecReportId: 8, FileId: b.Files[0].Id, NcmecFileId: "nb0", Filing: 1}),
		h.event(aid, a),
		h.event(bid, b),
		h.event(aid, &pb.NcmecOpened{NcmecReportId: 7, Environment: "test", Filing: 1}),
		h.event(aid, &pb.NcmecFileUploaded{NcmecReportId: 7, FileId: a.Files[0].Id, NcmecFileId: "na0", Filing: 1}),
		h.event(bid, &pb.NcmecFailed{Step: "finish", Description: "refused", ReportOpened: true, NcmecReportId: 8, Filing: 1}),
		h.event(aid, &pb.NcmecFinished{NcmecReportId: 7, FinishedAt: timestamppb.New(incident.Add(5 * time.Hour)), Filing: 1}),
	} {
		ms = append(ms, stream.Message{Envelope: e})
	}

	for _, m := range ms {
		if err := database.InTx(t.Context(), pool, func(tx pgx.Tx) error { return app.Handle(t.Context(), tx, []stream.Message{m}) }); err != nil {
			t.Fatal(err)
		}
	}
	alone := caseRows(t, pool)
	if _, err := pool.Exec(t.Context(), `DELETE FROM cases`); err != nil {
		t.Fatal(err)
	}
	if err := database.InTx(t.Context(), pool, func(tx pgx.Tx) error { return app.Handle(t.Context(), tx, ms) }); err != nil {
		t.Fatal(err)
	}
	batched := caseRows(t, pool)
	if len(alone) != 2 || len(batched) != len(alone) {
		t.Fatalf("%d rows one by one, %d batched; want 2", len(alone), len(batched))
	}
	for i := range alone {
		if alone[i] != batched[i] {
			t.Errorf("one by one:\n%+v\nbatched:\n%+v", alone[i], batched[i])
		}
	}
}

type caseRow struct {
	ReportID, Submitted, NCMEC, Files string
	Rev, Attempts                     int64
	Due                               bool
}

// caseRows reads every case's content and sync bookkeeping, but not the
// times, which are each transaction's own.
func caseRows(t *testing.T, pool *pgxpool.Pool) []caseRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT report_id, encode(submitted, 'hex'), ncmec::text, ncmec_files::text,
		rev, attempts, next_attempt_at <= now() FROM cases ORDER BY report_id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[caseRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}
