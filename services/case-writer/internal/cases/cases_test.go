package cases_test

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/events"
	"takedown/pkg/filing"
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
// permutation of a report's events ends the same, filing again included.
func TestEveryOrderEndsTheSame(t *testing.T) {
	key := &pb.WrappedKey{MasterKeyId: "k", Ciphertext: []byte("secret")}
	sub1 := &pb.ReportSubmitted{Report: &pb.Report{Id: "r1", Filing: 1, Notes: "first"}, Files: []*pb.File{{Id: "f1"}}, DataKey: key}
	sub2 := &pb.ReportSubmitted{Report: &pb.Report{Id: "r1", Filing: 2, Notes: "corrected"}, Files: []*pb.File{{Id: "f1"}}, DataKey: key}
	tests := []struct {
		name  string
		evs   []*pb.Envelope
		check func(t *testing.T, c *cases.Case)
	}{
		{"one filing", []*pb.Envelope{
			event(t, 0, sub1),
			event(t, 1, &pb.NcmecOpened{NcmecReportId: 77, Filing: 1}),
			event(t, 2, &pb.NcmecFileUploaded{NcmecReportId: 77, FileId: "f1", NcmecFileId: "nf1", Filing: 1}),
			// A step failed, was retried by the reporter and the report then
			// finished: the late "failed" must not hide the receipt.
			event(t, 3, &pb.NcmecFailed{Step: "finish", Description: "timeout", ReportOpened: true, NcmecReportId: 77, Filing: 1}),
			event(t, 4, &pb.NcmecFinished{NcmecReportId: 77, FinishedAt: timestamppb.New(t0.Add(4 * time.Minute)), Filing: 1}),
		}, func(t *testing.T, c *cases.Case) {
			if c.NCMEC.State != filing.Finished || c.NCMEC.NCMECReportID != 77 || !c.NCMEC.FinishedAt.Equal(t0.Add(4*time.Minute)) {
				t.Fatalf("NCMEC %+v", c.NCMEC)
			}
			if c.NCMECFiles["f1"] != "nf1" || c.FileState("f1") != "finished" {
				t.Fatalf("files %v", c.NCMECFiles)
			}
		}},
		{"filed again", []*pb.Envelope{
			event(t, 0, sub1),
			event(t, 1, &pb.NcmecOpened{NcmecReportId: 7, Filing: 1}),
			event(t, 2, &pb.NcmecFileUploaded{NcmecReportId: 7, FileId: "f1", NcmecFileId: "old", Filing: 1}),
			event(t, 3, &pb.NcmecFailed{Step: "upload", ReportOpened: true, NcmecReportId: 7, Filing: 1}),
			event(t, 4, &pb.NcmecRetracted{NcmecReportId: 7, Filing: 1}),
			event(t, 5, sub2),
			event(t, 6, &pb.NcmecOpened{NcmecReportId: 9, Filing: 2}),
			event(t, 7, &pb.NcmecFileUploaded{NcmecReportId: 9, FileId: "f1", NcmecFileId: "new", Filing: 2}),
			event(t, 8, &pb.NcmecFinished{NcmecReportId: 9, Filing: 2}),
		}, func(t *testing.T, c *cases.Case) {
			if c.NCMEC.Filing != 2 || c.NCMEC.State != filing.Finished || c.NCMEC.NCMECReportID != 9 || !slices.Equal(c.NCMEC.Past, []int64{7}) {
				t.Fatalf("NCMEC %+v", c.NCMEC)
			}
			if c.Earlier[7] != filing.Retracted {
				t.Fatalf("earlier %v, want report 7 retracted", c.Earlier)
			}
			if c.NCMECFiles["f1"] != "new" || c.Submitted.GetReport().GetNotes() != "corrected" {
				t.Fatalf("files %v, submitted %v", c.NCMECFiles, c.Submitted)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 100 {
				r := rand.New(rand.NewPCG(uint64(i), 1))
				order := r.Perm(len(tc.evs))
				c := cases.New("r1")
				for _, j := range order {
					apply(t, c, tc.evs[j])
				}
				if c.Submitted == nil || c.Submitted.DataKey != nil {
					t.Fatalf("order %v: submitted %v (the data key must not be kept)", order, c.Submitted)
				}
				tc.check(t, c)
			}
		})
	}
}

// Precedence within one filing is pkg/filing's; a newer filing supersedes
// an older one whatever its state.
func TestPrecedence(t *testing.T) {
	tests := []struct {
		name   string
		evs    []*pb.Envelope
		state  filing.State
		id     int64
		filing int
	}{
		{"failed after finished stays finished", []*pb.Envelope{event(t, 1, &pb.NcmecFinished{NcmecReportId: 1}), event(t, 2, &pb.NcmecFailed{Step: "upload"})}, filing.Finished, 1, 1},
		{"retracted after failed", []*pb.Envelope{event(t, 1, &pb.NcmecFailed{Step: "upload", ReportOpened: true, NcmecReportId: 1}), event(t, 2, &pb.NcmecRetracted{NcmecReportId: 1})}, filing.Retracted, 1, 1},
		{"failed arriving after retracted stays retracted", []*pb.Envelope{event(t, 2, &pb.NcmecRetracted{NcmecReportId: 1}), event(t, 1, &pb.NcmecFailed{Step: "upload"})}, filing.Retracted, 1, 1},
		{"opened after failed stays failed", []*pb.Envelope{event(t, 2, &pb.NcmecFailed{Step: "upload"}), event(t, 1, &pb.NcmecOpened{NcmecReportId: 1})}, filing.Failed, 1, 1},
		// NCMEC never retracts a finished report: finished outranks retracted.
		{"retracted after finished stays finished", []*pb.Envelope{event(t, 1, &pb.NcmecFinished{NcmecReportId: 1}), event(t, 2, &pb.NcmecRetracted{NcmecReportId: 1})}, filing.Finished, 1, 1},
		{"retraction answered 5102 is finished", []*pb.Envelope{event(t, 1, &pb.NcmecFailed{Step: "finish", ReportOpened: true, NcmecReportId: 1}), event(t, 2, &pb.NcmecRetractionFailed{NcmecReportId: 1, AlreadyFinished: true})}, filing.Finished, 1, 1},
		{"closed by staff", []*pb.Envelope{event(t, 1, &pb.NcmecFailed{Step: "submit"}), event(t, 2, &pb.ReportClosed{Reason: "by phone"})}, filing.Closed, 0, 1},
		{"a newer filing's opened beats the older retracted", []*pb.Envelope{event(t, 1, &pb.NcmecRetracted{NcmecReportId: 1, Filing: 1}), event(t, 2, &pb.NcmecOpened{NcmecReportId: 2, Filing: 2})}, filing.Opened, 2, 2},
		{"an older filing's late retracted moves nothing", []*pb.Envelope{event(t, 2, &pb.NcmecOpened{NcmecReportId: 2, Filing: 2}), event(t, 1, &pb.NcmecRetracted{NcmecReportId: 1, Filing: 1})}, filing.Opened, 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cases.New("r1")
			for _, e := range tc.evs {
				apply(t, c, e)
			}
			if c.NCMEC.State != tc.state || c.NCMEC.NCMECReportID != tc.id || c.NCMEC.Filing != tc.filing {
				t.Fatalf("NCMEC %+v, want state %s, report id %d, filing %d", c.NCMEC, tc.state, tc.id, tc.filing)
			}
		})
	}
}

// What a newer filing replaces, and what an older filing's late event may
// not touch.
func TestFilingAgain(t *testing.T) {
	sub := func(n uint32, notes string) *pb.ReportSubmitted {
		return &pb.ReportSubmitted{Report: &pb.Report{Id: "r1", Filing: n, Notes: notes}, Files: []*pb.File{{Id: "f1"}, {Id: "f2"}}}
	}
	c := cases.New("r1")
	for _, e := range []*pb.Envelope{
		event(t, 0, sub(1, "first")),
		event(t, 1, &pb.NcmecOpened{NcmecReportId: 7, Filing: 1}),
		event(t, 2, &pb.NcmecFileUploaded{NcmecReportId: 7, FileId: "f1", NcmecFileId: "old1", Filing: 1}),
		event(t, 3, &pb.NcmecFailed{Step: "upload", ReportOpened: true, NcmecReportId: 7, Filing: 1}),
	} {
		apply(t, c, e)
	}
	if !apply(t, c, event(t, 5, sub(2, "corrected"))) {
		t.Fatal("the corrected report.submitted must ask for a write")
	}
	if c.Submitted.Report.Notes != "corrected" || len(c.NCMECFiles) != 0 || c.NCMEC.Filing != 2 || c.NCMEC.State != filing.Pending || c.NCMEC.NCMECReportID != 0 {
		t.Fatalf("after filing 2 submitted: %v, files %v, NCMEC %+v", c.Submitted, c.NCMECFiles, c.NCMEC)
	}
	if c.FileState("f1") != "pending" {
		t.Errorf("file state %s, want pending: the old filing's upload is void", c.FileState("f1"))
	}
	// Late events of filing 1: the old submission, an upload, the retraction.
	if apply(t, c, event(t, 0, sub(1, "first"))) || c.Submitted.Report.Notes != "corrected" {
		t.Errorf("an older filing's report.submitted replaced the newer: %v", c.Submitted)
	}
	if apply(t, c, event(t, 2, &pb.NcmecFileUploaded{NcmecReportId: 7, FileId: "f2", NcmecFileId: "old2", Filing: 1})) || len(c.NCMECFiles) != 0 {
		t.Errorf("an older filing's upload was recorded: %v", c.NCMECFiles)
	}
	if !apply(t, c, event(t, 4, &pb.NcmecRetracted{NcmecReportId: 7, Filing: 1})) {
		t.Error("the old report's retraction must be written (the description names it)")
	}
	if c.Earlier[7] != filing.Retracted || c.NCMEC.State != filing.Pending || !slices.Equal(c.NCMEC.Past, []int64{7}) {
		t.Errorf("earlier %v, NCMEC %+v", c.Earlier, c.NCMEC)
	}
	apply(t, c, event(t, 6, &pb.NcmecOpened{NcmecReportId: 9, Filing: 2}))
	apply(t, c, event(t, 7, &pb.NcmecFileUploaded{NcmecReportId: 9, FileId: "f1", NcmecFileId: "new1", Filing: 2}))
	if !apply(t, c, event(t, 8, &pb.NcmecFinished{NcmecReportId: 9, Filing: 2, ExtraCopiesOf: []string{"f1"}, LearnedFrom: filing.FromFinish5102})) {
		t.Fatal("finished must ask for a write")
	}
	if c.NCMEC.State != filing.Finished || c.NCMEC.NCMECReportID != 9 || c.NCMECFiles["f1"] != "new1" ||
		!slices.Equal(c.ExtraCopiesOf, []string{"f1"}) || c.NCMEC.LearnedFrom != filing.FromFinish5102 {
		t.Fatalf("NCMEC %+v, files %v, extra %v", c.NCMEC, c.NCMECFiles, c.ExtraCopiesOf)
	}
}

func TestWhatAsksForAWrite(t *testing.T) {
	c := cases.New("r1")
	sub := event(t, 0, &pb.ReportSubmitted{Report: &pb.Report{Id: "r1"}})
	steps := []struct {
		name  string
		ev    *pb.Envelope
		write bool
	}{
		{"the first report.submitted", sub, true},
		{"the same report.submitted again", sub, false},
		{"opened", event(t, 1, &pb.NcmecOpened{NcmecReportId: 5}), true},
		{"a file upload while the filing is under way (the finish that follows writes it)", event(t, 2, &pb.NcmecFileUploaded{NcmecReportId: 5, FileId: "f", NcmecFileId: "n"}), false},
		{"an ambiguous /submit (the description says so)", event(t, 2, &pb.NcmecSubmitAmbiguous{Attempt: 1}), true},
		{"finished", event(t, 3, &pb.NcmecFinished{NcmecReportId: 5}), true},
		{"the same finished again", event(t, 3, &pb.NcmecFinished{NcmecReportId: 5}), false},
		{"a late failed", event(t, 4, &pb.NcmecFailed{Step: "upload"}), false},
		{"a late retracted", event(t, 5, &pb.NcmecRetracted{NcmecReportId: 5}), false},
		{"a file upload after the finish (nothing follows to carry it)", event(t, 2, &pb.NcmecFileUploaded{NcmecReportId: 5, FileId: "g", NcmecFileId: "m"}), true},
	}
	for _, s := range steps {
		if got := apply(t, c, s.ev); got != s.write {
			t.Errorf("%s: write %v, want %v", s.name, got, s.write)
		}
	}
	if _, ok := cases.FromEvent(event(t, 4, &pb.CaseUpserted{CaseId: "500"})); ok {
		t.Error("case-writer's own events do not change the case")
	}
}

// The states configuration checks use are pkg/filing's, not a list of
// case-writer's own.
func TestStatesComeFromFiling(t *testing.T) {
	for _, s := range filing.States {
		if !slices.Contains(cases.States, string(s)) {
			t.Errorf("States lacks %s", s)
		}
	}
	if want := []string{"pending", "uploaded", "failed", "closed", "retracted", "finished"}; !slices.Equal(cases.FileStates, want) {
		t.Errorf("FileStates %v, want %v", cases.FileStates, want)
	}
}

// sameStatus decides whether an event asks for a write by comparing every
// field of filing.Status; a field added there must be compared too.
func TestSameStatusKnowsEveryField(t *testing.T) {
	if n := reflect.TypeFor[filing.Status]().NumField(); n != 12 {
		t.Fatalf("filing.Status has %d fields; update sameStatus in cases.go and this count", n)
	}
}
