package e2e

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/testenv"
)

// TestLegalGate runs the default configuration (LEGAL_APPROVAL=required)
// through every service: a report reaches NCMEC only after a second person
// approved it, the submitter's approval is refused, and a rejected report
// never reaches NCMEC; the case names the approver.
func TestLegalGate(t *testing.T) {
	s := stack.Start(t, stack.Options{ServiceEnv: map[string][]string{"intake": {"LEGAL_APPROVAL=required"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	held := func(key string) map[string]any {
		r := stack.NewReport(key)
		delete(r, "legal_approved")
		delete(r, "approver")
		return r
	}
	approved, err := s.Submit(ctx, held("approved"), stack.SmallFiles(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	rejected, err := s.Submit(ctx, held("rejected"), stack.SmallFiles(2, 2))
	if err != nil {
		t.Fatal(err)
	}
	if approved.Status != "awaiting_legal" || rejected.Status != "awaiting_legal" {
		t.Fatalf("statuses after submission %q, %q; want awaiting_legal", approved.Status, rejected.Status)
	}

	var apiErr *stack.APIError
	if err := s.DecideLegal(ctx, s.Token, approved.ID, true, "my own report"); !errors.As(err, &apiErr) ||
		apiErr.Status != http.StatusForbidden || !strings.Contains(apiErr.Body, "second_person_required") {
		t.Fatalf("the submitter's approval: %v, want 403 second_person_required", err)
	}
	// Nothing of either report has reached NCMEC while they wait: the
	// reporter files only what report.submitted announces.
	if n := len(s.NCMEC.State().Reports); n != 0 {
		t.Fatalf("NCMEC holds %d reports before any approval", n)
	}

	if err := s.DecideLegal(ctx, s.Token2, rejected.ID, false, "adult content, not CSAM"); err != nil {
		t.Fatal(err)
	}
	if err := s.DecideLegal(ctx, s.Token2, approved.ID, true, "apparent CSAM: report"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "approved report finished and its case written", func() bool {
		r, err := s.Report(ctx, approved.ID)
		return err == nil && stack.Settled(r)
	})

	// The rejection was committed before the approval, so the reporter,
	// which takes events in order, would have opened the rejected report
	// first: NCMEC holds the approved one only.
	reports := s.NCMEC.State().Reports
	if len(reports) != 1 || !strings.Contains(reports[0].XML, stack.Marker("approved")) {
		t.Fatalf("NCMEC holds %d reports; want the approved one only", len(reports))
	}
	if r, err := s.Report(ctx, rejected.ID); err != nil || r.Status != "rejected" {
		t.Fatalf("rejected report reads %q, %v", r.Status, err)
	}
	var approver any
	for _, c := range s.SF.Records("Case") {
		if c["Takedown_Report_Id__c"] == approved.ID {
			approver = c["Legal_Approver__c"]
		}
	}
	if approver != "development sign-in 2" {
		t.Fatalf("the case's legal approver is %v, want the second person", approver)
	}
	// The audit log holds both decisions.
	for _, id := range []string{approved.ID, rejected.ID} {
		testenv.Eventually(t, 30*time.Second, "legal's decision in the audit log", func() bool {
			entries, err := s.Audit(ctx, id)
			return err == nil && slices.ContainsFunc(entries, func(e stack.AuditEntry) bool { return e.Type == "report.legal_decided" })
		})
	}
}
