// Package cases holds what case-writer knows about one report's Salesforce
// case, and the rules by which events change it. Events may arrive in any
// order and more than once; the rules make the result depend only on the
// set of events, not on their order.
package cases

import (
	"time"

	"google.golang.org/protobuf/proto"

	pb "takedown/pkg/proto/takedown/v1"
)

// NCMEC states a case shows. Pending means no NCMEC event arrived yet.
const (
	StatePending   = "pending"
	StateOpened    = "opened"
	StateFailed    = "failed"
	StateFinished  = "finished"
	StateRetracted = "retracted"
)

// States lists every NCMEC state, for configuration checks.
var States = []string{StatePending, StateOpened, StateFailed, StateFinished, StateRetracted}

// rank is the precedence of the NCMEC states: a state never gives way to a
// lower one, whatever order the events arrive in. Failed is above opened (a
// filing that opened and then failed has failed), finished above failed (a
// receipt is proof the report was filed; a late "failed" from a step that was
// retried and then succeeded must not hide it), and retracted on top: a
// retraction withdraws the report whatever came before.
var rank = map[string]int{StatePending: 0, StateOpened: 1, StateFailed: 2, StateFinished: 3, StateRetracted: 4}

// NCMEC is the latest NCMEC state of a report.
type NCMEC struct {
	State    string
	ReportID int64     // 0 until NCMEC assigned one
	At       time.Time // when the event that set State happened
	// FinishedAt is the receipt time of a finished report.
	FinishedAt time.Time
	// Error describes a failed filing.
	Error string
}

// Case is the desired content of one report's Salesforce case.
type Case struct {
	ReportID string
	// Submitted is the report as submitted, without its data key; nil until
	// takedown.report.submitted arrived. No case is written before it.
	Submitted *pb.ReportSubmitted
	NCMEC     NCMEC
	// NCMECFiles maps our file ids to NCMEC's.
	NCMECFiles map[string]string
}

// New returns the case of a report about which nothing is known yet.
func New(reportID string) *Case {
	return &Case{ReportID: reportID, NCMEC: NCMEC{State: StatePending}, NCMECFiles: map[string]string{}}
}

// Change is the effect of one event. It reports whether the case must be
// written to Salesforce again; a change that only matters together with a
// later one (an NCMEC file id, which the finished event always follows)
// updates the case without asking for a write.
type Change func(c *Case) (write bool)

// FromEvent returns the change an event makes, or false for events that do
// not concern the case.
func FromEvent(ev *pb.Envelope) (Change, bool) {
	at := ev.GetOccurredAt().AsTime()
	switch p := ev.Payload.(type) {
	case *pb.Envelope_ReportSubmitted:
		return submitted(p.ReportSubmitted), true
	case *pb.Envelope_NcmecOpened:
		return ncmec(NCMEC{State: StateOpened, ReportID: p.NcmecOpened.NcmecReportId, At: at}), true
	case *pb.Envelope_NcmecFinished:
		f := p.NcmecFinished
		finished := at
		if f.FinishedAt != nil {
			finished = f.FinishedAt.AsTime()
		}
		return ncmec(NCMEC{State: StateFinished, ReportID: f.NcmecReportId, At: at, FinishedAt: finished}), true
	case *pb.Envelope_NcmecFailed:
		f := p.NcmecFailed
		return ncmec(NCMEC{State: StateFailed, ReportID: f.NcmecReportId, At: at, Error: failure(f)}), true
	case *pb.Envelope_NcmecRetracted:
		return ncmec(NCMEC{State: StateRetracted, ReportID: p.NcmecRetracted.NcmecReportId, At: at}), true
	case *pb.Envelope_NcmecFileUploaded:
		u := p.NcmecFileUploaded
		return func(c *Case) bool {
			if c.NCMECFiles[u.FileId] == u.NcmecFileId {
				return false
			}
			c.NCMECFiles[u.FileId] = u.NcmecFileId
			if c.NCMEC.ReportID == 0 {
				c.NCMEC.ReportID = u.NcmecReportId
			}
			return false
		}, true
	}
	return nil, false
}

func failure(f *pb.NcmecFailed) string {
	s := "at " + f.Step
	if f.Description != "" {
		s += ": " + f.Description
	}
	return s
}

// submitted stores the report once. A second report.submitted for the same
// report (a republished event) changes nothing.
func submitted(s *pb.ReportSubmitted) Change {
	return func(c *Case) bool {
		if c.Submitted != nil && proto.Equal(c.Submitted, withoutKey(s)) {
			return false
		}
		c.Submitted = withoutKey(s)
		return true
	}
}

// withoutKey drops the wrapped data key: case-writer never needs it, and a
// copy kept here would outlive its destruction elsewhere (DESIGN.md §4).
func withoutKey(s *pb.ReportSubmitted) *pb.ReportSubmitted {
	c := proto.Clone(s).(*pb.ReportSubmitted)
	c.DataKey = nil
	return c
}

// ncmec applies a new NCMEC state unless a state of higher precedence (or
// the same state from a later event) is already known. The NCMEC report id
// is kept from whichever event carried it.
func ncmec(n NCMEC) Change {
	return func(c *Case) bool {
		old := c.NCMEC
		cur := &c.NCMEC
		if rank[n.State] > rank[cur.State] || (rank[n.State] == rank[cur.State] && n.At.After(cur.At)) {
			id := cur.ReportID
			*cur = n
			if cur.ReportID == 0 {
				cur.ReportID = id
			}
		} else if cur.ReportID == 0 && n.ReportID != 0 {
			cur.ReportID = n.ReportID
		}
		return *cur != old
	}
}

// FileState is the NCMEC state of one file: the report's state once it is
// final, else uploaded when NCMEC has the file, else pending.
func (c *Case) FileState(fileID string) string {
	switch c.NCMEC.State {
	case StateFinished, StateFailed, StateRetracted:
		return c.NCMEC.State
	}
	if c.NCMECFiles[fileID] != "" {
		return "uploaded"
	}
	return StatePending
}

// FileStates lists every file state, for configuration checks.
var FileStates = []string{StatePending, "uploaded", StateFailed, StateFinished, StateRetracted}
