// Package report holds intake's domain: the report a staff member submits,
// its files, and the rules a submission must meet before anything is stored.
package report

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"takedown/pkg/reportrules"
)

// IncidentTypes are NCMEC's incidentType values (cyber_tipline.xsd).
var IncidentTypes = []string{
	"Child Pornography (possession, manufacture, and distribution)",
	"Child Sex Trafficking",
	"Child Sex Tourism",
	"Child Sexual Molestation",
	"Misleading Domain Name",
	"Misleading Words or Digital Images on the Internet",
	"Online Enticement of Children for Sexual Acts",
	"Unsolicited Obscene Material Sent to a Child",
}

// DefaultIncidentType is used when a submission names none.
var DefaultIncidentType = IncidentTypes[0]

// Classifications are the industry classification scale NCMEC accepts.
var Classifications = []string{"A1", "A2", "B1", "B2"}

// Input is the report JSON of a submission (DESIGN.md §8).
type Input struct {
	IncidentType      string      `json:"incident_type"`
	IncidentTime      string      `json:"incident_time"`
	Platform          string      `json:"platform"`
	URLs              []string    `json:"urls"`
	Uploader          Uploader    `json:"uploader"`
	LegalApproved     bool        `json:"legal_approved"`
	Approver          string      `json:"approver"`
	NotApprovedReason string      `json:"not_approved_reason"`
	ActionsTaken      []string    `json:"actions_taken"`
	Notes             string      `json:"notes"`        // comments for NCMEC, sent with the report
	PrivateNote       string      `json:"private_note"` // for this system and the case only, never sent to NCMEC
	Escalate          string      `json:"escalate"`
	Test              bool        `json:"test"`
	Files             []FileInput `json:"files"`
}

// Uploader is the platform user who uploaded the material.
type Uploader struct {
	Username string `json:"username,omitempty"`
	Email    string `json:"email,omitempty"`
	IP       string `json:"ip,omitempty"`
}

// FileInput describes one file part, in the order of the parts.
type FileInput struct {
	Name              string   `json:"name,omitempty"`
	LocationURL       string   `json:"location_url,omitempty"`
	UploadTime        string   `json:"upload_time,omitempty"`
	UploaderIP        string   `json:"uploader_ip,omitempty"`
	ViewedByStaff     *bool    `json:"viewed_by_staff,omitempty"`
	PubliclyAvailable *bool    `json:"publicly_available,omitempty"`
	Classification    string   `json:"industry_classification,omitempty"`
	Annotations       []string `json:"annotations,omitempty"`
}

// FieldError is a problem with one field of a submission.
type FieldError struct {
	Field   string
	Message string
	Kind    error // a sentinel such as ErrBadFileName, or nil
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func (e *FieldError) Unwrap() error { return e.Kind }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// rule turns a reportrules error into the problem of field.
func rule(field string, err error) error {
	if err == nil {
		return nil
	}
	return &FieldError{Field: field, Message: err.Error()}
}

// Validate normalises in and checks every rule. It returns nil or
// FieldErrors naming every field with a problem, in the order of the form,
// so a page can list them all at once; the API answers with the first.
// now is the time "in the past" is measured against.
func (in *Input) Validate(now time.Time) error {
	var errs FieldErrors
	add := func(err error) {
		var fe *FieldError
		if errors.As(err, &fe) {
			errs = append(errs, fe)
		}
	}
	if in.IncidentType == "" {
		in.IncidentType = DefaultIncidentType
	}
	if !slices.Contains(IncidentTypes, in.IncidentType) {
		add(fieldErr("incident_type", "unknown incident type %q; use one of: %s", in.IncidentType, strings.Join(IncidentTypes, "; ")))
	}
	if in.IncidentTime == "" {
		add(fieldErr("incident_time", "required: when the incident happened, in RFC 3339 (e.g. 2026-01-02T15:04:05Z)"))
	} else if _, err := pastTime("incident_time", in.IncidentTime, now); err != nil {
		add(err)
	}
	// The text rules (reportrules) keep out what PostgreSQL cannot store
	// (NUL), what NCMEC refuses and what would not fit the Salesforce case.
	add(rule("platform", reportrules.Text(in.Platform, reportrules.MaxPlatform)))
	if i, err := reportrules.URLs(in.URLs); err != nil {
		field := "urls"
		if i >= 0 {
			field = fmt.Sprintf("urls[%d]", i)
		}
		add(rule(field, err))
	}
	add(rule("uploader.username", reportrules.Text(in.Uploader.Username, reportrules.MaxUsername)))
	if in.Uploader.Email != "" {
		// Kept and sent as the bare address, whatever staff pasted.
		email, err := reportrules.Email(in.Uploader.Email)
		add(rule("uploader.email", err))
		if err == nil {
			in.Uploader.Email = email
		}
	}
	if in.Uploader.IP != "" && net.ParseIP(in.Uploader.IP) == nil {
		add(fieldErr("uploader.ip", "%q is not an IP address", in.Uploader.IP))
	}
	if in.LegalApproved && strings.TrimSpace(in.Approver) == "" {
		add(fieldErr("approver", "required when legal_approved is true: who approved the report"))
	} else {
		add(rule("approver", reportrules.Text(in.Approver, reportrules.MaxApprover)))
	}
	add(rule("not_approved_reason", reportrules.MultilineText(in.NotApprovedReason, reportrules.MaxNotApprovedReason)))
	if len(in.ActionsTaken) > reportrules.MaxActions {
		add(fieldErr("actions_taken", "at most %d actions", reportrules.MaxActions))
	}
	for i, a := range in.ActionsTaken {
		add(rule(fmt.Sprintf("actions_taken[%d]", i), reportrules.Text(a, reportrules.MaxAction)))
	}
	add(rule("notes", reportrules.MultilineText(in.Notes, reportrules.MaxNotes)))
	add(rule("private_note", reportrules.PrivateNote(in.PrivateNote)))
	add(rule("escalate", reportrules.MultilineText(in.Escalate, reportrules.MaxEscalate)))
	for i, f := range in.Files {
		for _, err := range f.validate(fmt.Sprintf("files[%d]", i), now) {
			add(err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// FieldErrors are all the problems of one submission. errors.As with a
// *FieldError finds the first.
type FieldErrors []*FieldError

func (es FieldErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.Is and errors.As see each problem.
func (es FieldErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (f *FileInput) validate(field string, now time.Time) []error {
	var errs []error
	if f.Name != "" {
		errs = append(errs, CheckFileName(field+".name", f.Name))
	}
	if f.LocationURL != "" {
		errs = append(errs, rule(field+".location_url", reportrules.URL(f.LocationURL)))
	}
	if f.UploadTime != "" {
		_, err := pastTime(field+".upload_time", f.UploadTime, now)
		errs = append(errs, err)
	}
	if f.UploaderIP != "" && net.ParseIP(f.UploaderIP) == nil {
		errs = append(errs, fieldErr(field+".uploader_ip", "%q is not an IP address", f.UploaderIP))
	}
	if f.Classification != "" && !slices.Contains(Classifications, f.Classification) {
		errs = append(errs, fieldErr(field+".industry_classification", "%q is not one of %s", f.Classification, strings.Join(Classifications, ", ")))
	}
	if len(f.Annotations) > reportrules.MaxAnnotations {
		errs = append(errs, fieldErr(field+".annotations", "at most %d annotations", reportrules.MaxAnnotations))
	}
	for i, a := range f.Annotations {
		errs = append(errs, rule(fmt.Sprintf("%s.annotations[%d]", field, i), reportrules.Text(a, reportrules.MaxAnnotation)))
	}
	return errs
}

// IncidentAt returns the validated incident time.
func (in *Input) IncidentAt() time.Time {
	t, _ := time.Parse(time.RFC3339, in.IncidentTime)
	return t
}

// clockSkew forgives a browser clock slightly ahead of ours.
const clockSkew = time.Minute

func pastTime(field, s string, now time.Time) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fieldErr(field, "%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", s)
	}
	if t.After(now.Add(clockSkew)) {
		return t, fieldErr(field, "%s is in the future", s)
	}
	return t, nil
}

// ErrBadFileName is wrapped by CheckFileName's errors.
var ErrBadFileName = errors.New("bad file name")

// CheckFileName checks an original file name by reportrules.FileName: no
// path, no controls, no invisible characters that change how it reads.
func CheckFileName(field, name string) error {
	if err := reportrules.FileName(name); err != nil {
		return &FieldError{Field: field, Message: err.Error(), Kind: ErrBadFileName}
	}
	return nil
}
