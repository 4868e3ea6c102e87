package report

import "time"

// Match is a file of an earlier report that is the same as, or looks like,
// a file of this one: the old tool kept hashes "so that it was easy to see
// which files were reported more than once".
type Match struct {
	ReportID      string    `json:"report_id"`
	FileID        string    `json:"file_id"`
	Name          string    `json:"name"`
	By            string    `json:"by"`                 // "sha256": the same bytes; "md5": the same MD5; "pdq": a similar image
	Distance      int       `json:"distance,omitempty"` // PDQ bits that differ
	SubmittedAt   time.Time `json:"submitted_at"`
	NCMECReportID int64     `json:"ncmec_report_id,omitempty"`
}
