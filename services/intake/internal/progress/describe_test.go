package progress

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"takedown/pkg/events"
	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/intake/internal/report"
)

// A finish that leaves extra copies at NCMEC, or was learnt from 5102, says
// so in the report's history (issue 20).
func TestDescribeFinish(t *testing.T) {
	cases := []struct {
		fin  *pb.NcmecFinished
		want []string
		not  []string
	}{
		{&pb.NcmecFinished{NcmecReportId: 7, NcmecFileIds: []string{"a"}}, []string{"NCMEC report 7 finished with 1 file(s)."}, []string{"extra copy", "5102"}},
		{&pb.NcmecFinished{NcmecReportId: 7, LearnedFrom: filing.FromFinish5102}, []string{"already finished (5102)"}, nil},
		{&pb.NcmecFinished{NcmecReportId: 7, ExtraCopiesOf: []string{"file-1"}, ExtraNcmecFileIds: []string{"n9"}},
			[]string{"extra copy without details of file(s) file-1", "NCMEC file id(s) n9"}, nil},
	}
	for _, c := range cases {
		ev, err := events.New("r", events.Service(events.NcmecReporter), c.fin)
		if err != nil {
			t.Fatal(err)
		}
		got := describe(ev)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q lacks %q", got, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(got, n) {
				t.Errorf("%q holds %q", got, n)
			}
		}
	}
}

// Every event the history shows is described in plain words, with the
// figures staff look for; an event without a description of its own still
// names its type.
func TestDescribe(t *testing.T) {
	files := func(n int) []*pb.File { return make([]*pb.File, n) }
	tests := []struct {
		name    string
		payload proto.Message
		want    string
	}{
		{"first filing", &pb.ReportSubmitted{Report: &pb.Report{Filing: 1}, Files: files(2)}, "Report submitted with 2 file(s)."},
		{"filing of an old event", &pb.ReportSubmitted{Report: &pb.Report{}, Files: files(1)}, "Report submitted with 1 file(s)."},
		{"filed again", &pb.ReportSubmitted{Report: &pb.Report{Filing: 3}, Files: files(1)}, "Report filed again (filing 3) with 1 file(s)."},
		{"opened", &pb.NcmecOpened{NcmecReportId: 42, Environment: "test"}, "NCMEC report 42 opened (test)."},
		{"uploaded", &pb.NcmecFileUploaded{NcmecFileId: "abc"}, "File uploaded to NCMEC as abc."},
		{"finished from the receipt", &pb.NcmecFinished{NcmecReportId: 42, NcmecFileIds: []string{"a", "b"}, LearnedFrom: filing.FromReceipt},
			"NCMEC report 42 finished with 2 file(s)."},
		{"extra copies without NCMEC ids", &pb.NcmecFinished{NcmecReportId: 42, ExtraCopiesOf: []string{"f1", "f2"}},
			"NCMEC report 42 finished with 0 file(s). NCMEC may hold an extra copy without details of file(s) f1, f2 (an upload whose answer was lost was repeated)."},
		{"failed with a code", &pb.NcmecFailed{Step: "upload", Description: "Bad file", Code: 4200},
			"Filing with NCMEC failed at upload: Bad file (NCMEC code 4200)."},
		{"failed without a code", &pb.NcmecFailed{Step: "submit", Description: "gave up"}, "Filing with NCMEC failed at submit: gave up."},
		{"retracted", &pb.NcmecRetracted{NcmecReportId: 42, Reason: "filed in error"}, "NCMEC report 42 retracted: filed in error"},
		{"retraction refused: finished", &pb.NcmecRetractionFailed{NcmecReportId: 42, AlreadyFinished: true, Description: "ignored"},
			"NCMEC report 42 could not be retracted: NCMEC holds it finished."},
		{"retraction failed", &pb.NcmecRetractionFailed{NcmecReportId: 42, Description: "timeout"}, "Retracting NCMEC report 42 failed: timeout"},
		{"ambiguous submit", &pb.NcmecSubmitAmbiguous{Attempt: 2, Description: "connection reset"},
			"NCMEC's answer to opening the report was lost (attempt 2): connection reset; " + report.AmbiguousNote + "."},
		{"closed", &pb.ReportClosed{Reason: "duplicate"}, "Closed by staff: duplicate"},
		{"case written", &pb.CaseUpserted{CaseId: "500x", State: "finished"}, "Salesforce case 500x written (finished)."},
		{"case failed", &pb.CaseFailed{Message: "FIELD_CUSTOM_VALIDATION_EXCEPTION"}, "Salesforce case could not be written: FIELD_CUSTOM_VALIDATION_EXCEPTION"},
		{"retraction requested", &pb.RetractionRequested{Reason: "wrong report"}, "Retraction requested: wrong report"},
		{"evidence read", &pb.EvidenceAccessed{FileId: "f1", Purpose: "upload to NCMEC"}, "Evidence file f1 read: upload to NCMEC."},
		{"hold placed", &pb.EvidenceHoldPlaced{Reason: "subpoena"}, "Legal hold placed: subpoena"},
		{"hold lifted", &pb.EvidenceHoldLifted{Reason: "case closed"}, "Legal hold lifted: case closed"},
		{"destruction requested", &pb.EvidenceDestructionRequested{Agency: "FBI", Reference: "R-1"},
			"Destruction requested by FBI (reference R-1); awaiting a second approval."},
		{"destroyed", &pb.EvidenceDestroyed{Reason: "court order", Files: make([]*pb.DestroyedFile, 3)},
			"Evidence destroyed (court order): 3 file(s); hashes and NCMEC receipt kept."},
		{"staff action", &pb.StaffAction{Action: "download"}, "Staff action: download"},
		{"no description of its own", &pb.NcmecConnection{Environment: "test"}, "Event ncmec.connection."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := events.New("r", events.Service("test"), tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(ev); got != tt.want {
				t.Errorf("describe = %q\n           want %q", got, tt.want)
			}
		})
	}
}

// The history names staff by name and e-mail when the event carries them,
// anyone else by id.
func TestActor(t *testing.T) {
	for _, tt := range []struct {
		actor *pb.Actor
		want  string
	}{
		{nil, ""},
		{events.Staff("sub-1", "Ada Staff"), "Ada Staff"},
		{&pb.Actor{Kind: pb.Actor_KIND_STAFF, Id: "sub-1", Name: "Ada Staff", Email: "ada@example.org"}, "Ada Staff <ada@example.org>"},
		{events.Staff("sub-1", ""), "sub-1"},
		{events.Service("case-writer"), "case-writer"},
	} {
		if got := actor(tt.actor); got != tt.want {
			t.Errorf("actor(%v) = %q, want %q", tt.actor, got, tt.want)
		}
	}
}
