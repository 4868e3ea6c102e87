package report

import "time"

// Status is where a report stands overall.
type Status string

const (
	StatusSubmitted   Status = "submitted"    // stored; waiting for the NCMEC filing
	StatusNcmecOpened Status = "ncmec_opened" // NCMEC report opened
	StatusUploading   Status = "uploading"    // files going to NCMEC
	StatusFinished    Status = "finished"     // NCMEC report finished
	StatusFailed      Status = "failed"       // filing stopped; retraction pending
	StatusRetracted   Status = "retracted"    // NCMEC report retracted
)

// rank orders statuses so that events handled out of order cannot move a
// report backwards.
var rank = map[Status]int{
	StatusSubmitted: 0, StatusNcmecOpened: 1, StatusUploading: 2,
	StatusFailed: 3, StatusFinished: 4, StatusRetracted: 5,
}

// Advance returns the later of s and next.
func (s Status) Advance(next Status) Status {
	if rank[next] > rank[s] {
		return next
	}
	return s
}

// Report is a stored report with its progress.
type Report struct {
	ID          string    `json:"id"`
	Status      Status    `json:"status"`
	SubmittedAt time.Time `json:"submitted_at"`
	SubmittedBy string    `json:"submitted_by"`
	Filing      int       `json:"filing"`
	Details
	IncidentTime time.Time `json:"incident_time"`
	Files        []File    `json:"files"`
	NCMEC        NCMEC     `json:"ncmec"`
	Case         Case      `json:"case"`
	Events       []Event   `json:"events,omitempty"`
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
	Notes             string   `json:"notes,omitempty"`
	Escalate          string   `json:"escalate,omitempty"`
	Test              bool     `json:"test"`
}

// Details returns the descriptive fields of a validated input.
func (in *Input) Details() Details {
	return Details{
		IncidentType: in.IncidentType, Platform: in.Platform, URLs: in.URLs, Uploader: in.Uploader,
		LegalApproved: in.LegalApproved, Approver: in.Approver, NotApprovedReason: in.NotApprovedReason,
		ActionsTaken: in.ActionsTaken, Notes: in.Notes, Escalate: in.Escalate, Test: in.Test,
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
	FileInput
	NCMECFileID string `json:"ncmec_file_id,omitempty"`
	NCMECMD5    string `json:"ncmec_md5,omitempty"`
	// ReportedBefore lists earlier reports of the same file or a similar image.
	ReportedBefore []Match `json:"reported_before,omitempty"`
}

// NCMEC is the state of the report's CyberTipline filing.
type NCMEC struct {
	ReportID    int64  `json:"report_id,omitempty"`
	Environment string `json:"environment,omitempty"`
	State       string `json:"state,omitempty"` // opened, finished, failed, retracted
	LastError   string `json:"last_error,omitempty"`
}

// Case is the Salesforce case of the report.
type Case struct {
	ID    string `json:"id,omitempty"`
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
}

// Event is one entry of the report's history.
type Event struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	Actor      string    `json:"actor"`
	Summary    string    `json:"summary"`
}
