// Package filing turns a takedown.report.submitted event and the company's
// reporter configuration into the documents NCMEC receives: the <report> for
// /submit and one <fileDetails> per file for /fileinfo. It knows nothing of
// storage or transport.
package filing

import (
	"fmt"
	"strings"
	"time"

	"takedown/pkg/ncmec"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/reportrules"
)

// Person is a reporting or contact person from configuration.
type Person struct {
	FirstName, LastName, Email, Phone string
}

func (p Person) empty() bool { return p == Person{} }

// Address is the company's mailing address (18 U.S.C. 2258A(a)(1)(B)(i)).
type Address struct {
	Street, City, ZipCode, State, Country string
}

// Reporter is who files: the same for every report of the company.
type Reporter struct {
	Person          Person
	Address         Address
	Contact         Person // law enforcement's contact, if not Person
	CompanyTemplate string // how to serve legal process, retention, 24h phone...
	TermsOfService  string
	LegalURL        string
}

// Validate checks what NCMEC's documentation asks of the reporting person:
// an email (the XSD does not require it; API.md §3.5 says send one).
func (r Reporter) Validate() error {
	if r.Person.Email == "" {
		return fmt.Errorf("the reporting person needs an email")
	}
	if r.Person.FirstName == "" || r.Person.LastName == "" {
		return fmt.Errorf("the reporting person needs a first and a last name")
	}
	return nil
}

// Report builds the <report> for sub. now is the time of building, since
// NCMEC refuses an incidentDateTime in the future (4100).
func Report(sub *pb.ReportSubmitted, rep Reporter, now time.Time) (*ncmec.Report, error) {
	r := sub.GetReport()
	if r == nil {
		return nil, fmt.Errorf("event has no report")
	}
	incidentType := r.IncidentType
	if incidentType == "" {
		incidentType = ncmec.IncidentChildPornography
	}
	at := r.GetIncidentTime().AsTime()
	if r.GetIncidentTime() == nil || at.IsZero() {
		// The time staff reported it is the best known bound.
		at = r.GetSubmittedAt().AsTime()
	}
	if limit := now.Add(-time.Second); at.After(limit) {
		at = limit // a clock slightly ahead must not turn into a 4100
	}
	out := &ncmec.Report{
		IncidentSummary: ncmec.IncidentSummary{
			IncidentType:           incidentType,
			Platform:               r.Platform,
			EscalateToHighPriority: r.Escalate,
			IncidentDateTime:       at,
		},
		Reporter: reporter(rep),
	}
	if len(r.Urls) > 0 {
		out.InternetDetails = []ncmec.InternetDetails{{WebPageIncident: &ncmec.WebPageIncident{URL: r.Urls}}}
	}
	if u := r.GetUploader(); u != nil && (u.Username != "" || u.Email != "" || u.Ip != "" || len(u.PriorNcmecReportIds) > 0) {
		p := ncmec.PersonOrUserReported{ScreenName: u.Username, PriorCTReports: u.PriorNcmecReportIds}
		if u.Email != "" {
			p.PersonOrUserReportedPerson = &ncmec.Person{Email: []ncmec.Email{{Address: u.Email}}}
		}
		if u.Ip != "" {
			p.IPCaptureEvent = []ncmec.IPCaptureEvent{{IPAddress: u.Ip, EventName: ncmec.EventUpload}}
		}
		out.PersonOrUserReported = []ncmec.PersonOrUserReported{p}
	}
	// The XSD has no element for our actions: they go in additionalInfo,
	// without the internal statements (reportrules.Actions says why), and
	// with the comments for NCMEC. The private note is never read here.
	var info []string
	if actions := reportrules.ForNCMEC(r.ActionsTaken); len(actions) > 0 {
		info = append(info, "Actions taken: "+strings.Join(actions, "; ")+".")
	}
	if r.Notes != "" {
		info = append(info, r.Notes)
	}
	out.AdditionalInfo = strings.Join(info, "\n")
	return out, nil
}

func reporter(rep Reporter) ncmec.Reporter {
	p := ncmec.Person{FirstName: rep.Person.FirstName, LastName: rep.Person.LastName}
	if rep.Person.Email != "" {
		p.Email = []ncmec.Email{{Type: "Business", Address: rep.Person.Email}}
	}
	if rep.Person.Phone != "" {
		p.Phone = []ncmec.Phone{{Type: "Business", Number: rep.Person.Phone}}
	}
	if a := rep.Address; a != (Address{}) {
		addr := ncmec.Address{Type: "Business", Address: a.Street, City: a.City, ZipCode: a.ZipCode, Country: a.Country}
		if a.Country == "" || a.Country == "US" {
			addr.State = a.State
		} else {
			addr.NonUSAState = a.State
		}
		p.Address = []ncmec.Address{addr}
	}
	out := ncmec.Reporter{ReportingPerson: p, CompanyTemplate: rep.CompanyTemplate,
		TermsOfService: rep.TermsOfService, LegalURL: rep.LegalURL}
	if c := rep.Contact; !c.empty() {
		cp := &ncmec.ContactPerson{FirstName: c.FirstName, LastName: c.LastName}
		if c.Email != "" {
			cp.Email = []ncmec.Email{{Type: "Business", Address: c.Email}}
		}
		if c.Phone != "" {
			cp.Phone = []ncmec.Phone{{Type: "Business", Number: c.Phone}}
		}
		out.ContactPerson = cp
	}
	return out
}

// annotations maps the names staff may give (the XSD's element names,
// case-insensitively) to the fileAnnotations flags.
var annotations = map[string]func(*ncmec.FileAnnotations){
	"animedrawingvirtualhentai": func(a *ncmec.FileAnnotations) { a.AnimeDrawingVirtualHentai = true },
	"potentialmeme":             func(a *ncmec.FileAnnotations) { a.PotentialMeme = true },
	"viral":                     func(a *ncmec.FileAnnotations) { a.Viral = true },
	"possibleselfproduction":    func(a *ncmec.FileAnnotations) { a.PossibleSelfProduction = true },
	"physicalharm":              func(a *ncmec.FileAnnotations) { a.PhysicalHarm = true },
	"violencegore":              func(a *ncmec.FileAnnotations) { a.ViolenceGore = true },
	"bestiality":                func(a *ncmec.FileAnnotations) { a.Bestiality = true },
	"livestreaming":             func(a *ncmec.FileAnnotations) { a.LiveStreaming = true },
	"infant":                    func(a *ncmec.FileAnnotations) { a.Infant = true },
	"generativeai":              func(a *ncmec.FileAnnotations) { a.GenerativeAI = true },
}

// FileDetails builds the <fileDetails> of f, uploaded as fileID into the
// NCMEC report reportID.
func FileDetails(f *pb.File, reportID int64, fileID string) *ncmec.FileDetails {
	d := &ncmec.FileDetails{
		ReportID:         reportID,
		FileID:           fileID,
		FileName:         UploadName(f),
		OriginalFileName: f.Name,
		LocationOfFile:   f.LocationUrl,
		// Always sent, false included: whether a person viewed the file is
		// what decides a warrant question later (United States v. Wilson).
		FileViewedByESP:        ncmec.Bool(f.ViewedByStaff),
		PubliclyAvailable:      ncmec.Bool(f.PubliclyAvailable),
		FileRelevance:          ncmec.RelevanceReported,
		IndustryClassification: f.IndustryClassification,
	}
	if t := f.GetOriginalUploadTime(); t != nil {
		d.UploadedToESPTimestamp = ncmec.Time(t.AsTime())
	}
	var fa ncmec.FileAnnotations
	for _, a := range f.Annotations {
		key := strings.ToLower(strings.NewReplacer(" ", "", "_", "", "-", "", "/", "").Replace(a))
		if set, ok := annotations[key]; ok {
			set(&fa)
		} else if a != "" {
			d.AdditionalInfo = append(d.AdditionalInfo, "Annotation: "+a)
		}
	}
	if fa != (ncmec.FileAnnotations{}) {
		d.FileAnnotations = &fa
	}
	for _, h := range []struct{ typ, v string }{
		{ncmec.HashMD5, f.Md5}, {ncmec.HashSHA1, f.Sha1}, {ncmec.HashSHA256, f.Sha256}, {ncmec.HashPDQ, f.Pdq},
	} {
		if h.v != "" {
			d.OriginalFileHash = append(d.OriginalFileHash, ncmec.Hash{Type: h.typ, Value: h.v})
		}
	}
	if f.UploaderIp != "" {
		ev := &ncmec.IPCaptureEvent{IPAddress: f.UploaderIp, EventName: ncmec.EventUpload}
		if t := f.GetOriginalUploadTime(); t != nil {
			ev.DateTime = ncmec.Time(t.AsTime())
		}
		d.IPCaptureEvent = ev
	}
	return d
}

// UploadName is the file name sent with /upload: the original name when
// there is one, so NCMEC's analysts see what staff saw.
func UploadName(f *pb.File) string {
	if f.Name != "" {
		return f.Name
	}
	return fmt.Sprintf("file-%d", f.Index+1)
}
