package e2e

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestPipeline runs two reports through every service: one that is filed
// and recorded everywhere, one whose upload NCMEC refuses for good and that
// ends retracted.
func TestPipeline(t *testing.T) {
	s := stack.Start(t, stack.Options{ValidateXSD: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	ok, err := s.Submit(ctx, stack.NewReport("ok"), stack.SmallFiles(3, 1))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "report finished and its case written", func() bool {
		r, err := s.Report(ctx, ok.ID)
		return err == nil && stack.Settled(r)
	})

	// A permanent refusal at upload: the reporter stops, and the retraction
	// service withdraws the NCMEC report it had opened.
	if err := s.NCMEC.Inject(ncmecsim.Fault{Endpoint: "upload", Kind: ncmecsim.FaultCode, Code: 4200}); err != nil {
		t.Fatal(err)
	}
	bad, err := s.Submit(ctx, stack.NewReport("bad"), stack.SmallFiles(3, 2))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "report retracted and its case written", func() bool {
		r, err := s.Report(ctx, bad.ID)
		return err == nil && stack.Settled(r)
	})

	res := s.Check(ctx, []stack.Submitted{
		{Key: "ok", ID: ok.ID, Files: 3},
		{Key: "bad", ID: bad.ID, Files: 3},
	})
	t.Logf("outcomes %v, NCMEC calls %v, Salesforce cases %d, file records %d",
		res.Outcomes, s.NCMEC.State().Calls, len(s.SF.Records("Case")), len(s.SF.Records("Evidence_File__c")))
	for _, p := range res.Problems {
		t.Error(p)
	}
	if got := res.Outcomes[ok.ID]; got != stack.OutcomeFinished {
		t.Errorf("report ok: outcome %s, want %s", got, stack.OutcomeFinished)
	}
	if got := res.Outcomes[bad.ID]; got != stack.OutcomeRetracted {
		t.Errorf("report bad: outcome %s, want %s", got, stack.OutcomeRetracted)
	}
	if n := s.NCMEC.State().Calls["retract"]; n != 1 {
		t.Errorf("NCMEC got %d retract calls, want 1", n)
	}
	for name, n := range s.Crashes() {
		if n != 0 {
			t.Errorf("%s exited on its own %d times", name, n)
		}
	}
	checkOwnLogins(t, s)
}

// checkOwnLogins: every service worked on its own PostgreSQL login and owns
// its schema, as in production, so that the pipeline above needed no
// privilege a production role lacks.
func checkOwnLogins(t *testing.T, s *stack.Stack) {
	t.Helper()
	schemas := map[string]string{"intake": "intake", "ncmec": "ncmec-reporter", "casewriter": "case-writer",
		"audit": "audit-logger", "retraction": "retraction"}
	owners, sessions := testenv.DatabaseUsers(t, s.DBURL, slices.Collect(maps.Keys(schemas))...)
	logins := map[string]bool{}
	for _, l := range s.Logins {
		logins[l.Role] = true
	}
	for schema, service := range schemas {
		if want := s.Logins[service].Role; want == "" || owners[schema] != want {
			t.Errorf("schema %s owned by %q, want %s's own login %q", schema, owners[schema], service, want)
		}
	}
	for _, user := range sessions {
		if !logins[user] {
			t.Errorf("a session works as %q, none of the services' logins", user)
		}
	}
}
