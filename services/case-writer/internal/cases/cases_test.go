package cases_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/case-writer/internal/cases"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func event(t *testing.T, minute int, payload proto.Message) *pb.Envelope {
	t.Helper()
	env, err := events.New("r1", events.Service("test"), payload)
	if err != nil {
		t.Fatal(err)
	}
	env.OccurredAt = timestamppb.New(t0.Add(time.Duration(minute) * time.Minute))
	return env
}

func apply(t *testing.T, c *cases.Case, env *pb.Envelope) bool {
	t.Helper()
	change, ok := cases.FromEvent(env)
	if !ok {
		t.Fatalf("%s: not a case event", env.Type)
	}
	return change(c)
}

// The final state depends on the events, not on their order: every
// permutation of a filing's events ends the same.
func TestEveryOrderEndsTheSame(t *testing.T) {
	sub := &pb.ReportSubmitted{Report: &pb.Report{Id: "r1"}, Files: []*pb.File{{Id: "f1"}}, DataKey: &pb.WrappedKey{MasterKeyId: "k", Ciphertext: []byte("secret")}}
	evs := []*pb.Envelope{
		event(t, 0, sub),
		event(t, 1, &pb.NcmecOpened{NcmecReportId: 77}),
		event(t, 2, &pb.NcmecFileUploaded{NcmecReportId: 77, FileId: "f1", NcmecFileId: "nf1"}),
		// A step failed, was retried by the reporter and the report then
		// finished: the late "failed" must not hide the receipt.
		event(t, 3, &pb.NcmecFailed{Step: "finish", Description: "timeout", ReportOpened: true, NcmecReportId: 77}),
		event(t, 4, &pb.NcmecFinished{NcmecReportId: 77, FinishedAt: timestamppb.New(t0.Add(4 * time.Minute))}),
	}
	for i := range 50 {
		r := rand.New(rand.NewPCG(uint64(i), 1))
		order := r.Perm(len(evs))
		c := cases.New("r1")
		for _, j := range order {
			apply(t, c, evs[j])
		}
		if c.NCMEC.State != cases.StateFinished || c.NCMEC.ReportID != 77 || !c.NCMEC.FinishedAt.Equal(t0.Add(4*time.Minute)) {
			t.Fatalf("order %v: NCMEC %+v", order, c.NCMEC)
		}
		if c.Submitted == nil || c.Submitted.DataKey != nil {
			t.Fatalf("order %v: submitted %v (the data key must not be kept)", order, c.Submitted)
		}
		if c.NCMECFiles["f1"] != "nf1" || c.FileState("f1") != cases.StateFinished {
			t.Fatalf("order %v: files %v", order, c.NCMECFiles)
		}
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		evs   []*pb.Envelope
		state string
	}{
		{"failed after finished stays finished", []*pb.Envelope{event(t, 1, &pb.NcmecFinished{NcmecReportId: 1}), event(t, 2, &pb.NcmecFailed{Step: "upload"})}, cases.StateFinished},
		{"retracted after failed", []*pb.Envelope{event(t, 1, &pb.NcmecFailed{Step: "upload", ReportOpened: true, NcmecReportId: 1}), event(t, 2, &pb.NcmecRetracted{NcmecReportId: 1})}, cases.StateRetracted},
		{"failed arriving after retracted stays retracted", []*pb.Envelope{event(t, 2, &pb.NcmecRetracted{NcmecReportId: 1}), event(t, 1, &pb.NcmecFailed{Step: "upload"})}, cases.StateRetracted},
		{"opened after failed stays failed", []*pb.Envelope{event(t, 2, &pb.NcmecFailed{Step: "upload"}), event(t, 1, &pb.NcmecOpened{NcmecReportId: 1})}, cases.StateFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cases.New("r1")
			for _, e := range tc.evs {
				apply(t, c, e)
			}
			if c.NCMEC.State != tc.state || c.NCMEC.ReportID != 1 {
				t.Fatalf("NCMEC %+v, want state %s and report id 1", c.NCMEC, tc.state)
			}
		})
	}
}

func TestWhatAsksForAWrite(t *testing.T) {
	c := cases.New("r1")
	sub := event(t, 0, &pb.ReportSubmitted{Report: &pb.Report{Id: "r1"}})
	if !apply(t, c, sub) {
		t.Error("the first report.submitted must ask for a write")
	}
	if apply(t, c, sub) {
		t.Error("the same report.submitted again must not")
	}
	if apply(t, c, event(t, 1, &pb.NcmecFileUploaded{NcmecReportId: 5, FileId: "f", NcmecFileId: "n"})) {
		t.Error("a file upload must not (the finish that follows writes it)")
	}
	fin := event(t, 2, &pb.NcmecFinished{NcmecReportId: 5})
	if !apply(t, c, fin) {
		t.Error("finished must ask for a write")
	}
	if apply(t, c, fin) || apply(t, c, event(t, 3, &pb.NcmecFailed{Step: "upload"})) {
		t.Error("a repeated finished or a late failed must not")
	}
	if _, ok := cases.FromEvent(event(t, 4, &pb.CaseUpserted{CaseId: "500"})); ok {
		t.Error("case-writer's own events do not change the case")
	}
}
