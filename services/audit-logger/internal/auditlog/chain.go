// Package auditlog is the audit log of takedown: an append-only chain of
// entries, one per event, each holding its canonical content and
// SHA-256(previous entry's hash || content), so that changing, removing,
// inserting or reordering any stored entry breaks the chain where it was done
// (DESIGN.md §1, issue 5).
//
// chain.go holds the rules (what an entry's content is, how it is hashed,
// how a chain is checked) without any database; store.go keeps the chain in
// PostgreSQL.
package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	pb "takedown/pkg/proto/takedown/v1"
)

// Format is the version of the canonical content; a later format would be
// told apart by it, and old entries would keep verifying under theirs.
const Format = 1

// GenesisHash is the prev_hash of the first entry.
var GenesisHash = make([]byte, sha256.Size)

// Actor is who caused an entry's event.
type Actor struct {
	Kind string `json:"kind"` // "staff", "service" or "unspecified"
	ID   string `json:"id"`
	Name string `json:"name"`
	// Email is left out when empty, so that entries without one keep the
	// content format 1 had before staff e-mails were logged.
	Email string `json:"email,omitempty"`
}

// Entry is one link of the chain.
type Entry struct {
	Seq        int64
	EventID    string
	Type       string
	ReportID   string
	Actor      Actor
	OccurredAt time.Time // zero when the event carried no time
	RecordedAt time.Time
	StreamSeq  uint64
	// Refused is why the consumer refused the event ("<reason>: <detail>",
	// events.Check), "" for an ordinary entry. A refused event is logged
	// but acted on by no service.
	Refused  string
	Content  []byte // the canonical content, exactly as hashed
	PrevHash []byte
	Hash     []byte
}

// content is the canonical content of an entry: every field of the entry,
// and the event itself as deterministic protobuf bytes. encoding/json writes
// struct fields in declaration order, so the same entry always encodes to
// the same bytes; verify never re-encodes anyway, it hashes the stored bytes.
type content struct {
	Format        int      `json:"format"`
	Seq           int64    `json:"seq"`
	EventID       string   `json:"event_id"`
	Type          string   `json:"type"`
	ReportID      string   `json:"report_id"`
	Actor         Actor    `json:"actor"`
	OccurredAt    string   `json:"occurred_at"` // RFC 3339, UTC, microseconds; "" when unknown
	RecordedAt    string   `json:"recorded_at"`
	StreamSeq     uint64   `json:"stream_seq"`
	SchemaVersion uint32   `json:"schema_version"`
	Redacted      []string `json:"redacted"`
	Event         []byte   `json:"event"` // base64 of the (redacted) envelope
	// Refused is left out when empty, so that ordinary entries keep the
	// content format 1 had before refusals were logged.
	Refused string `json:"refused,omitempty"`
}

const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// PostgreSQL keeps microseconds; times are cut to them before they are
// hashed so that the column and the content say the same.
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return micro(t).Format(timeLayout)
}

// ActorOf maps an envelope's actor.
func ActorOf(a *pb.Actor) Actor {
	kind := "unspecified"
	switch a.GetKind() {
	case pb.Actor_KIND_STAFF:
		kind = "staff"
	case pb.Actor_KIND_SERVICE:
		kind = "service"
	}
	return Actor{Kind: kind, ID: a.GetId(), Name: a.GetName(), Email: a.GetEmail()}
}

// redact returns the envelope as it may be kept forever. The wrapped data
// key of a report is left out: evidence is destroyed by destroying every copy
// of that key (DESIGN.md §4), and an append-only log could never let its copy
// go. The master key id stays, so the log still says which key protected it.
func redact(env *pb.Envelope) (*pb.Envelope, []string) {
	rs := env.GetReportSubmitted()
	if len(rs.GetDataKey().GetCiphertext()) == 0 {
		return env, []string{}
	}
	c := proto.Clone(env).(*pb.Envelope)
	c.GetReportSubmitted().DataKey.Ciphertext = nil
	return c, []string{"report_submitted.data_key.ciphertext"}
}

// NewEntry builds the entry that follows (prevSeq, prevHash) for env;
// refused is why the event was refused, "" when it was not.
func NewEntry(prevSeq int64, prevHash []byte, env *pb.Envelope, streamSeq uint64, recordedAt time.Time, refused string) (Entry, error) {
	kept, redacted := redact(env)
	event, err := proto.MarshalOptions{Deterministic: true}.Marshal(kept)
	if err != nil {
		return Entry{}, fmt.Errorf("encode event %s: %w", env.EventId, err)
	}
	e := Entry{
		Seq:        prevSeq + 1,
		EventID:    env.EventId,
		Type:       env.Type,
		ReportID:   env.ReportId,
		Actor:      ActorOf(env.Actor),
		RecordedAt: micro(recordedAt),
		StreamSeq:  streamSeq,
		Refused:    refused,
		PrevHash:   prevHash,
	}
	if env.OccurredAt != nil {
		e.OccurredAt = micro(env.OccurredAt.AsTime())
	}
	e.Content, err = json.Marshal(content{
		Format: Format, Seq: e.Seq, EventID: e.EventID, Type: e.Type, ReportID: e.ReportID, Actor: e.Actor,
		OccurredAt: formatTime(e.OccurredAt), RecordedAt: formatTime(e.RecordedAt), StreamSeq: e.StreamSeq,
		SchemaVersion: env.SchemaVersion, Redacted: redacted, Event: event, Refused: refused,
	})
	if err != nil {
		return Entry{}, fmt.Errorf("encode entry %s: %w", env.EventId, err)
	}
	e.Hash = Hash(prevHash, e.Content)
	return e, nil
}

// Hash is SHA-256(prevHash || content).
func Hash(prevHash, content []byte) []byte {
	h := sha256.New()
	h.Write(prevHash)
	h.Write(content)
	return h.Sum(nil)
}

// Event decodes the (redacted) envelope an entry's content holds.
func (e Entry) Event() (*pb.Envelope, error) {
	var c content
	if err := json.Unmarshal(e.Content, &c); err != nil {
		return nil, err
	}
	var env pb.Envelope
	if err := proto.Unmarshal(c.Event, &env); err != nil {
		return nil, err
	}
	return &env, nil
}

// Result is the outcome of walking the chain.
type Result struct {
	OK       bool  `json:"ok"`
	Entries  int64 `json:"entries"` // entries in the log
	FirstBad *Bad  `json:"first_bad,omitempty"`
}

// Bad names the first entry that does not verify, and why.
type Bad struct {
	Seq     int64  `json:"seq"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
}

// Walker checks a chain one entry at a time, in seq order, holding only
// the previous link: memory stays constant however long the chain is.
type Walker struct {
	headSeq  int64
	headHash []byte
	next     int64 // the seq the next entry must have
	prev     []byte
	n        int64
	bad      *Bad
}

// NewWalker starts a walk of a chain whose head row says (headSeq, headHash).
func NewWalker(headSeq int64, headHash []byte) *Walker {
	return &Walker{headSeq: headSeq, headHash: headHash, next: 1, prev: GenesisHash}
}

// Add checks the next entry. After the first bad entry it only counts.
func (w *Walker) Add(e Entry) {
	w.n++
	if w.bad != nil {
		return
	}
	if reason := w.check(e); reason != "" {
		w.bad = &Bad{Seq: e.Seq, EventID: e.EventID, Reason: reason}
		return
	}
	w.next, w.prev = e.Seq+1, e.Hash
}

func (w *Walker) check(e Entry) string {
	switch {
	case e.Seq > w.next && w.next == 1:
		return fmt.Sprintf("the chain starts at entry %d: entries 1 to %d are missing", e.Seq, e.Seq-1)
	case e.Seq > w.next:
		return fmt.Sprintf("entry %d is missing: the chain goes from %d to %d", w.next, w.next-1, e.Seq)
	case e.Seq != w.next:
		return fmt.Sprintf("out of order: expected entry %d", w.next)
	case !bytes.Equal(e.PrevHash, w.prev):
		if w.next == 1 {
			return "prev_hash is not the genesis hash"
		}
		return fmt.Sprintf("prev_hash is not the hash of entry %d", w.next-1)
	case !bytes.Equal(Hash(e.PrevHash, e.Content), e.Hash):
		return "hash does not match prev_hash and content: the entry was changed"
	case e.Seq > w.headSeq:
		return fmt.Sprintf("entry is past the chain head (%d): it was added outside the audit logger", w.headSeq)
	case e.Seq == w.headSeq && !bytes.Equal(e.Hash, w.headHash):
		return "hash differs from the chain head's"
	}
	return columnsMatch(e)
}

// columnsMatch checks that the queryable columns say what the hashed
// content says, so that changing a column alone is caught too.
func columnsMatch(e Entry) string {
	var c content
	if err := json.Unmarshal(e.Content, &c); err != nil {
		return "content is not a valid entry: " + err.Error()
	}
	if c.Format != Format {
		return fmt.Sprintf("content has unknown format %d", c.Format)
	}
	var env pb.Envelope
	if err := proto.Unmarshal(c.Event, &env); err != nil {
		return "content's event does not decode: " + err.Error()
	}
	var occurred string
	if env.OccurredAt != nil {
		occurred = formatTime(env.OccurredAt.AsTime())
	}
	for _, f := range []struct {
		name      string
		col, cont any
	}{
		{"seq", e.Seq, c.Seq},
		{"event_id", e.EventID, c.EventID},
		{"type", e.Type, c.Type},
		{"report_id", e.ReportID, c.ReportID},
		{"actor", e.Actor, c.Actor},
		{"occurred_at", formatTime(e.OccurredAt), c.OccurredAt},
		{"recorded_at", formatTime(e.RecordedAt), c.RecordedAt},
		{"stream_seq", e.StreamSeq, c.StreamSeq},
		{"refused", e.Refused, c.Refused},
		// The event inside the content must agree with the content's own fields.
		{"event's event_id", env.EventId, c.EventID},
		{"event's type", env.Type, c.Type},
		{"event's report_id", env.ReportId, c.ReportID},
		{"event's actor", ActorOf(env.Actor), c.Actor},
		{"event's occurred_at", occurred, c.OccurredAt},
		{"event's schema_version", env.SchemaVersion, c.SchemaVersion},
	} {
		if f.col != f.cont {
			return fmt.Sprintf("%s differs from the hashed content (%v, content says %v)", f.name, f.col, f.cont)
		}
	}
	return ""
}

// Finish ends the walk and returns its result.
func (w *Walker) Finish() Result {
	if w.bad == nil && w.next-1 < w.headSeq {
		w.bad = &Bad{Seq: w.next, Reason: fmt.Sprintf("entries %d to %d are missing: the chain head is at %d", w.next, w.headSeq, w.headSeq)}
	}
	return Result{OK: w.bad == nil, Entries: w.n, FirstBad: w.bad}
}

// HexHash is how hashes are shown.
func HexHash(b []byte) string { return hex.EncodeToString(b) }
