package report

import (
	"slices"
	"testing"

	"takedown/pkg/filing"
)

// Every filing state has its own API status, and the API's existing values
// stay what they were.
func TestStatusOfEveryState(t *testing.T) {
	want := map[filing.State]Status{
		filing.Pending:   "submitted",
		filing.Opened:    "ncmec_opened",
		filing.Uploading: "uploading",
		filing.Failed:    "failed",
		filing.Closed:    "closed",
		filing.Retracted: "retracted",
		filing.Finished:  "finished",
	}
	seen := map[Status]bool{}
	for _, s := range filing.States {
		got := StatusOf(s)
		if w, ok := want[s]; !ok || got != w {
			t.Errorf("StatusOf(%s) = %q, want %q", s, got, w)
		}
		if seen[got] {
			t.Errorf("two states map to %q", got)
		}
		seen[got] = true
	}
	// Every status once: the filing's, and the legal gate's two before it.
	all := Statuses()
	if len(all) != len(filing.States)+2 || !slices.Contains(all, StatusClosed) ||
		!slices.Contains(all, StatusAwaitingLegal) || !slices.Contains(all, StatusRejected) {
		t.Errorf("Statuses() = %v", all)
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != len(filing.States)+2 {
		t.Errorf("Statuses() repeats a status: %v", Statuses())
	}
}

// A report legal holds or rejected says so, whatever its (unstarted)
// filing says, and offers no filing step; a decided or recorded one shows
// its filing.
func TestLegalHoldsTheStatus(t *testing.T) {
	for _, tc := range []struct {
		legal LegalState
		want  Status
		steps bool
	}{
		{LegalAwaiting, StatusAwaitingLegal, false},
		{LegalRejected, StatusRejected, false},
		{LegalApproved, StatusFailed, true},
		{LegalRecorded, StatusFailed, true},
	} {
		var r Report
		r.SetFiling(filing.Status{Filing: 1, State: filing.Failed})
		r.SetLegal(Legal{State: tc.legal})
		if r.Status != tc.want || (len(r.NextSteps) > 0) != tc.steps {
			t.Errorf("%s: status %s, next steps %v; want %s, steps %v", tc.legal, r.Status, r.NextSteps, tc.want, tc.steps)
		}
	}
}

// People are shown by name and e-mail; a report stored before names were
// kept (NULL columns) shows its submitter's subject.
func TestSubmitterAndDeciderNames(t *testing.T) {
	for _, tc := range []struct {
		r    Report
		want string
	}{
		{Report{SubmittedBy: "sub-1", SubmittedByName: "Ada Staff", SubmittedByEmail: "ada@example.org"}, "Ada Staff <ada@example.org>"},
		{Report{SubmittedBy: "sub-1", SubmittedByName: "Ada Staff"}, "Ada Staff"},
		{Report{SubmittedBy: "sub-1"}, "sub-1"},
	} {
		if got := tc.r.Submitter(); got != tc.want {
			t.Errorf("Submitter() = %q, want %q", got, tc.want)
		}
	}
	if got := (Legal{DecidedBy: "sub-2", DecidedByName: "Lena Legal", DecidedByEmail: "lena@example.org"}).Decider(); got != "Lena Legal <lena@example.org>" {
		t.Errorf("Decider() = %q", got)
	}
}
