package mapping

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"takedown/pkg/auth"
	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/case-writer/internal/cases"
)

// scope says which records a source can fill: the case, or each file record
// (which may also use every case source).
type scope int

const (
	caseScope scope = iota
	fileScope
)

// source is one of our fields a mapping may name.
type source struct {
	scope scope
	doc   string
	// enum lists every value the source can take, for sources whose values
	// must be translated to an org's picklist (a values map must cover them).
	enum []string
	get  func(c *cases.Case, r *pb.Report, f *pb.File) any
}

// sources are our fields, by the names mappings use. Values are strings,
// booleans, numbers or times (sent as ISO 8601 UTC); an empty string, a
// zero time or an unknown id is left out of the record rather than sent as
// null, so a later write never clears what an earlier one set. File content
// and object keys are deliberately absent: the media never leaves our
// systems (DESIGN.md §5).
var sources = map[string]source{
	"report.id":            {caseScope, "our report id (UUIDv7)", nil, func(c *cases.Case, r *pb.Report, _ *pb.File) any { return c.ReportID }},
	"report.title":         {caseScope, "the old tool's log title: \"Report to NCMEC for N file(s) uploaded by <uploader> <incident time> UTC - Report# <NCMEC id>\", at most 255 characters", nil, title},
	"report.description":   {caseScope, "a plain-text summary of the report and its NCMEC state", nil, description},
	"report.incident_type": {caseScope, "NCMEC incident type", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetIncidentType() }},
	"report.incident_time": {caseScope, "when the content was uploaded (time)", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any {
		return ts(r.GetIncidentTime().AsTime(), r.GetIncidentTime() != nil)
	}},
	"report.platform":          {caseScope, "project / site where the content was", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetPlatform() }},
	"report.urls":              {caseScope, "URLs of the content, one per line", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return strings.Join(r.GetUrls(), "\n") }},
	"report.uploader.username": {caseScope, "uploader's user name", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetUploader().GetUsername() }},
	"report.uploader.email":    {caseScope, "uploader's e-mail", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetUploader().GetEmail() }},
	"report.uploader.ip":       {caseScope, "uploader's IP address", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetUploader().GetIp() }},
	"report.legal_approved":    {caseScope, "whether legal approved the report (boolean)", []string{"true", "false"}, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetLegalApproved() }},
	"report.approver":          {caseScope, "who approved it in legal", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetApprover() }},
	"report.legal_decided_at": {caseScope, "when a second person in legal approved it in takedown (LEGAL_APPROVAL=required; empty where the submitter recorded it)", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any {
		return ts(r.GetLegalDecidedAt().AsTime(), r.GetLegalDecidedAt() != nil)
	}},
	"report.not_approved_reason": {caseScope, "why it was not approved", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetNotApprovedReason() }},
	"report.actions_taken":       {caseScope, "the actions taken, one per line (the old tool's checked statements)", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return strings.Join(r.GetActionsTaken(), "\n") }},
	"report.notes":               {caseScope, "staff's comments for NCMEC (sent with the NCMEC report)", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetNotes() }},
	"report.private_note":        {caseScope, "staff's private note (this system and the case only, never sent to NCMEC)", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetPrivateNote() }},
	"report.escalate":            {caseScope, "escalation reason, empty when not escalated", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetEscalate() }},
	"report.escalated":           {caseScope, "whether the report is escalated (boolean)", []string{"true", "false"}, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetEscalate() != "" }},
	"report.test":                {caseScope, "filed with NCMEC's test environment (boolean)", []string{"true", "false"}, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetTest() }},
	"report.submitted_by":        {caseScope, "the id (OIDC subject) of the staff member who submitted the report", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetSubmittedBy() }},
	"report.submitter": {caseScope, "the staff member who submitted the report as people know them, \"Name <email>\" from their sign-in (the subject for a report that names nobody), at most 255 characters", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any {
		return shorten(submitter(r), maxTitle)
	}},
	"report.submitted_at": {caseScope, "when it was submitted (time)", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any {
		return ts(r.GetSubmittedAt().AsTime(), r.GetSubmittedAt() != nil)
	}},
	"report.filing":         {caseScope, "filing number, 1 for the first (number)", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return int64(r.GetFiling()) }},
	"report.file_count":     {caseScope, "number of files (number)", nil, func(c *cases.Case, _ *pb.Report, _ *pb.File) any { return int64(len(c.Submitted.GetFiles())) }},
	"ncmec.report_id":       {caseScope, "NCMEC report id (text), once NCMEC assigned it", nil, func(c *cases.Case, _ *pb.Report, _ *pb.File) any { return ncmecID(c) }},
	"ncmec.state":           {caseScope, "NCMEC state of the current filing: " + strings.Join(cases.States, ", "), cases.States, func(c *cases.Case, _ *pb.Report, _ *pb.File) any { return string(c.NCMEC.State) }},
	"ncmec.state_at":        {caseScope, "when the NCMEC state was reached (time)", nil, func(c *cases.Case, _ *pb.Report, _ *pb.File) any { return ts(c.NCMEC.At, true) }},
	"ncmec.finished_at":     {caseScope, "receipt time of the finished NCMEC report (time)", nil, func(c *cases.Case, _ *pb.Report, _ *pb.File) any { return ts(c.NCMEC.FinishedAt, true) }},
	"ncmec.error":           {caseScope, "why the NCMEC filing failed or was closed, and a retraction that failed", nil, func(c *cases.Case, _ *pb.Report, _ *pb.File) any { return c.NCMEC.Problem() }},
	"ncmec.past_report_ids": {caseScope, "NCMEC report ids of the report's earlier filings, comma-separated", nil, func(c *cases.Case, _ *pb.Report, _ *pb.File) any { return pastIDs(c) }},

	"file.id":           {fileScope, "our file id (UUIDv7)", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetId() }},
	"file.index":        {fileScope, "position in the submission, from 0 (number)", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return int64(f.GetIndex()) }},
	"file.name":         {fileScope, "original file name", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetName() }},
	"file.size":         {fileScope, "size in bytes (number)", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetSize() }},
	"file.content_type": {fileScope, "content type", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetContentType() }},
	"file.md5":          {fileScope, "MD5, lower-case hex", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetMd5() }},
	"file.sha1":         {fileScope, "SHA-1, lower-case hex", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetSha1() }},
	"file.sha256":       {fileScope, "SHA-256, lower-case hex", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetSha256() }},
	"file.pdq":          {fileScope, "PDQ perceptual hash (images only)", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetPdq() }},
	"file.location_url": {fileScope, "where the file was on the platform", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetLocationUrl() }},
	"file.original_upload_time": {fileScope, "when it was uploaded to the platform (time)", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any {
		return ts(f.GetOriginalUploadTime().AsTime(), f.GetOriginalUploadTime() != nil)
	}},
	"file.uploader":                {fileScope, "uploader's user name", nil, func(_ *cases.Case, r *pb.Report, _ *pb.File) any { return r.GetUploader().GetUsername() }},
	"file.uploader_ip":             {fileScope, "IP address it was uploaded from", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetUploaderIp() }},
	"file.viewed_by_staff":         {fileScope, "whether staff viewed it (boolean)", []string{"true", "false"}, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetViewedByStaff() }},
	"file.publicly_available":      {fileScope, "whether it was publicly available (boolean)", []string{"true", "false"}, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetPubliclyAvailable() }},
	"file.industry_classification": {fileScope, "NCMEC industry classification, e.g. A1", nil, func(_ *cases.Case, _ *pb.Report, f *pb.File) any { return f.GetIndustryClassification() }},
	"file.ncmec_file_id":           {fileScope, "NCMEC's id of the file, once uploaded", nil, func(c *cases.Case, _ *pb.Report, f *pb.File) any { return c.NCMECFiles[f.GetId()] }},
	"file.ncmec_state":             {fileScope, "the file's NCMEC state: " + strings.Join(cases.FileStates, ", "), cases.FileStates, func(c *cases.Case, _ *pb.Report, f *pb.File) any { return c.FileState(f.GetId()) }},
}

func ts(t time.Time, set bool) any {
	if !set || t.IsZero() {
		return nil
	}
	return t
}

func ncmecID(c *cases.Case) any {
	if c.NCMEC.NCMECReportID == 0 {
		return nil
	}
	return fmt.Sprint(c.NCMEC.NCMECReportID)
}

func pastIDs(c *cases.Case) string {
	ids := make([]string, len(c.NCMEC.Past))
	for i, id := range c.NCMEC.Past {
		ids[i] = fmt.Sprint(id)
	}
	return strings.Join(ids, ", ")
}

// maxTitle is the length of a Salesforce text field, the most any org's
// field for the title (Case.Subject by default) can hold.
const maxTitle = 255

// title follows the old tool's log title (API.md §6.5), for several files.
// It never exceeds maxTitle: the uploader's name, up to 255 characters
// (reportrules.MaxUsername), is shortened here rather than the case failing
// with STRING_TOO_LONG; the name is kept whole in its own field
// (report.uploader.username).
func title(c *cases.Case, r *pb.Report, _ *pb.File) any {
	var head, tail strings.Builder
	if r.GetTest() {
		head.WriteString("[TEST] ")
	}
	fmt.Fprintf(&head, "Report to NCMEC for %d file(s)", len(c.Submitted.GetFiles()))
	if r.GetIncidentTime() != nil {
		tail.WriteString(" " + r.GetIncidentTime().AsTime().UTC().Format("2006-01-02 15:04") + " UTC")
	}
	if id := ncmecID(c); id != nil {
		fmt.Fprintf(&tail, " - Report# %s", id)
	} else {
		tail.WriteString(" - Report# pending")
	}
	if u := r.GetUploader().GetUsername(); u != "" {
		const by = " uploaded by "
		room := maxTitle - utf8.RuneCountInString(head.String()+by+tail.String())
		head.WriteString(by + shorten(u, room))
	}
	return head.String() + tail.String()
}

// submitter names who submitted r: "Name <email>", or the subject.
func submitter(r *pb.Report) string {
	return auth.Label(r.GetSubmittedBy(), r.GetSubmittedByName(), r.GetSubmittedByEmail())
}

// shorten cuts s to at most n characters, marking the cut with "…".
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n < 1 {
		return ""
	}
	return string([]rune(s)[:n-1]) + "…"
}

// maxError bounds the NCMEC error quoted in the description.
const maxError = 1000

func description(c *cases.Case, r *pb.Report, _ *pb.File) any {
	var b strings.Builder
	line := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", label, v)
		}
	}
	fmt.Fprintf(&b, "Takedown report %s", c.ReportID)
	if r.GetFiling() > 1 {
		fmt.Fprintf(&b, " (filing %d)", r.GetFiling())
	}
	b.WriteString("\n")
	if r.GetSubmittedAt() != nil {
		line("Submitted", r.GetSubmittedAt().AsTime().UTC().Format(time.RFC3339)+" by "+submitter(r))
	}
	line("Platform", r.GetPlatform())
	line("URLs", strings.Join(r.GetUrls(), " "))
	line("Actions taken", strings.Join(r.GetActionsTaken(), "; "))
	switch {
	case r.GetLegalApproved() && r.GetLegalDecidedAt() != nil:
		// A second person in legal approved it in takedown.
		line("Legal approval", "approved by "+r.GetApprover()+" at "+r.GetLegalDecidedAt().AsTime().UTC().Format(time.RFC3339))
	case r.GetLegalApproved():
		line("Legal approval", "approved by "+r.GetApprover())
	default:
		line("Legal approval", "not approved: "+r.GetNotApprovedReason())
	}
	line("Escalated", r.GetEscalate())
	// The comments for NCMEC, under the form's name for them; the private
	// note has a field of its own (report.private_note).
	line("Comments for NCMEC", r.GetNotes())
	state := string(c.NCMEC.State)
	if id := ncmecID(c); id != nil {
		state += fmt.Sprintf(", report %s", id)
	}
	if p := c.NCMEC.Problem(); p != "" {
		// NCMEC's message is not under intake's rules; bounded so the
		// description keeps within Salesforce's 32000 characters (the
		// whole message is in the report's history).
		state += " (" + shorten(p, maxError) + ")"
	}
	line("NCMEC", state)
	if c.NCMEC.State == filing.Finished && c.NCMEC.LearnedFrom != filing.FromReceipt && c.NCMEC.LearnedFrom != "" {
		// No receipt: staff should know the finish is NCMEC's word on a
		// repeated call, not the receipt itself.
		b.WriteString("Finished at NCMEC as NCMEC's answer 5102 (already finished) " + learntBy(c.NCMEC.LearnedFrom) + " shows; its receipt was not received.\n")
	}
	if c.NCMEC.Ambiguous > 0 {
		b.WriteString("An earlier attempt may have opened an NCMEC report that NCMEC will delete unfinished.\n")
	}
	for _, id := range c.ExtraCopiesOf {
		b.WriteString("NCMEC holds an extra copy of file " + fileName(c, id) + " without details.\n")
	}
	if len(c.NCMEC.Past) > 0 {
		// Filed again: the earlier NCMEC reports stay on record (the case
		// now carries the current one's id).
		past := make([]string, len(c.NCMEC.Past))
		for i, id := range c.NCMEC.Past {
			past[i] = fmt.Sprintf("NCMEC report %d", id)
			if s, ok := c.Earlier[id]; ok {
				past[i] += " (" + string(s) + ")"
			}
		}
		line("Earlier filings", strings.Join(past, ", "))
	}
	return strings.TrimRight(b.String(), "\n")
}

func learntBy(from string) string {
	if from == filing.FromRetract5102 {
		return "to a retraction"
	}
	return "to a repeated finish"
}

// fileName names a file for staff: its original name, else our id.
func fileName(c *cases.Case, id string) string {
	for _, f := range c.Submitted.GetFiles() {
		if f.GetId() == id && f.GetName() != "" {
			return f.GetName()
		}
	}
	return id
}
