package store_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"takedown/pkg/filing"
	"takedown/services/intake/internal/store"
)

// Every reason reads in plain words with the report's own facts, says what
// to do, and offers only actions the filing allows now (pkg/filing), so a
// page never shows a button that would be refused.
func TestExplainEveryReason(t *testing.T) {
	status := func(evs ...filing.Event) filing.Status {
		st := filing.New()
		for i, ev := range evs {
			ev.At = time.Unix(int64(i), 0)
			st.Apply(ev)
		}
		return st
	}
	retractFailed := filing.Event{Filing: 1, NCMECReportID: 102, Error: "Retracting NCMEC report 102 failed: NCMEC answered 500"}
	for _, tc := range []struct {
		o       store.Owed
		what    []string // in What
		do      string   // in Do
		actions []filing.Action
	}{
		{store.Owed{Reason: store.ReasonFailedUnopened, Filing: status(failed)},
			[]string{"failed at submit: the incident type is missing (NCMEC code 1000)", "NCMEC opened nothing"},
			"file the report again", []filing.Action{filing.FileAgain, filing.Close}},
		{store.Owed{Reason: store.ReasonFailedUnopened, Filing: status(filing.Event{Filing: 1, Ambiguous: 2}, failed)},
			[]string{"NCMEC opened nothing", "lost 2 time(s)", "NCMEC will delete unfinished"},
			"retract that report by its NCMEC id", []filing.Action{filing.FileAgain, filing.RetractLost, filing.Close}},
		{store.Owed{Reason: store.ReasonRetractionOwed, Filing: status(opened(101), failed)},
			[]string{"NCMEC code 1000", "NCMEC report 101 stays open"},
			"retract it now", []filing.Action{filing.Retract}},
		{store.Owed{Reason: store.ReasonRetractionFailed, Filing: status(opened(102), failed, retractFailed)},
			[]string{"Retracting NCMEC report 102 failed: NCMEC answered 500", "still open"},
			"ask NCMEC about report 102", []filing.Action{filing.Retract, filing.Close}},
		{store.Owed{Reason: store.ReasonRetractionFailed, Filing: status(opened(102), retractFailed)},
			// Staff's retraction of a filing still going on failed: close
			// is for failed filings only, so it is not offered.
			[]string{"Retracting NCMEC report 102 failed"}, "Retract it again", []filing.Action{filing.Retract}},
		{store.Owed{Reason: store.ReasonRetracted, Filing: status(opened(103), failed, filing.Event{Filing: 1, State: filing.Retracted, NCMECReportID: 103})},
			[]string{"NCMEC report 103 was retracted", "not filed again"}, "file it again", []filing.Action{filing.FileAgain}},
		{store.Owed{Reason: store.ReasonRetracted, Filing: status(filing.Event{Filing: 1, State: filing.Retracted})},
			[]string{"withdrawn before NCMEC opened anything"}, "file it again", []filing.Action{filing.FileAgain}},
		{store.Owed{Reason: store.ReasonAmbiguousSubmit, Filing: status(filing.Event{Filing: 1, Ambiguous: 1})},
			[]string{"lost 1 time(s)", "goes on (pending)"}, "retract that report by its NCMEC id", []filing.Action{filing.RetractLost}},
		{store.Owed{Reason: store.ReasonStalled, Idle: 20*time.Minute + 10*time.Second, Filing: status(opened(105))},
			[]string{"for 20m0s", "stands at opened"}, "runbook TakedownReportStuck", []filing.Action{filing.Retract}},
		{store.Owed{Reason: store.ReasonCaseFailed, CaseError: "Salesforce case could not be written: REQUIRED_FIELD_MISSING Platform__c",
			Filing: status(opened(106), finished)},
			[]string{"REQUIRED_FIELD_MISSING Platform__c", "filing with NCMEC is not affected"}, "Fix what Salesforce refused", nil},
	} {
		t.Run(string(tc.o.Reason), func(t *testing.T) {
			a := store.Explain(tc.o)
			for _, w := range tc.what {
				if !strings.Contains(a.What, w) {
					t.Errorf("What %q lacks %q", a.What, w)
				}
			}
			if strings.Contains(a.What, "..") || strings.Contains(a.What, "%!") {
				t.Errorf("What %q is not clean text", a.What)
			}
			if !strings.Contains(a.Do, tc.do) {
				t.Errorf("Do %q lacks %q", a.Do, tc.do)
			}
			if !slices.Equal(a.Actions, tc.actions) {
				t.Errorf("actions %v, want %v", a.Actions, tc.actions)
			}
			for _, act := range a.Actions {
				if err := tc.o.Filing.Allows(act); err != nil {
					t.Errorf("offers %s, which the filing refuses: %v", act, err)
				}
			}
		})
	}
	// Every reason has its own words.
	seen := map[string]store.Reason{}
	for _, r := range store.Reasons {
		a := store.Explain(store.Owed{Reason: r, Filing: filing.New()})
		if strings.Contains(a.What, "needs attention (") {
			t.Errorf("%s has no words of its own", r)
		}
		if prev, ok := seen[a.Do]; ok {
			t.Errorf("%s and %s advise alike: %q", r, prev, a.Do)
		}
		seen[a.Do] = r
	}
}
