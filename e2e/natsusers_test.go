package e2e

import (
	"context"
	"testing"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/events"
	"takedown/pkg/testenv"
)

// TestNATSUsersLegalHold runs the stack on the shipped NATS users
// (deploy/nats/nats.conf) through what each service publishes, among it
// the events a permission was once missing for: intake's evidence.* (a
// legal hold placed and lifted) and the reporter's evidence.accessed. The
// outbox relay publishes in order, so one refused event stalls every event
// behind it: a report submitted after the hold would never be filed. No
// NATS or service log may tell of a refused permission.
func TestNATSUsersLegalHold(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	held, err := s.Submit(ctx, stack.NewReport("held"), stack.SmallFiles(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	settled(t, s, ctx, held.ID)
	hold, err := s.PlaceHold(ctx, held.ID, "e2e: litigation hold")
	if err != nil {
		t.Fatal(err)
	}
	// Submitted behind the hold's event in intake's outbox.
	after, err := s.Submit(ctx, stack.NewReport("after"), stack.SmallFiles(2, 2))
	if err != nil {
		t.Fatal(err)
	}
	settled(t, s, ctx, after.ID)
	if err := s.LiftHold(ctx, held.ID, hold.ID, "e2e: litigation over"); err != nil {
		t.Fatal(err)
	}
	// Both hold events reach the audit log through the stream.
	testenv.Eventually(t, time.Minute, "hold placed and lifted in the audit log", func() bool {
		entries, err := s.Audit(ctx, held.ID)
		return err == nil && auditHas(entries, events.EvidenceHoldPlaced) && auditHas(entries, events.EvidenceHoldLifted)
	})

	subs := []stack.Submitted{{Key: "held", ID: held.ID, Files: 2}, {Key: "after", ID: after.ID, Files: 2}}
	res := checkOnce(t, s, ctx, subs)
	for _, sub := range subs {
		if o := res.Outcomes[sub.ID]; o != stack.OutcomeFinished {
			t.Errorf("report %s: outcome %q, want %s", sub.Key, o, stack.OutcomeFinished)
		}
	}
	if entries, err := s.Audit(ctx, held.ID); err != nil || !auditHas(entries, events.EvidenceAccessed) {
		t.Errorf("the reporter's evidence.accessed is not in the audit log (%v)", err)
	}
	for _, l := range s.PermissionViolations() {
		t.Errorf("permission refused: %s", l)
	}
}

// settled waits until intake shows the report at rest.
func settled(t *testing.T, s *stack.Stack, ctx context.Context, id string) {
	t.Helper()
	testenv.Eventually(t, 90*time.Second, "report "+id+" settled", func() bool {
		r, err := s.Report(ctx, id)
		return err == nil && stack.Settled(r)
	})
}

func auditHas(entries []stack.AuditEntry, typ string) bool {
	for _, e := range entries {
		if e.Type == typ {
			return true
		}
	}
	return false
}
