package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/ncmec"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
)

// Each step of a worker holding the lease logs exactly the NCMEC call it
// was given, or none: a step without a call (or Retry after a failure that
// was not NCMEC's) writes no calls row, and one with a call writes one row
// with the call's endpoint, file, outcome, code, request id (NCMEC's
// error's when the call has none), answer and error text.
func TestStepsLogTheirCall(t *testing.T) {
	ctx := t.Context()
	pool := testenv.Schema(t, "ncmec", outbox.Migrations, Migrations)
	s := New(pool)
	event := func(t *testing.T) *pb.Envelope {
		ev, err := events.New(uuid.NewString(), events.Service("ncmec-reporter"), &pb.NcmecFinished{NcmecReportId: 1, Filing: 1})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	idx := 0
	refused := &ncmec.Error{Endpoint: ncmec.EndpointUpload, Code: 1000, Description: "refused", HTTPStatus: 200, RequestID: "q1", Kind: ncmec.KindPermanent}
	const refusedRow = "upload|0|permanent|1000|q1|NULL|ncmec upload: code 1000 (refused) [request-id q1]"
	submitFailed := Call{Endpoint: ncmec.EndpointSubmit, Err: errors.New("connection refused")}
	const submitFailedRow = "submit|NULL|permanent|0|NULL|NULL|connection refused"
	later := time.Now().Add(time.Hour) // a retried filing is not claimed again here

	steps := []struct {
		name string
		run  func(t *testing.T, f *Filing) error
		want []string // the filing's calls rows, as callRows renders them
	}{
		{"BeginSubmit", func(t *testing.T, f *Filing) error { return s.BeginSubmit(ctx, f, []byte("<report/>")) }, nil},
		{"SubmitNotApplied", func(t *testing.T, f *Filing) error { return s.SubmitNotApplied(ctx, f, submitFailed) },
			[]string{submitFailedRow}},
		{"SubmitAmbiguous", func(t *testing.T, f *Filing) error { return s.SubmitAmbiguous(ctx, f, &submitFailed, event(t)) },
			[]string{submitFailedRow}},
		{"SubmitAmbiguousUnanswered", func(t *testing.T, f *Filing) error { return s.SubmitAmbiguous(ctx, f, nil, event(t)) }, nil},
		{"Opened", func(t *testing.T, f *Filing) error {
			return s.Opened(ctx, f, &ncmec.Response{ReportID: 7, RequestID: "r1", Raw: []byte("<reportResponse/>")}, event(t))
		}, []string{"submit|NULL|ok|0|r1|<reportResponse/>|NULL"}},
		{"UploadAttempt", func(t *testing.T, f *Filing) error { return s.UploadAttempt(ctx, f, 0, event(t)) }, nil},
		{"UploadRefused", func(t *testing.T, f *Filing) error {
			return s.UploadRefused(ctx, f, 0, Call{Endpoint: ncmec.EndpointUpload, FileIdx: &idx, Err: refused})
		}, []string{refusedRow}},
		{"Uploaded", func(t *testing.T, f *Filing) error {
			return s.Uploaded(ctx, f, 0, &ncmec.UploadResult{FileID: "f", Hash: "00", RequestID: "r2", Raw: []byte("<uploadResponse/>")})
		}, []string{"upload|0|ok|0|r2|<uploadResponse/>|NULL"}},
		{"Described", func(t *testing.T, f *Filing) error {
			return s.Described(ctx, f, 0, []byte("<fileDetails/>"), &ncmec.Response{RequestID: "r3", Raw: []byte("<reportResponse/>")}, event(t))
		}, []string{"fileinfo|0|ok|0|r3|<reportResponse/>|NULL"}},
		{"Finished", func(t *testing.T, f *Filing) error {
			return s.Finished(ctx, f, Call{Endpoint: ncmec.EndpointFinish, RequestID: "r4", Response: []byte("<receipt/>")}, []string{"f"}, event(t))
		}, []string{"finish|NULL|ok|0|r4|<receipt/>|NULL"}},
		{"Failed", func(t *testing.T, f *Filing) error {
			return s.Failed(ctx, f, "upload", 1000, "refused", &Call{Endpoint: ncmec.EndpointUpload, FileIdx: &idx, Err: refused}, event(t))
		}, []string{refusedRow}},
		{"FailedWithoutCall", func(t *testing.T, f *Filing) error { return s.Failed(ctx, f, "upload", 0, "gone", nil, event(t)) }, nil},
		{"Retracted", func(t *testing.T, f *Filing) error { return s.Retracted(ctx, f) }, nil},
		{"Retry", func(t *testing.T, f *Filing) error { return s.Retry(ctx, f, later, submitFailed) }, []string{submitFailedRow}},
		{"RetryNotNCMEC", func(t *testing.T, f *Filing) error {
			return s.Retry(ctx, f, later, Call{Err: errors.New("s3: timeout")})
		}, nil},
		{"LogCall", func(t *testing.T, f *Filing) error {
			return s.LogCall(ctx, f, Call{Endpoint: ncmec.EndpointUpload, FileIdx: &idx, Err: refused})
		}, []string{refusedRow}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			id := uuid.NewString()
			sub := &pb.ReportSubmitted{Report: &pb.Report{Id: id, Filing: 1},
				Files: []*pb.File{{Id: uuid.NewString(), ObjectKey: "k0", Size: 1, Md5: "00"}}}
			if err := database.InTx(ctx, pool, func(tx pgx.Tx) error { return Record(ctx, tx, uuid.NewString(), sub) }); err != nil {
				t.Fatal(err)
			}
			f, err := s.Claim(ctx, "w", time.Minute)
			if err != nil || f == nil || f.ReportID != id {
				t.Fatalf("claim: %+v, %v; want report %s", f, err, id)
			}
			if err := step.run(t, f); err != nil {
				t.Fatal(err)
			}
			rows, err := pool.Query(ctx, `SELECT concat_ws('|', endpoint, coalesce(file_idx::text, 'NULL'), outcome, coalesce(code::text, 'NULL'),
					coalesce(request_id, 'NULL'), coalesce(response, 'NULL'), coalesce(error, 'NULL'))
				FROM calls WHERE filing_id = $1 ORDER BY id`, f.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, step.want) {
				t.Errorf("calls rows %q, want %q", got, step.want)
			}
		})
	}
}
