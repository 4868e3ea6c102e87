// Package cases holds what case-writer knows about one report's Salesforce
// case, and the rules by which events change it. Events may arrive in any
// order and more than once; the rules make the result depend only on the
// set of events, not on their order.
//
// The NCMEC side of a case is the report's filing as pkg/filing folds it:
// the same states, precedence and filing generations every other service
// uses, so the case never tells staff something the status page does not.
package cases

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
)

// Uploaded is the state of a file NCMEC holds while its filing is still
// under way; files otherwise show their filing's state.
const Uploaded = "uploaded"

// States lists every NCMEC state a case shows, for configuration checks.
var States = stateNames(filing.States)

// FileStates lists every state a file shows, for configuration checks:
// pending and uploaded while the filing is under way (its opened and
// uploading states say nothing about one file), else the filing's state.
var FileStates = func() []string {
	out := []string{string(filing.Pending), Uploaded}
	for _, s := range filing.States {
		if !s.Active() {
			out = append(out, string(s))
		}
	}
	return out
}()

func stateNames(ss []filing.State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// Case is the desired content of one report's Salesforce case.
type Case struct {
	ReportID string
	// Submitted is the report as submitted for the latest filing known,
	// without its data key; nil until a report.submitted arrived. No case
	// is written before it. Filing again submits a corrected report,
	// which replaces the earlier one.
	Submitted *pb.ReportSubmitted
	// NCMEC is the report's current filing; its Past holds the NCMEC
	// report ids of earlier filings.
	NCMEC filing.Status
	// NCMECFiles maps our file ids to NCMEC's, for the current filing only:
	// an earlier filing's ids name files of a report that was withdrawn.
	NCMECFiles map[string]string
	// ExtraCopiesOf are our file ids of which NCMEC holds an extra copy
	// without details (the current filing's finish says so).
	ExtraCopiesOf []string
	// Earlier is the state each earlier filing's NCMEC report reached, by
	// its id, as far as its events tell.
	Earlier map[int64]filing.State
}

// New returns the case of a report about which nothing is known yet.
func New(reportID string) *Case {
	return &Case{ReportID: reportID, NCMEC: filing.New(), NCMECFiles: map[string]string{}, Earlier: map[int64]filing.State{}}
}

// Change is the effect of one event. It reports whether the case must be
// written to Salesforce again; a change that only matters together with a
// later one (an NCMEC file id, which a finish or failure always follows)
// updates the case without asking for a write.
type Change func(c *Case) (write bool)

// FromEvent returns the change an event makes, or false for events that do
// not concern the case.
func FromEvent(env *pb.Envelope) (Change, bool) {
	ev, ok := filing.Of(env)
	if !ok {
		return nil, false
	}
	return func(c *Case) bool {
		before := c.NCMEC
		before.Past = slices.Clone(before.Past)
		current := c.NCMEC.Apply(ev)
		write := !sameStatus(before, c.NCMEC)
		if c.NCMEC.Filing > before.Filing {
			// Filed again: what NCMEC said about the old filing's files
			// belongs to a withdrawn report.
			c.remember(before.NCMECReportID, before.State)
			clear(c.NCMECFiles)
			c.ExtraCopiesOf = nil
			write = true
		}
		if !current {
			// Only the history moves: which state the old report reached.
			if ev.State != "" && c.remember(ev.NCMECReportID, ev.State) {
				write = true
			}
		}
		switch p := env.Payload.(type) {
		case *pb.Envelope_ReportSubmitted:
			if c.submit(p.ReportSubmitted) {
				write = true
			}
		case *pb.Envelope_NcmecFileUploaded:
			if current {
				u := p.NcmecFileUploaded
				changed := c.NCMECFiles[u.FileId] != u.NcmecFileId
				c.NCMECFiles[u.FileId] = u.NcmecFileId
				// While the filing is under way, the finish or failure that
				// follows writes the file ids: a write per uploaded file
				// would only cost API calls. Once it stopped (the upload's
				// event came late), nothing follows to carry it.
				write = c.NCMEC.Filing > before.Filing || (changed && !c.NCMEC.State.Active())
			}
		case *pb.Envelope_NcmecFinished:
			if current {
				extra := union(c.ExtraCopiesOf, p.NcmecFinished.ExtraCopiesOf)
				write = write || !slices.Equal(extra, c.ExtraCopiesOf)
				c.ExtraCopiesOf = extra
			}
		}
		return write
	}, true
}

// submit stores the report as submitted for the latest filing. A filing's
// report.submitted again (a republished event) changes nothing, and an
// older filing's never replaces a newer one's.
func (c *Case) submit(s *pb.ReportSubmitted) bool {
	s = withoutKey(s)
	if c.Submitted != nil {
		have, got := filingOf(c.Submitted), filingOf(s)
		if got < have || (got == have && proto.Equal(c.Submitted, s)) {
			return false
		}
	}
	c.Submitted = s
	return true
}

func filingOf(s *pb.ReportSubmitted) int { return int(max(s.GetReport().GetFiling(), 1)) }

// withoutKey drops the wrapped data key: case-writer never needs it, and a
// copy kept here would outlive its destruction elsewhere (DESIGN.md §4).
func withoutKey(s *pb.ReportSubmitted) *pb.ReportSubmitted {
	c := proto.Clone(s).(*pb.ReportSubmitted)
	c.DataKey = nil
	return c
}

// remember folds what an earlier filing's NCMEC report reached into
// Earlier, by filing's precedence (so the order of the old events does not
// matter either), and reports whether it changed.
func (c *Case) remember(id int64, s filing.State) bool {
	if id == 0 || !s.Valid() {
		return false
	}
	if c.Earlier == nil {
		c.Earlier = map[int64]filing.State{}
	}
	if old, ok := c.Earlier[id]; ok && !outranks(s, old) {
		return false
	}
	c.Earlier[id] = s
	return true
}

// outranks reports whether a takes precedence over b within one filing.
func outranks(a, b filing.State) bool {
	return slices.Index(filing.States, a) > slices.Index(filing.States, b)
}

// sameStatus compares every field of two statuses, times by instant rather
// than by representation (a stored time comes back in another location).
// TestSameStatusKnowsEveryField fails when pkg/filing adds a field.
func sameStatus(a, b filing.Status) bool {
	return a.Filing == b.Filing && a.State == b.State && a.NCMECReportID == b.NCMECReportID &&
		a.Environment == b.Environment && a.At.Equal(b.At) && a.Error == b.Error &&
		a.LearnedFrom == b.LearnedFrom && a.FinishedAt.Equal(b.FinishedAt) &&
		a.RetractionError == b.RetractionError && a.RetractionErrorAt.Equal(b.RetractionErrorAt) &&
		a.Ambiguous == b.Ambiguous && slices.Equal(a.Past, b.Past)
}

func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// FileState is the NCMEC state of one file: its filing's state once the
// filing stopped, else uploaded when NCMEC has the file, else pending.
func (c *Case) FileState(fileID string) string {
	if !c.NCMEC.State.Active() {
		return string(c.NCMEC.State)
	}
	if c.NCMECFiles[fileID] != "" {
		return Uploaded
	}
	return string(filing.Pending)
}
