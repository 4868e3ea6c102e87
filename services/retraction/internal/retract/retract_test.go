package retract

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/filing"
	"takedown/pkg/metrics"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
	"takedown/services/retraction/internal/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// A batch holding the events of two reports leaves the same rows as its
// events handled one by one, each in its own transaction, whether the
// reports' events are interleaved or sorted by report as the consumer
// sorts them: a staff request before NCMEC opened, which the opening makes
// due; a failure after opening; a new filing, which starts afresh; and a
// failure before opening, which settles the retraction owed.
func TestBatchLeavesTheRowsOfEventsOneByOne(t *testing.T) {
	pool := testenv.Schema(t, "retraction", outbox.Migrations, store.Migrations)
	nats := testenv.StartNATS(t)
	nc, js, err := stream.Connect(nats.URL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r := New(Config{}, store.New(pool), filing.NewHandover(js, filing.HandoverConfig{}), nil, metrics.New("test"), testenv.Logger(t))

	aid, bid := events.NewID(), events.NewID()
	staff := &pb.Actor{Kind: pb.Actor_KIND_STAFF, Id: "s1", Name: "Staff One"}
	// In the future, so that the rows' times are the events' and not the
	// transactions'.
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	var ms []stream.Message
	for _, e := range []struct {
		id      string
		actor   *pb.Actor
		payload proto.Message
	}{
		{aid, nil, &pb.ReportSubmitted{Report: &pb.Report{Id: aid, Filing: 1}}},
		{bid, nil, &pb.ReportSubmitted{Report: &pb.Report{Id: bid, Filing: 1}}},
		{aid, staff, &pb.RetractionRequested{Reason: "wrong report", Filing: 1}},
		{bid, staff, &pb.RetractionRequested{Reason: "wrong report", Filing: 1}},
		{aid, nil, &pb.NcmecSubmitAmbiguous{Filing: 1, Attempt: 1}},
		{aid, nil, &pb.NcmecOpened{NcmecReportId: 7, Environment: "test", Filing: 1}},
		{bid, nil, &pb.NcmecFailed{Step: "submit", Description: "refused", Filing: 1}},
		{aid, nil, &pb.NcmecFailed{Step: "upload", Description: "rejected", ReportOpened: true, NcmecReportId: 7, Filing: 1}},
		{aid, nil, &pb.ReportSubmitted{Report: &pb.Report{Id: aid, Filing: 2}}},
		{aid, nil, &pb.NcmecOpened{NcmecReportId: 9, Environment: "test", Filing: 2}},
		{aid, nil, &pb.NcmecFileUploaded{NcmecReportId: 7, FileId: "f1", NcmecFileId: "n1", Filing: 1}},
	} {
		env, err := events.New(e.id, e.actor, e.payload)
		if err != nil {
			t.Fatal(err)
		}
		at = at.Add(time.Minute)
		env.OccurredAt = timestamppb.New(at)
		ms = append(ms, stream.Message{Envelope: env})
	}

	ctx := t.Context()
	for _, m := range ms {
		if err := database.InTx(ctx, pool, func(tx pgx.Tx) error { return r.Apply(ctx, tx, []stream.Message{m}) }); err != nil {
			t.Fatal(err)
		}
	}
	alone := reportRows(t, pool)
	if len(alone) != 2 || alone[0].Retraction == alone[1].Retraction {
		t.Fatalf("one by one: %+v; want two rows, one retracted and one filed again", alone)
	}
	sorted := slices.Clone(ms)
	slices.SortStableFunc(sorted, func(a, b stream.Message) int { return strings.Compare(a.ReportId, b.ReportId) })
	for _, batch := range [][]stream.Message{ms, sorted} {
		if _, err := pool.Exec(ctx, `DELETE FROM reports; DELETE FROM outbox`); err != nil {
			t.Fatal(err)
		}
		if err := database.InTx(ctx, pool, func(tx pgx.Tx) error { return r.Apply(ctx, tx, batch) }); err != nil {
			t.Fatal(err)
		}
		if batched := reportRows(t, pool); !slices.Equal(batched, alone) {
			t.Errorf("one by one:\n%+v\nbatched:\n%+v", alone, batched)
		}
	}
}

type reportRow struct {
	ReportID, Environment, State, Retraction, Reason, RequestedBy, LastError string
	Filing, Ambiguous, Attempts                                              int
	NCMECReportID                                                            int64
	StateAt, LastChangeAt                                                    time.Time
	EverAmbiguous, Tried, Due                                                bool
	Published                                                                int // events the service published, about any report
}

// reportRows reads every report's row, and how many events the service
// published, but not the times that are each transaction's own: those set
// by now() and by the events the service publishes (the test's events
// happen in the future).
func reportRows(t *testing.T, pool *pgxpool.Pool) []reportRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT report_id::text, environment, ncmec_state, retraction,
		coalesce(reason, ''), coalesce(requested_by, ''), coalesce(last_error, ''), filing, ambiguous, attempts,
		coalesce(ncmec_report_id, 0), coalesce(CASE WHEN ncmec_state_at > now() THEN ncmec_state_at END, 'epoch'), last_change_at, ever_ambiguous,
		first_tried_at IS NOT NULL, next_attempt_at IS NOT NULL, (SELECT count(*) FROM outbox)
		FROM reports ORDER BY report_id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[reportRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}
