// Package filing is the one model of a report's filing with NCMEC: its
// states, the precedence that settles events arriving out of order, the
// generations a report goes through when it is filed again, and the staff
// actions each state allows. Every service that shows or acts on a filing
// (intake's status and page, case-writer, retraction, the reporter, the
// metrics) folds events through Status.Apply and asks the rules here,
// instead of keeping a table of its own.
//
// A report's filings are numbered from 1. Filing again starts filing n+1,
// which supersedes everything about filing n: its events stay in the history
// but move nothing; its NCMEC report id is kept in Past.
//
// Within one filing the states are ordered; a state never gives way to a
// lower one, so the result depends only on the set of events, not on the
// order they arrive in:
//
//	pending < opened < uploading < failed < closed < retracted < finished
//
// Failed is above the progress states (a filing that opened and then failed
// has failed); closed (staff settled the failure outside the tool) and
// retracted settle a failure; finished is on top because NCMEC's finish
// cannot be undone by us: a finished report is never retracted (NCMEC
// answers 5102), so any evidence that NCMEC holds it finished — a receipt,
// or 5102 on a repeated finish or on a retraction — wins.
package filing

import (
	"fmt"
	"slices"
	"time"

	pb "takedown/pkg/proto/takedown/v1"
)

// State is where one filing stands.
type State string

// States, lowest precedence first.
const (
	Pending   State = "pending"   // submitted; nothing opened at NCMEC yet
	Opened    State = "opened"    // NCMEC gave the report an id
	Uploading State = "uploading" // files are reaching NCMEC
	Failed    State = "failed"    // the filing stopped; owed: a retraction (if opened), or staff's next step
	Closed    State = "closed"    // staff settled the failure outside the tool
	Retracted State = "retracted" // withdrawn at NCMEC, or nothing had been opened
	Finished  State = "finished"  // NCMEC holds the report finished
)

// States lists every state in order of precedence.
var States = []State{Pending, Opened, Uploading, Failed, Closed, Retracted, Finished}

func (s State) rank() int { return slices.Index(States, s) }

// Valid reports whether s is one of States.
func (s State) Valid() bool { return s.rank() >= 0 }

// Settled reports whether nothing more happens to the filing by itself and
// nothing is owed: finished, retracted or closed.
func (s State) Settled() bool { return s == Finished || s == Retracted || s == Closed }

// Active reports whether the reporter may still be working on the filing.
func (s State) Active() bool { return s == Pending || s == Opened || s == Uploading }

// How a finish was learnt (NcmecFinished.learned_from).
const (
	FromReceipt       = "receipt"      // NCMEC answered /finish
	FromFinish5102    = "finish_5102"  // a repeated /finish answered "already finished"
	FromRetract5102   = "retract_5102" // a retraction answered "already finished"
	defaultLearntFrom = FromReceipt
)

// Event is what one envelope says about a report's filing.
type Event struct {
	Filing        int   // the generation; events of older contracts count as 1
	State         State // "" for an event that moves no state
	NCMECReportID int64
	Environment   string
	At            time.Time
	// Error describes a failure in plain words (Failed), or a retraction
	// that failed (no State).
	Error string
	// LearnedFrom says how a finish was learnt (Finished only).
	LearnedFrom string
	FinishedAt  time.Time
	// Ambiguous numbers an /submit that may have opened a report we never
	// learnt the id of (1 for the first in a row).
	Ambiguous int
}

// Of returns what env says about the filing, and false for an envelope
// that says nothing about it.
func Of(env *pb.Envelope) (Event, bool) {
	ev := Event{At: env.GetOccurredAt().AsTime()}
	n := uint32(0)
	switch p := env.Payload.(type) {
	case *pb.Envelope_ReportSubmitted:
		r := p.ReportSubmitted.GetReport()
		n, ev.State, ev.Environment = r.GetFiling(), Pending, Environment(r.GetTest())
	case *pb.Envelope_NcmecOpened:
		o := p.NcmecOpened
		n, ev.State, ev.NCMECReportID, ev.Environment = o.Filing, Opened, o.NcmecReportId, o.Environment
	case *pb.Envelope_NcmecFileUploaded:
		u := p.NcmecFileUploaded
		n, ev.State, ev.NCMECReportID = u.Filing, Uploading, u.NcmecReportId
	case *pb.Envelope_NcmecFinished:
		f := p.NcmecFinished
		n, ev.State, ev.NCMECReportID, ev.LearnedFrom = f.Filing, Finished, f.NcmecReportId, f.LearnedFrom
		ev.FinishedAt = ev.At
		if f.FinishedAt != nil {
			ev.FinishedAt = f.FinishedAt.AsTime()
		}
		if ev.LearnedFrom == "" {
			ev.LearnedFrom = defaultLearntFrom
		}
	case *pb.Envelope_NcmecFailed:
		f := p.NcmecFailed
		n, ev.State, ev.NCMECReportID, ev.Error = f.Filing, Failed, f.NcmecReportId, FailureText(f)
	case *pb.Envelope_NcmecRetracted:
		r := p.NcmecRetracted
		if r.Lost {
			// Another NCMEC report than the filing's own (a lost /submit):
			// its id and outcome must not pass for the filing's.
			return Event{}, false
		}
		n, ev.State, ev.NCMECReportID, ev.Environment = r.Filing, Retracted, r.NcmecReportId, r.Environment
	case *pb.Envelope_NcmecRetractionFailed:
		r := p.NcmecRetractionFailed
		if r.Lost {
			return Event{}, false // as NcmecRetracted.Lost
		}
		n, ev.NCMECReportID, ev.Environment = r.Filing, r.NcmecReportId, r.Environment
		if r.AlreadyFinished {
			// NCMEC's 5102 proves the report finished, though its receipt
			// is lost (DESIGN.md §5).
			ev.State, ev.LearnedFrom, ev.FinishedAt = Finished, FromRetract5102, ev.At
		} else {
			ev.Error = fmt.Sprintf("Retracting NCMEC report %d failed: %s", r.NcmecReportId, r.Description)
		}
	case *pb.Envelope_NcmecSubmitAmbiguous:
		a := p.NcmecSubmitAmbiguous
		n, ev.Ambiguous = a.Filing, int(max(a.Attempt, 1))
	case *pb.Envelope_ReportClosed:
		c := p.ReportClosed
		n, ev.State, ev.Error = c.Filing, Closed, "Closed by staff: "+c.Reason
	default:
		return Event{}, false
	}
	ev.Filing = int(max(n, 1))
	return ev, true
}

// FailureText says in plain words where and why a filing failed.
func FailureText(f *pb.NcmecFailed) string {
	msg := fmt.Sprintf("Filing with NCMEC failed at %s: %s", f.Step, f.Description)
	if f.Code != 0 {
		msg += fmt.Sprintf(" (NCMEC code %d)", f.Code)
	}
	return msg
}

// Environment names NCMEC's environment a report goes to.
func Environment(test bool) string {
	if test {
		return "test"
	}
	return "production"
}

// Status is what is known of a report's current filing: the fold of every
// event about the report, in any order.
type Status struct {
	Filing        int
	State         State
	NCMECReportID int64
	Environment   string
	At            time.Time // when the event that set State happened
	Error         string    // what set State, in plain words: the failure, or staff's reason for closing
	LearnedFrom   string    // how a finish was learnt
	FinishedAt    time.Time
	// RetractionError is the latest failure to retract (at RetractionErrorAt).
	RetractionError   string
	RetractionErrorAt time.Time
	Ambiguous         int     // /submit attempts of this filing that may have opened an NCMEC report we never learnt
	Past              []int64 // NCMEC report ids of the report's other filings, ascending
}

// New returns the status of a report's first filing, before any event.
func New() Status { return Status{Filing: 1, State: Pending} }

// Apply folds ev into s. It reports whether ev is about s's filing now;
// false means an earlier filing's event, which belongs to the history only.
func (s *Status) Apply(ev Event) (current bool) {
	if s.Filing < 1 {
		*s = Status{Filing: 1, State: Pending, Past: s.Past}
	}
	switch {
	case ev.Filing < s.Filing:
		s.remember(ev.NCMECReportID)
		return false
	case ev.Filing > s.Filing:
		// Filed again: the new filing supersedes everything about the old.
		s.remember(s.NCMECReportID)
		*s = Status{Filing: ev.Filing, State: Pending, Environment: s.Environment, Past: s.Past}
	}
	if ev.NCMECReportID > s.NCMECReportID {
		s.NCMECReportID = ev.NCMECReportID
	}
	if ev.Environment > s.Environment {
		s.Environment = ev.Environment
	}
	s.Ambiguous = max(s.Ambiguous, ev.Ambiguous)
	if ev.State == "" {
		if ev.Error != "" && (ev.At.After(s.RetractionErrorAt) || (ev.At.Equal(s.RetractionErrorAt) && ev.Error > s.RetractionError)) {
			s.RetractionError, s.RetractionErrorAt = ev.Error, ev.At
		}
		return true
	}
	if later(ev, s) {
		s.State, s.At, s.Error = ev.State, ev.At, ev.Error
		if ev.State == Finished {
			s.LearnedFrom, s.FinishedAt = ev.LearnedFrom, ev.FinishedAt
		}
	}
	return true
}

// later reports whether ev takes precedence over what s holds: a higher
// state, or the same state from a later event (ties broken by the text, so
// that no order of arrival changes the result).
func later(ev Event, s *Status) bool {
	if r, cur := ev.State.rank(), s.State.rank(); r != cur {
		return r > cur
	}
	if !ev.At.Equal(s.At) {
		return ev.At.After(s.At)
	}
	return ev.Error+ev.LearnedFrom > s.Error+s.LearnedFrom
}

// Newer reports whether a state of filing aFiling supersedes bState of
// filing bFiling: a later filing always does; within one filing, the higher
// precedence. A view that shows one state per report (a Salesforce case, a
// page) keeps what it holds unless Newer says otherwise, so writes arriving
// out of order cannot move it back. Filing numbers below 1 count as 1, as in
// Of.
func Newer(aFiling int, aState State, bFiling int, bState State) bool {
	aFiling, bFiling = max(aFiling, 1), max(bFiling, 1)
	if aFiling != bFiling {
		return aFiling > bFiling
	}
	return aState.rank() > bState.rank()
}

// Problem is what staff should read about a filing that did not settle
// well: the failure or closing reason, and a retraction that failed while
// one is still owed. Empty for a finished or cleanly retracted filing.
func (s *Status) Problem() string {
	switch s.State {
	case Finished, Retracted:
		return ""
	case Failed:
		if s.RetractionError != "" {
			return s.Error + " " + s.RetractionError
		}
		return s.Error
	}
	if s.RetractionError != "" {
		return s.RetractionError
	}
	return s.Error
}

func (s *Status) remember(id int64) {
	if id == 0 || slices.Contains(s.Past, id) {
		return
	}
	s.Past = append(s.Past, id)
	slices.Sort(s.Past)
}

// Action is a staff action on a report's filing.
type Action string

// Staff actions. Each is audited by the service that takes it.
const (
	// FileAgain starts the next filing.
	FileAgain Action = "file_again"
	// Retract withdraws the filing's open NCMEC report.
	Retract Action = "retract"
	// RetractLost retracts an NCMEC report this system lost track of (an
	// ambiguous /submit), named by its NCMEC report id and environment.
	RetractLost Action = "retract_lost"
	// Close settles a failure that staff resolved outside the tool.
	Close Action = "close"
)

// Actions lists every action, in the order a page offers them.
var Actions = []Action{FileAgain, Retract, RetractLost, Close}

// Refusal says why an action is not allowed now, in words for staff.
type Refusal struct {
	Action Action
	State  State
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// Allows returns nil when staff may take a on the filing now, or a
// *Refusal saying why not and what to do instead.
func (s Status) Allows(a Action) error {
	no := func(format string, args ...any) error {
		return &Refusal{Action: a, State: s.State, Reason: fmt.Sprintf(format, args...)}
	}
	opened := s.NCMECReportID != 0
	switch a {
	case FileAgain:
		switch {
		case s.State == Retracted, s.State == Closed:
			return nil
		case s.State == Failed && !opened:
			// Nothing is open at NCMEC: a corrected filing cannot duplicate it.
			return nil
		case s.State == Failed:
			return no("NCMEC report %d of this filing is still open: it is being retracted; file again once it is retracted (or retract it now)", s.NCMECReportID)
		case s.State == Finished:
			return no("the report is finished at NCMEC (report %d); filing it again would report the incident twice", s.NCMECReportID)
		default:
			return no("the report is being filed with NCMEC (%s); wait for the filing to end", s.State)
		}
	case Retract:
		switch {
		case s.State == Finished:
			return no("the report is finished at NCMEC (report %d); only NCMEC can withdraw a finished report", s.NCMECReportID)
		case s.State == Retracted:
			return no("the report is already retracted")
		case (s.State == Failed || s.State == Closed) && !opened:
			return no("nothing was opened at NCMEC for this filing; there is nothing to retract")
		}
		return nil
	case RetractLost:
		if s.Ambiguous == 0 {
			return no("no /submit of this report was left without an answer; retract the report itself")
		}
		return nil
	case Close:
		if s.State != Failed {
			return no("only a failed filing can be closed; this one is %s", s.State)
		}
		return nil
	}
	return no("unknown action %q", a)
}

// NextSteps lists the actions staff may take now: the way out of every
// filing that did not finish.
func (s Status) NextSteps() []Action {
	var out []Action
	for _, a := range Actions {
		if s.Allows(a) == nil {
			out = append(out, a)
		}
	}
	return out
}
