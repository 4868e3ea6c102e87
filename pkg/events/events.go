// Package events builds, names and encodes the envelopes of the event
// contract (proto/takedown/v1, DESIGN.md §3).
package events

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
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

	EvidenceAccessed             = "evidence.accessed"
	EvidenceHoldPlaced           = "evidence.hold_placed"
	EvidenceHoldLifted           = "evidence.hold_lifted"
	EvidenceDestructionRequested = "evidence.destruction_requested"
	EvidenceDestroyed            = "evidence.destroyed"
)

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
// the payload, and the current time.
func New(reportID string, actor *pb.Actor, payload proto.Message) (*pb.Envelope, error) {
	env := &pb.Envelope{
		EventId:       NewID(),
		ReportId:      reportID,
		OccurredAt:    timestamppb.New(time.Now()),
		Actor:         actor,
		SchemaVersion: SchemaVersion,
	}
	switch p := payload.(type) {
	case *pb.ReportSubmitted:
		env.Type, env.Payload = ReportSubmitted, &pb.Envelope_ReportSubmitted{ReportSubmitted: p}
	case *pb.NcmecOpened:
		env.Type, env.Payload = NcmecOpened, &pb.Envelope_NcmecOpened{NcmecOpened: p}
	case *pb.NcmecFileUploaded:
		env.Type, env.Payload = NcmecFileUploaded, &pb.Envelope_NcmecFileUploaded{NcmecFileUploaded: p}
	case *pb.NcmecFinished:
		env.Type, env.Payload = NcmecFinished, &pb.Envelope_NcmecFinished{NcmecFinished: p}
	case *pb.NcmecFailed:
		env.Type, env.Payload = NcmecFailed, &pb.Envelope_NcmecFailed{NcmecFailed: p}
	case *pb.NcmecRetracted:
		env.Type, env.Payload = NcmecRetracted, &pb.Envelope_NcmecRetracted{NcmecRetracted: p}
	case *pb.NcmecRetractionFailed:
		env.Type, env.Payload = NcmecRetractionFailed, &pb.Envelope_NcmecRetractionFailed{NcmecRetractionFailed: p}
	case *pb.CaseUpserted:
		env.Type, env.Payload = CaseUpserted, &pb.Envelope_CaseUpserted{CaseUpserted: p}
	case *pb.CaseFailed:
		env.Type, env.Payload = CaseFailed, &pb.Envelope_CaseFailed{CaseFailed: p}
	case *pb.RetractionRequested:
		env.Type, env.Payload = RetractionRequested, &pb.Envelope_RetractionRequested{RetractionRequested: p}
	case *pb.StaffAction:
		env.Type, env.Payload = StaffAction, &pb.Envelope_StaffAction{StaffAction: p}
	case *pb.EvidenceAccessed:
		env.Type, env.Payload = EvidenceAccessed, &pb.Envelope_EvidenceAccessed{EvidenceAccessed: p}
	case *pb.EvidenceHoldPlaced:
		env.Type, env.Payload = EvidenceHoldPlaced, &pb.Envelope_EvidenceHoldPlaced{EvidenceHoldPlaced: p}
	case *pb.EvidenceHoldLifted:
		env.Type, env.Payload = EvidenceHoldLifted, &pb.Envelope_EvidenceHoldLifted{EvidenceHoldLifted: p}
	case *pb.EvidenceDestructionRequested:
		env.Type, env.Payload = EvidenceDestructionRequested, &pb.Envelope_EvidenceDestructionRequested{EvidenceDestructionRequested: p}
	case *pb.EvidenceDestroyed:
		env.Type, env.Payload = EvidenceDestroyed, &pb.Envelope_EvidenceDestroyed{EvidenceDestroyed: p}
	case *pb.NcmecSubmitAmbiguous:
		env.Type, env.Payload = NcmecSubmitAmbiguous, &pb.Envelope_NcmecSubmitAmbiguous{NcmecSubmitAmbiguous: p}
	case *pb.ReportClosed:
		env.Type, env.Payload = ReportClosed, &pb.Envelope_ReportClosed{ReportClosed: p}
	default:
		return nil, fmt.Errorf("events: %T is not an event payload", payload)
	}
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
