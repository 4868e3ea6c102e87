package report

import (
	"time"

	"takedown/pkg/auth"
	"takedown/pkg/filing"
)

// Status is where a report stands overall: the API's word for the state of
// its current filing (StatusOf). The values are part of the API and stay.
type Status string

const (
	StatusSubmitted   Status = "submitted"    // stored; waiting for the NCMEC filing
	StatusNcmecOpened Status = "ncmec_opened" // NCMEC report opened
	StatusUploading   Status = "uploading"    // files going to NCMEC
	StatusFinished    Status = "finished"     // NCMEC report finished
	StatusFailed      Status = "failed"       // filing stopped; retraction or staff's next step owed
	StatusClosed      Status = "closed"       // staff settled the failure outside the tool
	StatusRetracted   Status = "retracted"    // NCMEC report retracted

	// Before the filing: the legal gate (LEGAL_APPROVAL=required).
	StatusAwaitingLegal Status = "awaiting_legal" // stored; waiting for a second person in legal
	StatusRejected      Status = "rejected"       // legal rejected it; never filed
)

// StatusOf is the one translation from the filing's state to the API's
// status; the order and the rules are pkg/filing's.
func StatusOf(s filing.State) Status {
	switch s {
	case filing.Pending:
		return StatusSubmitted
	case filing.Opened:
		return StatusNcmecOpened
	case filing.Uploading:
		return StatusUploading
	case filing.Failed:
		return StatusFailed
	case filing.Closed:
		return StatusClosed
	case filing.Retracted:
		return StatusRetracted
	case filing.Finished:
		return StatusFinished
	}
	return Status(s)
}

// Statuses lists every status: the legal gate's, then those of
// filing.States in their order.
func Statuses() []Status {
	out := []Status{StatusAwaitingLegal, StatusRejected}
	for _, s := range filing.States {
		out = append(out, StatusOf(s))
	}
	return out
}

// Report is a stored report with its progress.
type Report struct {
	ID          string    `json:"id"`
	Status      Status    `json:"status"`
	SubmittedAt time.Time `json:"submitted_at"`
	SubmittedBy string    `json:"submitted_by"`
	// SubmittedByName and SubmittedByEmail name the submitter to people
	// (their ID token's claims at submission); empty for reports stored
	// before intake kept them. SubmittedBy stays the id.
	SubmittedByName  string `json:"submitted_by_name,omitempty"`
	SubmittedByEmail string `json:"submitted_by_email,omitempty"`
	Filing           int    `json:"filing"`
	Details
	IncidentTime time.Time `json:"incident_time"`
	Files        []File    `json:"files"`
	NCMEC        NCMEC     `json:"ncmec"`
	Case         Case      `json:"case"`
	Events       []Event   `json:"events,omitempty"`
	// NextSteps are the staff actions the filing allows now.
	NextSteps []filing.Action `json:"next_steps"`
	// Legal is legal's decision, where the legal gate holds the report.
	Legal Legal `json:"legal"`
	// FilingStatus is the fold of the report's events (pkg/filing); Status,
	// Filing and NCMEC are derived from it by SetFiling.
	FilingStatus filing.Status `json:"-"`
}

// LegalState is where a report stands with legal (migration 0015).
type LegalState string

const (
	// LegalRecorded: the submitter recorded legal's decision in the
	// report's fields (LEGAL_APPROVAL=recorded).
	LegalRecorded LegalState = "recorded"
	// LegalAwaiting: stored, waiting for a second person in legal; nothing
	// goes to NCMEC until they approve.
	LegalAwaiting LegalState = "awaiting"
	LegalApproved LegalState = "approved" // approved: the filing started
	LegalRejected LegalState = "rejected" // rejected: never filed
)

// Legal is legal's decision on a report held for it.
type Legal struct {
	State LegalState `json:"state"`
	// DecidedBy is the decider's staff id (subject), DecidedByName and
	// DecidedByEmail their name and e-mail as the sign-in gave them.
	DecidedBy      string     `json:"decided_by,omitempty"`
	DecidedByName  string     `json:"decided_by_name,omitempty"`
	DecidedByEmail string     `json:"decided_by_email,omitempty"`
	DecidedAt      *time.Time `json:"decided_at,omitempty"`
	Reason         string     `json:"reason,omitempty"`
}

// SetLegal makes l the report's legal decision; the report's status and
// next steps follow it (SetFiling).
func (r *Report) SetLegal(l Legal) {
	r.Legal = l
	r.SetFiling(r.FilingStatus)
}

// holdForLegal makes a report that legal holds or rejected say so: its
// filing has not started, so no filing step is open to staff.
func (r *Report) holdForLegal() {
	switch r.Legal.State {
	case LegalAwaiting:
		r.Status = StatusAwaitingLegal
	case LegalRejected:
		r.Status = StatusRejected
	default:
		return
	}
	r.NextSteps = []filing.Action{}
}

// AmbiguousNote explains ambiguous /submit attempts to staff.
const AmbiguousNote = "an earlier attempt may have opened an NCMEC report that NCMEC will delete unfinished"

// SetFiling makes s the report's filing and derives everything the API
// shows of it: the one place status, NCMEC state and next steps come from.
func (r *Report) SetFiling(s filing.Status) {
	r.FilingStatus = s
	r.Filing = s.Filing
	r.Status = StatusOf(s.State)
	r.NextSteps = s.NextSteps()
	if r.NextSteps == nil {
		r.NextSteps = []filing.Action{}
	}
	n := NCMEC{
		ReportID: s.NCMECReportID, Environment: s.Environment, State: s.State, Filing: s.Filing,
		PastReportIDs: s.Past, AmbiguousSubmits: s.Ambiguous, Problem: s.Problem(),
	}
	n.LastError = n.Problem
	if s.Ambiguous > 0 {
		n.AmbiguousNote = AmbiguousNote
	}
	if s.State == filing.Finished {
		n.LearnedFrom = s.LearnedFrom
		if !s.FinishedAt.IsZero() {
			t := s.FinishedAt
			n.FinishedAt = &t
		}
	}
	r.NCMEC = n
	r.holdForLegal()
}

// Details are the submission's descriptive fields, stored as submitted.
type Details struct {
	IncidentType      string   `json:"incident_type"`
	Platform          string   `json:"platform,omitempty"`
	URLs              []string `json:"urls,omitempty"`
	Uploader          Uploader `json:"uploader"`
	LegalApproved     bool     `json:"legal_approved"`
	Approver          string   `json:"approver,omitempty"`
	NotApprovedReason string   `json:"not_approved_reason,omitempty"`
	ActionsTaken      []string `json:"actions_taken,omitempty"`
	Notes             string   `json:"notes,omitempty"`        // comments for NCMEC
	PrivateNote       string   `json:"private_note,omitempty"` // never sent to NCMEC
	Escalate          string   `json:"escalate,omitempty"`
	Test              bool     `json:"test"`
}

// NCMEC's environments, by the names the filing events and the store use.
const (
	EnvProduction = "production"
	EnvTest       = "test"
)

// Environment is the NCMEC environment the report is filed with.
func (d Details) Environment() string {
	if d.Test {
		return EnvTest
	}
	return EnvProduction
}

// Details returns the descriptive fields of a validated input.
func (in *Input) Details() Details {
	return Details{
		IncidentType: in.IncidentType, Platform: in.Platform, URLs: in.URLs, Uploader: in.Uploader,
		LegalApproved: in.LegalApproved, Approver: in.Approver, NotApprovedReason: in.NotApprovedReason,
		ActionsTaken: in.ActionsTaken, Notes: in.Notes, PrivateNote: in.PrivateNote, Escalate: in.Escalate, Test: in.Test,
	}
}

// File is a stored evidence file: names, sizes, types and hashes, never content.
type File struct {
	ID            string `json:"id"`
	Index         int    `json:"index"`
	Name          string `json:"name"`
	ObjectKey     string `json:"-"`
	ObjectVersion string `json:"-"`
	Size          int64  `json:"size"`
	ContentType   string `json:"content_type"`
	MD5           string `json:"md5"`
	SHA1          string `json:"sha1"`
	SHA256        string `json:"sha256"`
	PDQ           string `json:"pdq,omitempty"`
	PDQQuality    int    `json:"pdq_quality,omitempty"`
	// PDQSkipped says, in the answer to the submission, why an image got
	// no PDQ hash (it is not kept: a later read shows only that there is
	// none).
	PDQSkipped string `json:"pdq_skipped,omitempty"`
	FileInput
	NCMECFileID string `json:"ncmec_file_id,omitempty"`
	NCMECMD5    string `json:"ncmec_md5,omitempty"`
	// ReportedBefore lists earlier reports of the same file or a similar image.
	ReportedBefore []Match `json:"reported_before,omitempty"`
}

// NCMEC is the state of the report's current CyberTipline filing.
type NCMEC struct {
	ReportID      int64        `json:"report_id,omitempty"`
	Environment   string       `json:"environment,omitempty"`
	State         filing.State `json:"state"`
	Filing        int          `json:"filing"`
	PastReportIDs []int64      `json:"past_report_ids,omitempty"` // NCMEC reports of earlier filings
	// AmbiguousSubmits counts /submit attempts of this filing whose answer
	// was lost; AmbiguousNote says what that means.
	AmbiguousSubmits int        `json:"ambiguous_submits,omitempty"`
	AmbiguousNote    string     `json:"ambiguous_note,omitempty"`
	LearnedFrom      string     `json:"learned_from,omitempty"` // how a finish was learnt
	FinishedAt       *time.Time `json:"finished_at,omitempty"`
	Problem          string     `json:"problem,omitempty"` // filing.Status.Problem
	// LastError is Problem under its earlier name, for existing clients.
	LastError string `json:"last_error,omitempty"`
}

// Case is the Salesforce case of the report.
type Case struct {
	ID     string `json:"id,omitempty"`
	State  string `json:"state,omitempty"`  // a filing.State
	Filing int    `json:"filing,omitempty"` // the filing State belongs to
	Error  string `json:"error,omitempty"`
}

// Event is one entry of the report's history.
type Event struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	Actor      string    `json:"actor"`
	Summary    string    `json:"summary"`
}

// Submitter names who submitted the report to people: "Name <email>", or
// the subject for a report stored before names were kept.
func (r Report) Submitter() string {
	return auth.Label(r.SubmittedBy, r.SubmittedByName, r.SubmittedByEmail)
}

// Decider names who decided to people: "Name <email>", or the subject.
func (l Legal) Decider() string { return auth.Label(l.DecidedBy, l.DecidedByName, l.DecidedByEmail) }
