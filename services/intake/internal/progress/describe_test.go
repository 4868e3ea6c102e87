package progress

import (
	"strings"
	"testing"

	"takedown/pkg/events"
	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
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
