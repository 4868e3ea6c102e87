package events_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
)

// Every row of the table round-trips: New gives the payload's envelope
// the row's type, and Check accepts it from each owner on its subject.
func TestNewTakesTheTypeFromTheTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range events.Table {
		if seen[s.Type] {
			t.Errorf("%s: two rows", s.Type)
		}
		seen[s.Type] = true
		for _, owner := range s.Owners {
			env, err := events.New("r1", events.Service(owner), s.Payload.ProtoReflect().New().Interface())
			if err != nil {
				t.Fatalf("%s: %v", s.Type, err)
			}
			if env.Type != s.Type {
				t.Errorf("New(%T) has type %s, want %s", s.Payload, env.Type, s.Type)
			}
			if err := events.Check(events.Subject(s.Type), env); err != nil {
				t.Errorf("%s from its owner %s refused: %v", s.Type, owner, err)
			}
		}
	}
	if _, err := events.New("r1", nil, &pb.Actor{}); err == nil {
		t.Error("New accepted an Actor as a payload")
	}
}

func TestOwners(t *testing.T) {
	if got := events.Owners(events.StaffAction); len(got) != 2 {
		t.Errorf("staff.action owners %v, want intake and audit-logger", got)
	}
	if got := events.Owners(events.EvidenceAccessed); len(got) != 1 || got[0] != events.NcmecReporter {
		t.Errorf("evidence.accessed owners %v, want the reporter", got)
	}
	if got := events.Owners("no.such"); got != nil {
		t.Errorf("unknown type owners %v", got)
	}
}

func TestCheckRefusesWhatDisagreesWithTheTable(t *testing.T) {
	build := func(actor *pb.Actor, p proto.Message, edit func(*pb.Envelope)) *pb.Envelope {
		env, err := events.New("r1", actor, p)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(env)
		}
		return env
	}
	reporter, intake := events.Service(events.NcmecReporter), events.Service(events.Intake)
	staff := events.Staff("alice", "Alice")
	finished := &pb.NcmecFinished{NcmecReportId: 7}
	for _, c := range []struct {
		name    string
		subject string
		env     *pb.Envelope
		reason  string // "" accepted
	}{
		{"owner on its subject", "takedown.ncmec.finished", build(reporter, finished, nil), ""},
		{"second owner of staff.action", "takedown.staff.action", build(events.Service(events.AuditLogger), &pb.StaffAction{}, nil), ""},
		{"staff through intake", "takedown.evidence.hold_placed", build(staff, &pb.EvidenceHoldPlaced{}, nil), ""},
		{"anonymous staff action", "takedown.staff.action", build(&pb.Actor{Id: "anonymous"}, &pb.StaffAction{}, nil), ""},

		{"finished payload on staff.action, type left", "takedown.staff.action", build(staff, finished, nil), events.RefusedSubject},
		{"finished payload typed staff.action", "takedown.staff.action",
			build(staff, finished, func(e *pb.Envelope) { e.Type = events.StaffAction }), events.RefusedPayload},
		{"no payload", "takedown.ncmec.finished", build(reporter, finished, func(e *pb.Envelope) { e.Payload = nil }), events.RefusedPayload},
		{"unknown type", "takedown.ncmec.withdrawn", build(reporter, finished, func(e *pb.Envelope) { e.Type = "ncmec.withdrawn" }), events.RefusedType},
		{"subject outside takedown", "ncmec.finished", build(reporter, finished, nil), events.RefusedSubject},
		{"intake claims NCMEC finished", "takedown.ncmec.finished", build(intake, finished, nil), events.RefusedOwner},
		{"intake claims an evidence read", "takedown.evidence.accessed", build(intake, &pb.EvidenceAccessed{}, nil), events.RefusedOwner},
		{"unknown service", "takedown.ncmec.finished", build(events.Service("test"), finished, nil), events.RefusedOwner},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := events.Check(c.subject, c.env)
			var r *events.Refusal
			switch {
			case c.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.reason == "":
			case !errors.As(err, &r):
				t.Fatalf("got %v, want a refusal (%s)", err, c.reason)
			case r.Reason != c.reason:
				t.Fatalf("refused for %s (%v), want %s", r.Reason, err, c.reason)
			}
		})
	}
}
