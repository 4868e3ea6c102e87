package filing_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/events"
	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// env builds an envelope at t0+sec about report "r".
func env(t *testing.T, sec int, payload proto.Message) *pb.Envelope {
	t.Helper()
	e, err := events.New("r", events.Service("test"), payload)
	if err != nil {
		t.Fatal(err)
	}
	e.OccurredAt = timestamppb.New(t0.Add(time.Duration(sec) * time.Second))
	return e
}

func submitted(n uint32, test bool) *pb.ReportSubmitted {
	return &pb.ReportSubmitted{Report: &pb.Report{Id: "r", Filing: n, Test: test}}
}

func fold(t *testing.T, envs ...*pb.Envelope) filing.Status {
	t.Helper()
	s := filing.New()
	for _, e := range envs {
		if ev, ok := filing.Of(e); ok {
			s.Apply(ev)
		}
	}
	return s
}

// Every event moves a filing where the lifecycle says, in order.
func TestTransitions(t *testing.T) {
	t.Parallel()
	failed := &pb.NcmecFailed{Filing: 1, Step: "upload", Code: 4100, Description: "bad", ReportOpened: true, NcmecReportId: 7}
	cases := []struct {
		name string
		envs []*pb.Envelope
		want filing.State
		id   int64
		past []int64
	}{
		{"submitted", []*pb.Envelope{env(t, 0, submitted(1, false))}, filing.Pending, 0, nil},
		{"opened", []*pb.Envelope{env(t, 1, &pb.NcmecOpened{Filing: 1, NcmecReportId: 7})}, filing.Opened, 7, nil},
		{"uploading", []*pb.Envelope{env(t, 1, &pb.NcmecOpened{Filing: 1, NcmecReportId: 7}), env(t, 2, &pb.NcmecFileUploaded{Filing: 1, NcmecReportId: 7})}, filing.Uploading, 7, nil},
		{"finished", []*pb.Envelope{env(t, 3, &pb.NcmecFinished{Filing: 1, NcmecReportId: 7})}, filing.Finished, 7, nil},
		{"failed", []*pb.Envelope{env(t, 3, failed)}, filing.Failed, 7, nil},
		{"a late failure never hides a finish", []*pb.Envelope{env(t, 3, &pb.NcmecFinished{Filing: 1, NcmecReportId: 7}), env(t, 4, failed)}, filing.Finished, 7, nil},
		{"failed then retracted", []*pb.Envelope{env(t, 3, failed), env(t, 4, &pb.NcmecRetracted{Filing: 1, NcmecReportId: 7})}, filing.Retracted, 7, nil},
		{"failed then closed", []*pb.Envelope{env(t, 3, failed), env(t, 4, &pb.ReportClosed{Filing: 1, Reason: "filed by phone"})}, filing.Closed, 7, nil},
		{"5102 at retraction proves finished", []*pb.Envelope{env(t, 3, failed), env(t, 4, &pb.NcmecRetractionFailed{Filing: 1, NcmecReportId: 7, Code: 5102, AlreadyFinished: true})}, filing.Finished, 7, nil},
		{"a retraction that failed leaves the state", []*pb.Envelope{env(t, 3, failed), env(t, 4, &pb.NcmecRetractionFailed{Filing: 1, NcmecReportId: 7, Description: "down"})}, filing.Failed, 7, nil},
		{"file again supersedes", []*pb.Envelope{env(t, 3, failed), env(t, 4, &pb.NcmecRetracted{Filing: 1, NcmecReportId: 7}), env(t, 5, submitted(2, false))}, filing.Pending, 0, []int64{7}},
		{"the new filing finishes", []*pb.Envelope{env(t, 3, failed), env(t, 4, &pb.NcmecRetracted{Filing: 1, NcmecReportId: 7}), env(t, 5, submitted(2, false)),
			env(t, 6, &pb.NcmecOpened{Filing: 2, NcmecReportId: 9}), env(t, 7, &pb.NcmecFinished{Filing: 2, NcmecReportId: 9})}, filing.Finished, 9, []int64{7}},
		{"an old filing's late event moves nothing", []*pb.Envelope{env(t, 5, submitted(2, false)), env(t, 6, &pb.NcmecOpened{Filing: 2, NcmecReportId: 9}),
			env(t, 7, &pb.NcmecRetracted{Filing: 1, NcmecReportId: 7})}, filing.Opened, 9, []int64{7}},
		{"events of older contracts are filing 1", []*pb.Envelope{env(t, 1, &pb.NcmecOpened{NcmecReportId: 7})}, filing.Opened, 7, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := fold(t, c.envs...)
			if s.State != c.want || s.NCMECReportID != c.id || !slices.Equal(s.Past, c.past) {
				t.Fatalf("state %s, NCMEC id %d, past %v; want %s, %d, %v", s.State, s.NCMECReportID, s.Past, c.want, c.id, c.past)
			}
		})
	}
}

func TestFinishLearntAndProblem(t *testing.T) {
	t.Parallel()
	failed := &pb.NcmecFailed{Filing: 1, Step: "finish", Code: 9999, Description: "refused", ReportOpened: true, NcmecReportId: 7}
	s := fold(t, env(t, 3, failed))
	if s.Problem() == "" || s.State != filing.Failed {
		t.Fatalf("failed: %+v", s)
	}
	s = fold(t, env(t, 3, failed), env(t, 5, &pb.NcmecRetractionFailed{Filing: 1, NcmecReportId: 7, AlreadyFinished: true}))
	if s.State != filing.Finished || s.LearnedFrom != filing.FromRetract5102 || s.Problem() != "" {
		t.Fatalf("finished by 5102: %+v", s)
	}
	s = fold(t, env(t, 3, &pb.NcmecFinished{Filing: 1, NcmecReportId: 7, LearnedFrom: filing.FromFinish5102}))
	if s.LearnedFrom != filing.FromFinish5102 {
		t.Fatalf("learnt from %q", s.LearnedFrom)
	}
	s = fold(t, env(t, 1, &pb.NcmecSubmitAmbiguous{Filing: 1, Attempt: 1}), env(t, 2, &pb.NcmecSubmitAmbiguous{Filing: 1, Attempt: 2}))
	if s.Ambiguous != 2 || s.State != filing.Pending {
		t.Fatalf("ambiguous: %+v", s)
	}
}

// Every staff action is allowed exactly where the lifecycle says; each
// refusal says why.
func TestAllows(t *testing.T) {
	t.Parallel()
	type row struct {
		state  filing.State
		opened bool
		want   []filing.Action
	}
	rows := []row{
		{filing.Pending, false, []filing.Action{filing.Retract}},
		{filing.Opened, true, []filing.Action{filing.Retract}},
		{filing.Uploading, true, []filing.Action{filing.Retract}},
		{filing.Failed, false, []filing.Action{filing.FileAgain, filing.Close}},
		{filing.Failed, true, []filing.Action{filing.Retract, filing.Close}},
		{filing.Closed, false, []filing.Action{filing.FileAgain}},
		{filing.Closed, true, []filing.Action{filing.FileAgain, filing.Retract}},
		{filing.Retracted, true, []filing.Action{filing.FileAgain}},
		{filing.Finished, true, nil},
	}
	if len(rows) < len(filing.States) {
		t.Fatal("a state has no row")
	}
	for _, r := range rows {
		s := filing.Status{Filing: 1, State: r.state}
		if r.opened {
			s.NCMECReportID = 7
		}
		if got := s.NextSteps(); !slices.Equal(got, r.want) {
			t.Errorf("%s (opened %v): next steps %v, want %v", r.state, r.opened, got, r.want)
		}
		for _, a := range filing.Actions {
			if err := s.Allows(a); err != nil && err.Error() == "" {
				t.Errorf("%s: refusal of %s says nothing", r.state, a)
			}
		}
		s.Ambiguous = 1
		if s.Allows(filing.RetractLost) != nil {
			t.Errorf("%s: an ambiguous /submit's report cannot be retracted by id", r.state)
		}
	}
}

// The fold depends only on the set of events: every order of the events of
// two filings (the first failed, retracted and filed again) ends in the same
// status. This is what lets intake, case-writer and retraction, each
// consuming concurrently, agree.
func TestEveryOrderSameStatus(t *testing.T) {
	t.Parallel()
	histories := [][]*pb.Envelope{
		{ // failed after open, retracted, filed again, finished
			env(t, 0, submitted(1, false)),
			env(t, 1, &pb.NcmecOpened{Filing: 1, NcmecReportId: 7, Environment: "production"}),
			env(t, 2, &pb.NcmecFailed{Filing: 1, Step: "upload", ReportOpened: true, NcmecReportId: 7}),
			env(t, 3, &pb.NcmecRetracted{Filing: 1, NcmecReportId: 7}),
			env(t, 4, submitted(2, false)),
			env(t, 5, &pb.NcmecOpened{Filing: 2, NcmecReportId: 9, Environment: "production"}),
			env(t, 6, &pb.NcmecFileUploaded{Filing: 2, NcmecReportId: 9}),
			env(t, 7, &pb.NcmecFinished{Filing: 2, NcmecReportId: 9}),
		},
		{ // finish refused, retraction finds it finished (5102), and an ambiguous submit before
			env(t, 0, submitted(1, true)),
			env(t, 1, &pb.NcmecSubmitAmbiguous{Filing: 1, Attempt: 1}),
			env(t, 2, &pb.NcmecOpened{Filing: 1, NcmecReportId: 7, Environment: "test"}),
			env(t, 3, &pb.NcmecFileUploaded{Filing: 1, NcmecReportId: 7}),
			env(t, 4, &pb.NcmecFailed{Filing: 1, Step: "finish", ReportOpened: true, NcmecReportId: 7}),
			env(t, 5, &pb.NcmecRetractionFailed{Filing: 1, NcmecReportId: 7, Description: "timeout"}),
			env(t, 6, &pb.NcmecRetractionFailed{Filing: 1, NcmecReportId: 7, AlreadyFinished: true}),
		},
		{ // failed before open, closed by staff, filed again, failed again
			env(t, 0, submitted(1, false)),
			env(t, 1, &pb.NcmecFailed{Filing: 1, Step: "submit", Description: "bad URL"}),
			env(t, 2, &pb.ReportClosed{Filing: 1, Reason: "phoned NCMEC"}),
			env(t, 3, submitted(2, false)),
			env(t, 4, &pb.NcmecFailed{Filing: 2, Step: "submit", Description: "bad URL"}),
			env(t, 5, &pb.NcmecFailed{Filing: 2, Step: "submit", Description: "still bad"}),
		},
	}
	for i, h := range histories {
		want := fold(t, h...)
		orders := 0
		permute(h, func(order []*pb.Envelope) {
			orders++
			if diff := cmp.Diff(want, fold(t, order...)); diff != "" {
				t.Fatalf("history %d: an order changed the status (-in order +this order):\n%s", i, diff)
			}
		})
		t.Logf("history %d: %d orders, all %s", i, orders, want.State)
	}
	// And a duplicate delivery changes nothing.
	h := histories[0]
	dup := append(slices.Clone(h), h[2], h[3])
	rand.Shuffle(len(dup), func(i, j int) { dup[i], dup[j] = dup[j], dup[i] })
	if diff := cmp.Diff(fold(t, h...), fold(t, dup...)); diff != "" {
		t.Fatalf("duplicates changed the status:\n%s", diff)
	}
}

// permute calls fn with every order of es (Heap's algorithm).
func permute(es []*pb.Envelope, fn func([]*pb.Envelope)) {
	a := slices.Clone(es)
	c := make([]int, len(a))
	fn(a)
	for i := 0; i < len(a); {
		if c[i] < i {
			if i%2 == 0 {
				a[0], a[i] = a[i], a[0]
			} else {
				a[c[i]], a[i] = a[i], a[c[i]]
			}
			fn(a)
			c[i]++
			i = 0
		} else {
			c[i] = 0
			i++
		}
	}
}

// A later filing wins whatever its state; within a filing, precedence.
func TestNewer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		af   int
		as   filing.State
		bf   int
		bs   filing.State
		want bool
	}{
		{2, filing.Pending, 1, filing.Finished, true},
		{1, filing.Finished, 2, filing.Pending, false},
		{1, filing.Finished, 1, filing.Opened, true},
		{1, filing.Opened, 1, filing.Finished, false},
		{1, filing.Failed, 1, filing.Failed, false},
		{0, filing.Opened, 1, filing.Pending, true}, // older contracts: filing 1
		{1, filing.Opened, 1, "", true},             // nothing shown yet
	}
	for _, c := range cases {
		if got := filing.Newer(c.af, c.as, c.bf, c.bs); got != c.want {
			t.Errorf("Newer(%d %s, %d %s) = %v, want %v", c.af, c.as, c.bf, c.bs, got, c.want)
		}
	}
}

// The retraction of an NCMEC report this system lost track of (an
// ambiguous /submit, named by staff) carries the current filing's number but
// is about another NCMEC report: in no order may it pass for the filing's
// own retraction, its finish (5102), or its NCMEC report id.
func TestLostReportEventsMoveNothing(t *testing.T) {
	t.Parallel()
	own := []*pb.Envelope{
		env(t, 0, submitted(1, false)),
		env(t, 1, &pb.NcmecSubmitAmbiguous{Filing: 1, Attempt: 1}),
		env(t, 2, &pb.NcmecOpened{Filing: 1, NcmecReportId: 9, Environment: "production"}),
	}
	want := fold(t, own...)
	lost := append(slices.Clone(own),
		env(t, 3, &pb.NcmecRetracted{Filing: 1, NcmecReportId: 50, Environment: "production", Lost: true}),
		env(t, 4, &pb.NcmecRetractionFailed{Filing: 1, NcmecReportId: 60, Environment: "test", AlreadyFinished: true, Lost: true}),
		env(t, 5, &pb.NcmecRetractionFailed{Filing: 1, NcmecReportId: 70, Description: "down", Lost: true}))
	permute(lost, func(order []*pb.Envelope) {
		if diff := cmp.Diff(want, fold(t, order...)); diff != "" {
			t.Fatalf("a lost report's event moved the filing (-want +got):\n%s", diff)
		}
	})
	if want.State != filing.Opened || want.NCMECReportID != 9 || want.Ambiguous != 1 {
		t.Fatalf("status %+v", want)
	}
}
