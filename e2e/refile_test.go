package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/salesforce/sfsim"
	"takedown/pkg/testenv"
)

// TestRetractedReportFiledAgain: NCMEC refuses a report's /finish for good
// after it was opened, the retraction service withdraws it by itself, staff
// file it again (POST /api/v1/reports/{id}/refile), and it ends finished
// everywhere under the NEW NCMEC report id: in intake, at NCMEC, in the
// Salesforce case, with every event in the audit log. All of it through
// the shipped NATS users, with no permission refused.
func TestRetractedReportFiledAgain(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	if err := s.NCMEC.Inject(ncmecsim.Fault{Endpoint: "finish", Kind: ncmecsim.FaultCode, Code: 4000, Times: 1}); err != nil {
		t.Fatal(err)
	}
	sub, err := s.Submit(ctx, stack.NewReport("refiled"), stack.SmallFiles(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	var first stack.Report
	testenv.Eventually(t, 90*time.Second, "report retracted by itself and its case written", func() bool {
		first, err = s.Report(ctx, sub.ID)
		return err == nil && first.Status == "retracted" && stack.Settled(first)
	})
	oldID := first.NCMEC.ReportID
	if oldID == 0 {
		t.Fatal("the retracted report names no NCMEC report")
	}

	again, err := s.Refile(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != "submitted" {
		t.Errorf("refiled report is %s, want submitted", again.Status)
	}
	// Intake first, then the case: a case-writer that drops the new
	// filing's events fails the second wait, not the first.
	var final stack.Report
	testenv.Eventually(t, 90*time.Second, "report filed again and finished in intake under a new NCMEC id", func() bool {
		final, err = s.Report(ctx, sub.ID)
		return err == nil && final.Status == "finished" && final.NCMEC.ReportID != oldID
	})
	for deadline := time.Now().Add(time.Minute); !stack.Settled(final); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the case was not written in the new filing's final state: intake %s, NCMEC report %d %s, case %s %s",
				final.Status, final.NCMEC.ReportID, final.NCMEC.State, final.Case.ID, final.Case.State)
		}
		if final, err = s.Report(ctx, sub.ID); err != nil {
			t.Fatal(err)
		}
	}
	newID := final.NCMEC.ReportID

	// NCMEC: the first report retracted, the new one finished.
	states := map[int64]string{}
	for _, r := range s.NCMEC.State().Reports {
		states[r.ID] = r.Status
	}
	if states[oldID] != ncmecsim.StatusRetracted || states[newID] != ncmecsim.StatusFinished {
		t.Errorf("NCMEC holds report %d %s and %d %s; want the first retracted, the new one finished", oldID, states[oldID], newID, states[newID])
	}
	// Salesforce: the one case, on the new report.
	var cases []sfsim.Record
	for _, c := range s.SF.Records(sfsim.CaseObject) {
		if c[sfsim.CaseReportID] == sub.ID {
			cases = append(cases, c)
		}
	}
	if len(cases) != 1 {
		t.Fatalf("%d Salesforce cases for the report, want 1", len(cases))
	}
	if got := fmt.Sprint(cases[0]["NCMEC_Report_Id__c"]); got != fmt.Sprint(newID) {
		t.Errorf("Salesforce case has NCMEC report id %s, want the new %d (the retracted one was %d)", got, newID, oldID)
	}
	if got := fmt.Sprint(cases[0]["NCMEC_Status__c"]); got != "Finished" {
		t.Errorf("Salesforce case has NCMEC status %s, want Finished", got)
	}

	// Every event of the report, and of the stream, in the audit log once;
	// the case and NCMEC checked again by stack.Check.
	subs := []stack.Submitted{{Key: "refiled", ID: sub.ID, Files: 2}}
	var problems []string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		res := s.Check(ctx, subs)
		problems = append(res.Problems, checkStreamAudited(s, ctx)...)
		if res.Outcomes[sub.ID] != stack.OutcomeFinished {
			problems = append(problems, fmt.Sprintf("outcome %q, want %s", res.Outcomes[sub.ID], stack.OutcomeFinished))
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	for _, l := range s.PermissionViolations() {
		t.Errorf("permission refused: %s", l)
	}
	if t.Failed() {
		t.Log(s.Describe(ctx, subs[0]))
	}
}
