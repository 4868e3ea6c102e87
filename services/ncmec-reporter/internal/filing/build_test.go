package filing_test

import (
	"bytes"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/ncmec"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/reportrules"
	"takedown/pkg/reportrules/reporttest"
	"takedown/pkg/testenv"
	"takedown/services/ncmec-reporter/internal/filing"
)

var reporter = filing.Reporter{
	Person:  filing.Person{FirstName: "Ada", LastName: "Staff", Email: "ncmec@example.org", Phone: "5555550100"},
	Address: filing.Address{Street: "1 Main St", City: "Springfield", ZipCode: "12345", State: "VA", Country: "US"},
}

// Every report intake accepts is built and encoded by the reporter without
// error, and (the longest and a share of the random ones) validates
// against NCMEC's XSD: the encoder's URL rule is reportrules.URL, the one
// intake checks with.
func TestEveryAcceptedReportIsFiled(t *testing.T) {
	t.Parallel()
	var docs [][]byte // to validate against the XSD
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(15, 3))
	samples := []reportrules.Sample{reportrules.LongestSample()}
	for range 200 {
		samples = append(samples, reportrules.RandomSample(r))
	}
	for i, s := range samples {
		sub := reporttest.Submitted(t, s)
		rep, err := filing.Report(sub, reporter, now)
		if err != nil {
			t.Fatalf("sample %d: build: %v", i, err)
		}
		doc, err := ncmec.EncodeReport(rep)
		if err != nil {
			t.Fatalf("sample %d: encode: %v", i, err)
		}
		check := i%20 == 0 // xmllint is a process per document: a share is enough
		if check {
			docs = append(docs, doc)
		}
		for _, f := range sub.Files {
			d, err := ncmec.EncodeFileDetails(filing.FileDetails(f, 7855777, "e6cb48fbb2b565e69ccded9b9cda62fb"))
			if err != nil {
				t.Fatalf("sample %d, file %q: encode: %v", i, f.Name, err)
			}
			if check {
				docs = append(docs, d)
			}
		}
	}
	t.Run("xsd", func(t *testing.T) {
		xsd := filepath.Join(testenv.SharedDir(t, "ncmec"), "cyber_tipline.xsd")
		lint, err := exec.LookPath("xmllint")
		if err != nil {
			t.Skip("xmllint not found: install libxml2-utils (Debian)")
		}
		for _, doc := range docs {
			cmd := exec.Command(lint, "--noout", "--nonet", "--schema", xsd, "-")
			cmd.Stdin = bytes.NewReader(doc)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("does not validate: %s\n%.2000s", out, doc)
			}
		}
	})
}

// The <report> built from each part of the event: every row is a rule of
// the builder that a change could break.
func TestReport(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	incident := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	submittedAt := time.Date(2026, 2, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		edit func(r *pb.Report)
		part func(r *ncmec.Report) any // the part of the report the row is about
		want any
	}{
		{"incident type defaults to child pornography", func(r *pb.Report) { r.IncidentType = "" },
			func(r *ncmec.Report) any { return r.IncidentSummary.IncidentType }, ncmec.IncidentChildPornography},
		{"incident type kept", func(r *pb.Report) { r.IncidentType = "Online Enticement of Children for Sexual Acts" },
			func(r *ncmec.Report) any { return r.IncidentSummary.IncidentType }, "Online Enticement of Children for Sexual Acts"},
		{"incident time kept", func(r *pb.Report) {},
			func(r *ncmec.Report) any { return r.IncidentSummary.IncidentDateTime }, incident},
		{"no incident time: the submission's", func(r *pb.Report) { r.IncidentTime = nil },
			func(r *ncmec.Report) any { return r.IncidentSummary.IncidentDateTime }, submittedAt},
		{"zero incident time: the submission's", func(r *pb.Report) { r.IncidentTime = timestamppb.New(time.Time{}) },
			func(r *ncmec.Report) any { return r.IncidentSummary.IncidentDateTime }, submittedAt},
		{"a future incident time is pulled into the past (no 4100)", func(r *pb.Report) { r.IncidentTime = timestamppb.New(now.Add(time.Minute)) },
			func(r *ncmec.Report) any { return r.IncidentSummary.IncidentDateTime }, now.Add(-time.Second)},
		{"platform and escalation", func(r *pb.Report) { r.Platform, r.Escalate = "Example", "ongoing abuse" },
			func(r *ncmec.Report) any {
				return [2]string{r.IncidentSummary.Platform, r.IncidentSummary.EscalateToHighPriority}
			},
			[2]string{"Example", "ongoing abuse"}},
		{"URLs as one web page incident", func(r *pb.Report) { r.Urls = []string{"https://a.example/1", "https://b.example/2"} },
			func(r *ncmec.Report) any { return r.InternetDetails },
			[]ncmec.InternetDetails{{WebPageIncident: &ncmec.WebPageIncident{URL: []string{"https://a.example/1", "https://b.example/2"}}}}},
		{"no URLs, no internet details", func(r *pb.Report) {},
			func(r *ncmec.Report) any { return r.InternetDetails }, []ncmec.InternetDetails(nil)},
		{"no uploader", func(r *pb.Report) { r.Uploader = nil },
			func(r *ncmec.Report) any { return r.PersonOrUserReported }, []ncmec.PersonOrUserReported(nil)},
		{"an uploader with nothing known is left out", func(r *pb.Report) { r.Uploader = &pb.Uploader{} },
			func(r *ncmec.Report) any { return r.PersonOrUserReported }, []ncmec.PersonOrUserReported(nil)},
		{"a screen name alone", func(r *pb.Report) { r.Uploader = &pb.Uploader{Username: "u1"} },
			func(r *ncmec.Report) any { return r.PersonOrUserReported }, []ncmec.PersonOrUserReported{{ScreenName: "u1"}}},
		{"the whole uploader", func(r *pb.Report) {
			r.Uploader = &pb.Uploader{Username: "u1", Email: "u1@example.org", Ip: "192.0.2.7", PriorNcmecReportIds: []int64{5, 6}}
		}, func(r *ncmec.Report) any { return r.PersonOrUserReported }, []ncmec.PersonOrUserReported{{
			ScreenName: "u1", PriorCTReports: []int64{5, 6},
			PersonOrUserReportedPerson: &ncmec.Person{Email: []ncmec.Email{{Address: "u1@example.org"}}},
			IPCaptureEvent:             []ncmec.IPCaptureEvent{{IPAddress: "192.0.2.7", EventName: ncmec.EventUpload}},
		}}},
		{"prior reports alone name the uploader", func(r *pb.Report) { r.Uploader = &pb.Uploader{PriorNcmecReportIds: []int64{5}} },
			func(r *ncmec.Report) any { return r.PersonOrUserReported }, []ncmec.PersonOrUserReported{{PriorCTReports: []int64{5}}}},
		{"actions and notes", func(r *pb.Report) {
			r.ActionsTaken, r.Notes = []string{"account banned", "content removed"}, "seen twice"
		},
			func(r *ncmec.Report) any { return r.AdditionalInfo }, "Actions taken: account banned; content removed.\nseen twice"},
		{"internal statements are not sent", func(r *pb.Report) {
			r.ActionsTaken = []string{"content removed", "e-mail sent to legal for deletion", "CheckUser data included"}
		},
			func(r *ncmec.Report) any { return r.AdditionalInfo }, "Actions taken: content removed."},
		{"internal statements alone: no actions line", func(r *pb.Report) {
			r.ActionsTaken, r.Notes = []string{"CheckUser data included"}, "seen twice"
		},
			func(r *ncmec.Report) any { return r.AdditionalInfo }, "seen twice"},
		{"the private note is not sent", func(r *pb.Report) { r.PrivateNote = "for us" },
			func(r *ncmec.Report) any { return r.AdditionalInfo }, ""},
		{"notes alone", func(r *pb.Report) { r.Notes = "seen twice" },
			func(r *ncmec.Report) any { return r.AdditionalInfo }, "seen twice"},
		{"neither", func(r *pb.Report) {},
			func(r *ncmec.Report) any { return r.AdditionalInfo }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &pb.Report{IncidentTime: timestamppb.New(incident), SubmittedAt: timestamppb.New(submittedAt)}
			tt.edit(r)
			got, err := filing.Report(&pb.ReportSubmitted{Report: r}, reporter, now)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tt.part(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := filing.Report(&pb.ReportSubmitted{}, reporter, now); err == nil {
		t.Error("an event without a report was built")
	}
}

// The private note and the internal statements never reach NCMEC: the
// encoded XML holds the comments for NCMEC and the actions, and nothing of
// the note or the statements, in any case.
func TestPrivateNoteAndStatementsAreNotInTheXML(t *testing.T) {
	t.Parallel()
	const note = "PRIVATE-7f3a9c legal ticket LEG-4411: do not send"
	r := &pb.Report{
		IncidentTime: timestamppb.New(time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)),
		ActionsTaken: []string{"content removed", "e-mail sent to legal for deletion", "CheckUser data included"},
		Notes:        "COMMENT-for-ncmec-51c2",
		PrivateNote:  note,
	}
	rep, err := filing.Report(&pb.ReportSubmitted{Report: r}, reporter, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ncmec.EncodeReport(rep)
	if err != nil {
		t.Fatal(err)
	}
	lower := bytes.ToLower(doc)
	for _, absent := range []string{"PRIVATE-7f3a9c", "LEG-4411", "legal for deletion", "checkuser"} {
		if bytes.Contains(lower, bytes.ToLower([]byte(absent))) {
			t.Errorf("the XML holds %q:\n%s", absent, doc)
		}
	}
	for _, present := range []string{"COMMENT-for-ncmec-51c2", "content removed"} {
		if !bytes.Contains(doc, []byte(present)) {
			t.Errorf("the XML lacks %q:\n%s", present, doc)
		}
	}
}

// The reporting company as configured: every report carries it.
func TestReporter(t *testing.T) {
	t.Parallel()
	person := filing.Person{FirstName: "Ada", LastName: "Staff", Email: "ncmec@example.org", Phone: "5555550100"}
	tests := []struct {
		name string
		rep  filing.Reporter
		want ncmec.Reporter
	}{
		{"names only", filing.Reporter{Person: filing.Person{FirstName: "Ada", LastName: "Staff"}},
			ncmec.Reporter{ReportingPerson: ncmec.Person{FirstName: "Ada", LastName: "Staff"}}},
		{"business e-mail and phone", filing.Reporter{Person: person}, ncmec.Reporter{ReportingPerson: ncmec.Person{
			FirstName: "Ada", LastName: "Staff",
			Email: []ncmec.Email{{Type: "Business", Address: "ncmec@example.org"}},
			Phone: []ncmec.Phone{{Type: "Business", Number: "5555550100"}}}}},
		{"a US address has a state", filing.Reporter{Person: filing.Person{FirstName: "A", LastName: "B"},
			Address: filing.Address{Street: "1 Main St", City: "Springfield", ZipCode: "12345", State: "VA", Country: "US"}},
			ncmec.Reporter{ReportingPerson: ncmec.Person{FirstName: "A", LastName: "B", Address: []ncmec.Address{{
				Type: "Business", Address: "1 Main St", City: "Springfield", ZipCode: "12345", State: "VA", Country: "US"}}}}},
		{"no country is the US", filing.Reporter{Person: filing.Person{FirstName: "A", LastName: "B"}, Address: filing.Address{State: "VA"}},
			ncmec.Reporter{ReportingPerson: ncmec.Person{FirstName: "A", LastName: "B", Address: []ncmec.Address{{Type: "Business", State: "VA"}}}}},
		{"elsewhere, a non-US state", filing.Reporter{Person: filing.Person{FirstName: "A", LastName: "B"},
			Address: filing.Address{City: "Toronto", State: "ON", Country: "CA"}},
			ncmec.Reporter{ReportingPerson: ncmec.Person{FirstName: "A", LastName: "B", Address: []ncmec.Address{{
				Type: "Business", City: "Toronto", NonUSAState: "ON", Country: "CA"}}}}},
		{"a contact for law enforcement, and the company's texts", filing.Reporter{Person: filing.Person{FirstName: "A", LastName: "B"},
			Contact:         filing.Person{FirstName: "Le", LastName: "Contact", Email: "le@example.org", Phone: "5555550199"},
			CompanyTemplate: "Serve process at ...", TermsOfService: "https://example.org/tos", LegalURL: "https://example.org/legal"},
			ncmec.Reporter{ReportingPerson: ncmec.Person{FirstName: "A", LastName: "B"},
				ContactPerson: &ncmec.ContactPerson{FirstName: "Le", LastName: "Contact",
					Email: []ncmec.Email{{Type: "Business", Address: "le@example.org"}},
					Phone: []ncmec.Phone{{Type: "Business", Number: "5555550199"}}},
				CompanyTemplate: "Serve process at ...", TermsOfService: "https://example.org/tos", LegalURL: "https://example.org/legal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := filing.Report(&pb.ReportSubmitted{Report: &pb.Report{}}, tt.rep, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.Reporter); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReporterValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p  filing.Person
		ok bool
	}{
		{filing.Person{FirstName: "A", LastName: "B", Email: "a@example.org"}, true},
		{filing.Person{FirstName: "A", LastName: "B"}, false},
		{filing.Person{FirstName: "A", Email: "a@example.org"}, false},
		{filing.Person{LastName: "B", Email: "a@example.org"}, false},
	} {
		if err := (filing.Reporter{Person: tt.p}).Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tt.p, err, tt.ok)
		}
	}
}

// The <fileDetails> of one file.
func TestFileDetails(t *testing.T) {
	t.Parallel()
	uploaded := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		file *pb.File
		part func(d *ncmec.FileDetails) any
		want any
	}{
		{"names, location and what is always sent", &pb.File{Index: 0, Name: "a.png", LocationUrl: "https://example.org/a.png", IndustryClassification: ncmec.ClassA1},
			func(d *ncmec.FileDetails) any { return *d }, ncmec.FileDetails{ReportID: 7, FileID: "nf1", FileName: "a.png", OriginalFileName: "a.png",
				LocationOfFile: "https://example.org/a.png", FileViewedByESP: ncmec.Bool(false), PubliclyAvailable: ncmec.Bool(false),
				FileRelevance: ncmec.RelevanceReported, IndustryClassification: ncmec.ClassA1}},
		{"viewed and public are the truth", &pb.File{Name: "a", ViewedByStaff: true, PubliclyAvailable: true},
			func(d *ncmec.FileDetails) any { return [2]*bool{d.FileViewedByESP, d.PubliclyAvailable} }, [2]*bool{ncmec.Bool(true), ncmec.Bool(true)}},
		{"a file without a name is named by its place", &pb.File{Index: 2},
			func(d *ncmec.FileDetails) any { return [2]string{d.FileName, d.OriginalFileName} }, [2]string{"file-3", ""}},
		{"annotations by the XSD's names, any case and separators", &pb.File{Name: "a",
			Annotations: []string{"Potential Meme", "generative_ai", "Anime/Drawing/Virtual/Hentai", "live-streaming", "INFANT"}},
			func(d *ncmec.FileDetails) any { return d.FileAnnotations }, &ncmec.FileAnnotations{PotentialMeme: true, GenerativeAI: true,
				AnimeDrawingVirtualHentai: true, LiveStreaming: true, Infant: true}},
		{"other annotations are told as additional info, empty ones dropped", &pb.File{Name: "a", Annotations: []string{"viral", "blurry", ""}},
			func(d *ncmec.FileDetails) any { return []any{d.FileAnnotations, d.AdditionalInfo} },
			[]any{&ncmec.FileAnnotations{Viral: true}, []string{"Annotation: blurry"}}},
		{"no annotation, no element", &pb.File{Name: "a", Annotations: []string{"blurry"}},
			func(d *ncmec.FileDetails) any { return d.FileAnnotations }, (*ncmec.FileAnnotations)(nil)},
		{"hashes in order, missing ones left out", &pb.File{Name: "a", Md5: "m", Sha256: "s256", Pdq: "p"},
			func(d *ncmec.FileDetails) any { return d.OriginalFileHash },
			[]ncmec.Hash{{Type: ncmec.HashMD5, Value: "m"}, {Type: ncmec.HashSHA256, Value: "s256"}, {Type: ncmec.HashPDQ, Value: "p"}}},
		{"upload time and IP", &pb.File{Name: "a", OriginalUploadTime: timestamppb.New(uploaded), UploaderIp: "2001:db8::1"},
			func(d *ncmec.FileDetails) any { return []any{d.UploadedToESPTimestamp, d.IPCaptureEvent} },
			[]any{ncmec.Time(uploaded), &ncmec.IPCaptureEvent{IPAddress: "2001:db8::1", EventName: ncmec.EventUpload, DateTime: ncmec.Time(uploaded)}}},
		{"an IP without a time", &pb.File{Name: "a", UploaderIp: "192.0.2.1"},
			func(d *ncmec.FileDetails) any { return []any{d.UploadedToESPTimestamp, d.IPCaptureEvent} },
			[]any{(*time.Time)(nil), &ncmec.IPCaptureEvent{IPAddress: "192.0.2.1", EventName: ncmec.EventUpload}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := filing.FileDetails(tt.file, 7, "nf1")
			if diff := cmp.Diff(tt.want, tt.part(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
