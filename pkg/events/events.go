// Package events builds, names and encodes the envelopes of the event
// contract (proto/takedown/v1, DESIGN.md §3).
package events

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "takedown/pkg/proto/takedown/v1"
)

// Stream is the one JetStream stream every event goes to.
const (
	Stream        = "TAKEDOWN"
	SubjectPrefix = "takedown."
	SchemaVersion = 1
)

// Event types: the subject's tail.
const (
	ReportSubmitted       = "report.submitted"
	NcmecOpened           = "ncmec.opened"
	NcmecFileUploaded     = "ncmec.file_uploaded"
	NcmecFinished         = "ncmec.finished"
	NcmecFailed           = "ncmec.failed"
	NcmecRetracted        = "ncmec.retracted"
	NcmecRetractionFailed = "ncmec.retraction_failed"
	CaseUpserted          = "case.upserted"
	CaseFailed            = "case.failed"
	RetractionRequested   = "retraction.requested"
	StaffAction           = "staff.action"
	NcmecSubmitAmbiguous  = "ncmec.submit_ambiguous"
	ReportClosed          = "report.closed"
	ReportLegalDecided    = "report.legal_decided"
	NcmecConnection       = "ncmec.connection"

	EvidenceAccessed             = "evidence.accessed"
	EvidenceHoldPlaced           = "evidence.hold_placed"
	EvidenceHoldLifted           = "evidence.hold_lifted"
	EvidenceDestructionRequested = "evidence.destruction_requested"
	EvidenceDestroyed            = "evidence.destroyed"
)

// Services: the publishers of events, also their NATS users (deploy/nats).
const (
	Intake        = "intake"
	NcmecReporter = "ncmec-reporter"
	CaseWriter    = "case-writer"
	AuditLogger   = "audit-logger"
	Retraction    = "retraction"
)

// Spec is one event type: the services that own (publish) it and the
// payload it carries.
type Spec struct {
	Type   string
	Owners []string
	// Payload is a nil message of the payload's Go type; the envelope's
	// oneof case is the field of that type.
	Payload proto.Message

	field protoreflect.FieldDescriptor // the envelope's oneof field for Payload
}

// Table is who publishes what (DESIGN.md §3), the one place that says so:
// New takes an event's type from it, Check refuses envelopes that disagree
// with it, and deploy/nats_test.go holds deploy/nats/nats.conf's publish
// permissions to it. A type with two owners is published by both.
var Table = []Spec{
	// A staff member submits a report, or an operator refiles one.
	row(ReportSubmitted, (*pb.ReportSubmitted)(nil), Intake),
	row(ReportClosed, (*pb.ReportClosed)(nil), Intake),
	// Legal's decision on a report held for it (LEGAL_APPROVAL=required).
	row(ReportLegalDecided, (*pb.ReportLegalDecided)(nil), Intake),
	// Staff actions are recorded where they happen: intake's pages and
	// API, and the audit-logger's own API (who read the log).
	row(StaffAction, (*pb.StaffAction)(nil), Intake, AuditLogger),
	// Intake keeps the evidence and its lifecycle (holds, destruction).
	row(EvidenceHoldPlaced, (*pb.EvidenceHoldPlaced)(nil), Intake),
	row(EvidenceHoldLifted, (*pb.EvidenceHoldLifted)(nil), Intake),
	row(EvidenceDestructionRequested, (*pb.EvidenceDestructionRequested)(nil), Intake),
	row(EvidenceDestroyed, (*pb.EvidenceDestroyed)(nil), Intake),
	// The reporter reads each file when it uploads it to NCMEC.
	row(EvidenceAccessed, (*pb.EvidenceAccessed)(nil), NcmecReporter),
	row(NcmecOpened, (*pb.NcmecOpened)(nil), NcmecReporter),
	row(NcmecFileUploaded, (*pb.NcmecFileUploaded)(nil), NcmecReporter),
	row(NcmecFinished, (*pb.NcmecFinished)(nil), NcmecReporter),
	row(NcmecFailed, (*pb.NcmecFailed)(nil), NcmecReporter),
	row(NcmecSubmitAmbiguous, (*pb.NcmecSubmitAmbiguous)(nil), NcmecReporter),
	// The reporter checks NCMEC's /status with each environment's
	// credentials; only it holds them.
	row(NcmecConnection, (*pb.NcmecConnection)(nil), NcmecReporter),
	row(CaseUpserted, (*pb.CaseUpserted)(nil), CaseWriter),
	row(CaseFailed, (*pb.CaseFailed)(nil), CaseWriter),
	// Staff ask retraction's API; its sweep and the max-deliveries
	// advisories ask on their own.
	row(RetractionRequested, (*pb.RetractionRequested)(nil), Retraction),
	row(NcmecRetracted, (*pb.NcmecRetracted)(nil), Retraction),
	row(NcmecRetractionFailed, (*pb.NcmecRetractionFailed)(nil), Retraction),
}

func row(eventType string, payload proto.Message, owners ...string) Spec {
	return Spec{Type: eventType, Owners: owners, Payload: payload}
}

// The table indexed both ways, and checked against the envelope's oneof
// when the package loads: a payload added to the proto but not to the
// table, or the other way round, stops every service at start instead of
// leaving an event nobody may publish.
var (
	byType    = map[string]*Spec{}
	byPayload = map[protoreflect.FullName]*Spec{}
	byField   = map[protoreflect.FieldNumber]*Spec{}
	payloadOf = (*pb.Envelope)(nil).ProtoReflect().Descriptor().Oneofs().ByName("payload")
)

func init() {
	for i := range Table {
		s := &Table[i]
		fields := payloadOf.Fields()
		for j := range fields.Len() {
			if f := fields.Get(j); f.Message().FullName() == s.Payload.ProtoReflect().Descriptor().FullName() {
				s.field = f
			}
		}
		if s.field == nil || byType[s.Type] != nil || byPayload[s.field.Message().FullName()] != nil || len(s.Owners) == 0 {
			panic(fmt.Sprintf("events: table row %s: no envelope payload for %T, a repeated type or payload, or no owner", s.Type, s.Payload))
		}
		byType[s.Type], byPayload[s.field.Message().FullName()], byField[s.field.Number()] = s, s, s
	}
	if len(byField) != payloadOf.Fields().Len() {
		panic("events: an envelope payload has no row in the table")
	}
}

// Lookup returns the table's row for an event type.
func Lookup(eventType string) (Spec, bool) {
	s, ok := byType[eventType]
	if !ok {
		return Spec{}, false
	}
	return *s, true
}

// Owners returns the services that may publish an event type (none for an
// unknown type).
func Owners(eventType string) []string {
	if s, ok := byType[eventType]; ok {
		return slices.Clone(s.Owners)
	}
	return nil
}

// Reasons an envelope is refused, short and fixed (metric labels).
const (
	RefusedSubject = "subject" // the subject is not takedown.<the envelope's type>
	RefusedType    = "type"    // the type is not in the table
	RefusedPayload = "payload" // the payload is not the type's
	RefusedOwner   = "owner"   // a service published a type it does not own
)

// Refusal is why an envelope is not to be acted on.
type Refusal struct {
	Reason string // one of the Refused* constants
	Detail string
}

func (r *Refusal) Error() string { return "event refused (" + r.Reason + "): " + r.Detail }

// Check refuses (with a *Refusal) an envelope received on subject whose
// subject, type and payload disagree, whose type is unknown, or that a
// service published without owning its type. NATS permissions keep each
// service's user to its own subjects, but a consumer must not trust the
// subject alone: the payload is what it acts on, and the actor is what the
// audit log shows. Staff actors are not checked here: staff act through
// a service, and that service's NATS user is what limits the subjects.
func Check(subject string, env *pb.Envelope) error {
	if subject != Subject(env.GetType()) {
		return &Refusal{RefusedSubject, fmt.Sprintf("type %q arrived on subject %q", env.GetType(), subject)}
	}
	s, ok := byType[env.Type]
	if !ok {
		return &Refusal{RefusedType, fmt.Sprintf("unknown event type %q", env.Type)}
	}
	if f := env.ProtoReflect().WhichOneof(payloadOf); f == nil || f.Number() != s.field.Number() {
		got := "no payload"
		if f != nil {
			got = string(f.Message().Name())
		}
		return &Refusal{RefusedPayload, fmt.Sprintf("%s carries %s, not %s", env.Type, got, s.field.Message().Name())}
	}
	if a := env.GetActor(); a.GetKind() == pb.Actor_KIND_SERVICE && !slices.Contains(s.Owners, a.GetId()) {
		return &Refusal{RefusedOwner, fmt.Sprintf("service %q published %s, which only %s may", a.GetId(), env.Type, strings.Join(s.Owners, ", "))}
	}
	return nil
}

// Subject is the NATS subject of an event type.
func Subject(eventType string) string { return SubjectPrefix + eventType }

// NewID returns a new UUIDv7: time-ordered, so ids sort by creation.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// Service returns the actor for a service's own events.
func Service(name string) *pb.Actor {
	return &pb.Actor{Kind: pb.Actor_KIND_SERVICE, Id: name}
}

// Staff returns the actor for a staff member's action.
func Staff(subject, name string) *pb.Actor {
	return &pb.Actor{Kind: pb.Actor_KIND_STAFF, Id: subject, Name: name}
}

// New wraps payload in an envelope with a fresh id, the type that belongs to
// the payload (by the ownership table), and the current time.
func New(reportID string, actor *pb.Actor, payload proto.Message) (*pb.Envelope, error) {
	s, ok := byPayload[payload.ProtoReflect().Descriptor().FullName()]
	if !ok {
		return nil, fmt.Errorf("events: %T is not an event payload", payload)
	}
	env := &pb.Envelope{
		EventId:       NewID(),
		Type:          s.Type,
		ReportId:      reportID,
		OccurredAt:    timestamppb.New(time.Now()),
		Actor:         actor,
		SchemaVersion: SchemaVersion,
	}
	env.ProtoReflect().Set(s.field, protoreflect.ValueOfMessage(payload.ProtoReflect()))
	return env, nil
}

// Marshal encodes an envelope for the wire.
func Marshal(env *pb.Envelope) ([]byte, error) { return proto.Marshal(env) }

// Unmarshal decodes an envelope and checks the fields every consumer relies on.
func Unmarshal(b []byte) (*pb.Envelope, error) {
	var env pb.Envelope
	if err := proto.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	if _, err := uuid.Parse(env.EventId); err != nil {
		return nil, fmt.Errorf("decode event: bad event id %q", env.EventId)
	}
	if env.Type == "" {
		return nil, fmt.Errorf("decode event %s: no type", env.EventId)
	}
	return &env, nil
}
