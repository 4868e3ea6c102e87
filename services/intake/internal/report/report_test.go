package report_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"takedown/pkg/ncmec"
	"takedown/pkg/reportrules"
	"takedown/services/intake/internal/report"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// input is the report JSON a client would send for s.
func input(s reportrules.Sample) *report.Input {
	in := &report.Input{
		IncidentTime: "2026-01-02T15:04:05Z", Platform: s.Platform, URLs: s.URLs,
		Uploader:      report.Uploader{Username: s.Username, Email: s.Email, IP: "192.0.2.1"},
		LegalApproved: s.LegalApproved, Approver: s.Approver, NotApprovedReason: s.NotApprovedReason,
		ActionsTaken: s.Actions, Notes: s.Notes, PrivateNote: s.PrivateNote, Escalate: s.Escalate,
	}
	for _, f := range s.Files {
		in.Files = append(in.Files, report.FileInput{Name: f.Name, LocationURL: f.LocationURL, Annotations: f.Annotations})
	}
	return in
}

// Intake accepts every sample of the shared rules, the longest included:
// the property tests of the NCMEC builder (ncmec-reporter's filing) and of
// the case mapping (case-writer's mapping) file and case the same samples,
// so what intake accepts goes through both.
func TestValidateAcceptsEverySample(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(15, 4))
	samples := []reportrules.Sample{reportrules.LongestSample()}
	for range 500 {
		samples = append(samples, reportrules.RandomSample(r))
	}
	for i, s := range samples {
		in := input(s)
		if err := in.Validate(now); err != nil {
			t.Fatalf("sample %d refused: %v", i, err)
		}
		if s.Email != "" {
			if want, _ := reportrules.Email(s.Email); in.Uploader.Email != want {
				t.Fatalf("sample %d: e-mail %q kept as %q, want %q", i, s.Email, in.Uploader.Email, want)
			}
		}
	}
}

func firstField(t *testing.T, err error) string {
	t.Helper()
	var fe *report.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a FieldError", err)
	}
	return fe.Field
}

// Each limit is where intake refuses, naming the field: one character more
// than the shared rules allow is a 400, not a case that fails later.
func TestValidateRefusesJustPastTheLimits(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("é", n) }
	url := func(n int) string { return "https://example.org/" + strings.Repeat("a", n-20) }
	cases := map[string]func(*report.Input){
		"platform":            func(in *report.Input) { in.Platform = long(reportrules.MaxPlatform + 1) },
		"uploader.username":   func(in *report.Input) { in.Uploader.Username = long(reportrules.MaxUsername + 1) },
		"approver":            func(in *report.Input) { in.Approver = long(reportrules.MaxApprover + 1) },
		"not_approved_reason": func(in *report.Input) { in.NotApprovedReason = long(reportrules.MaxNotApprovedReason + 1) },
		"notes":               func(in *report.Input) { in.Notes = long(reportrules.MaxNotes + 1) },
		"private_note":        func(in *report.Input) { in.PrivateNote = long(reportrules.MaxPrivateNote + 1) },
		"escalate":            func(in *report.Input) { in.Escalate = long(reportrules.MaxEscalate + 1) },
		"actions_taken[1]":    func(in *report.Input) { in.ActionsTaken = []string{"ok", long(reportrules.MaxAction + 1)} },
		"actions_taken":       func(in *report.Input) { in.ActionsTaken = make([]string, reportrules.MaxActions+1) },
		"urls[0]":             func(in *report.Input) { in.URLs = []string{url(reportrules.MaxURL + 1)} },
		"urls":                func(in *report.Input) { in.URLs = []string{url(2000), url(2000), url(2000), url(2000)} },
		"files[0].name":       func(in *report.Input) { in.Files = []report.FileInput{{Name: strings.Repeat("中", 86)}} },
		"files[0].annotations[0]": func(in *report.Input) {
			in.Files = []report.FileInput{{Annotations: []string{long(reportrules.MaxAnnotation + 1)}}}
		},
		"files[0].location_url": func(in *report.Input) { in.Files = []report.FileInput{{LocationURL: url(reportrules.MaxURL + 1)}} },
		"uploader.email":        func(in *report.Input) { in.Uploader.Email = strings.Repeat("a", 250) + "@example.com" },
		"files[0].annotations": func(in *report.Input) {
			in.Files = []report.FileInput{{Annotations: make([]string, reportrules.MaxAnnotations+1)}}
		},
		"files[1].uploader_ip":             func(in *report.Input) { in.Files = []report.FileInput{{}, {UploaderIP: "1.2.3.4\x00"}} },
		"files[0].upload_time":             func(in *report.Input) { in.Files = []report.FileInput{{UploadTime: "2026-01-01T00:00:00Z\x00"}} },
		"incident_type":                    func(in *report.Input) { in.IncidentType = "Child Sex Tourism\x00" },
		"files[0].industry_classification": func(in *report.Input) { in.Files = []report.FileInput{{Classification: "A1\x00"}} },
	}
	for want, mutate := range cases {
		in := &report.Input{IncidentTime: "2026-01-02T15:04:05Z"}
		mutate(in)
		err := in.Validate(now)
		if err == nil {
			t.Errorf("%s: accepted", want)
			continue
		}
		if got := firstField(t, err); got != want {
			t.Errorf("%s: refused naming %s (%v)", want, got, err)
		}
	}
}

// The problems issue 15 found, each with the field the 400 names.
func TestValidateRegressions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*report.Input)
		field  string // "" for accepted
	}{
		{"URL with a space", func(in *report.Input) { in.URLs = []string{"https://example.com/a b"} }, "urls[0]"},
		{"URL with NBSP", func(in *report.Input) { in.URLs = []string{"https://example.com/a\u00a0b"} }, "urls[0]"},
		{"URL with U+2028", func(in *report.Input) { in.URLs = []string{"https://example.com/a\u2028b"} }, "urls[0]"},
		{"300-character username", func(in *report.Input) { in.Uploader.Username = strings.Repeat("u", 300) }, "uploader.username"},
		{"255-character username", func(in *report.Input) { in.Uploader.Username = strings.Repeat("u", 255) }, ""},
		{"long action", func(in *report.Input) { in.ActionsTaken = []string{strings.Repeat("a", 1000)} }, "actions_taken[0]"},
		{"NUL in notes", func(in *report.Input) { in.Notes = "a\x00b" }, "notes"},
		{"NUL in escalate", func(in *report.Input) { in.Escalate = "a\x00b" }, "escalate"},
		{"NUL in not_approved_reason", func(in *report.Input) { in.NotApprovedReason = "\x00" }, "not_approved_reason"},
		{"line breaks in notes", func(in *report.Input) { in.Notes = "one\r\ntwo\tthree" }, ""},
		{"line break in the platform", func(in *report.Input) { in.Platform = "a\nb" }, "platform"},
		{"bidi override in a file name", func(in *report.Input) { in.Files = []report.FileInput{{Name: "photo\u202egpj.exe"}} }, "files[0].name"},
		{"zero-width space in a file name", func(in *report.Input) { in.Files = []report.FileInput{{Name: "a\u200b.png"}} }, "files[0].name"},
		{"bidi isolate in a file name", func(in *report.Input) { in.Files = []report.FileInput{{Name: "a\u2066b"}} }, "files[0].name"},
		{"dots inside a file name", func(in *report.Input) { in.Files = []report.FileInput{{Name: "a..b.png"}} }, ""},
		{"dot-dot as a file name", func(in *report.Input) { in.Files = []report.FileInput{{Name: ".."}} }, "files[0].name"},
	} {
		in := &report.Input{IncidentTime: "2026-01-02T15:04:05Z"}
		tc.mutate(in)
		err := in.Validate(now)
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.field != "" && err == nil:
			t.Errorf("%s: accepted", tc.name)
		case tc.field != "":
			if got := firstField(t, err); got != tc.field {
				t.Errorf("%s: refused naming %s, want %s", tc.name, got, tc.field)
			}
			if errors.Is(err, report.ErrBadFileName) != strings.HasSuffix(tc.field, ".name") {
				t.Errorf("%s: ErrBadFileName %v", tc.name, errors.Is(err, report.ErrBadFileName))
			}
		}
	}
	in := &report.Input{IncidentTime: "2026-01-02T15:04:05Z", Uploader: report.Uploader{Email: `"x" <a@example.com>`}}
	if err := in.Validate(now); err != nil || in.Uploader.Email != "a@example.com" {
		t.Errorf("e-mail kept as %q (%v), want a@example.com", in.Uploader.Email, err)
	}
}

// FuzzValidate: whatever report JSON intake accepts, PostgreSQL can store
// (no NUL, valid UTF-8) and the NCMEC encoder takes (its URLs, its text).
// The seeds run as a normal test; go test -fuzz=FuzzValidate explores.
func FuzzValidate(f *testing.F) {
	for _, seed := range []string{
		`{"incident_time": "2026-01-02T15:04:05Z", "urls": ["https://example.com/a b"], "notes": "x\u0000"}`,
		`{"incident_time": "2026-01-02T15:04:05Z", "urls": ["https://example.com/a\u00a0b", "https://e.org/\u2028"]}`,
		`{"incident_time": "2026-01-02T15:04:05Z", "uploader": {"username": "a\u202eb", "email": "\"x\" <a@example.com>"}}`,
		`{"incident_time": "2026-01-02T15:04:05Z", "files": [{"name": "a..b.png", "location_url": "http://x.org/\u200b", "annotations": ["\u0000"]}]}`,
		`{"incident_time": "2026-01-02T15:04:05Z", "actions_taken": ["a\tb", "c\nd"], "escalate": "\r\n", "platform": "\ufffe"}`,
		`{"incident_time": "2026-01-02T15:04:05Z", "urls": ["https://[::1]:80/", "https://x.org/%zz", "https://x.org/\u0085"]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var in report.Input
		if json.Unmarshal([]byte(raw), &in) != nil || in.Validate(now) != nil {
			return
		}
		b, _ := json.Marshal(in)
		if strings.Contains(string(b), `\u0000`) {
			t.Fatalf("accepted a NUL PostgreSQL cannot store: %s", b)
		}
		doc := &ncmec.Report{
			IncidentSummary: ncmec.IncidentSummary{IncidentType: in.IncidentType, Platform: in.Platform,
				EscalateToHighPriority: in.Escalate, IncidentDateTime: in.IncidentAt()},
			Reporter:       ncmec.Reporter{ReportingPerson: ncmec.Person{FirstName: "A", LastName: "B"}},
			AdditionalInfo: in.Notes + strings.Join(in.ActionsTaken, "\n") + in.NotApprovedReason + in.Approver,
			PersonOrUserReported: []ncmec.PersonOrUserReported{{ScreenName: in.Uploader.Username,
				PersonOrUserReportedPerson: &ncmec.Person{Email: []ncmec.Email{{Address: in.Uploader.Email}}}}},
		}
		if len(in.URLs) > 0 {
			doc.InternetDetails = []ncmec.InternetDetails{{WebPageIncident: &ncmec.WebPageIncident{URL: in.URLs}}}
		}
		if _, err := ncmec.EncodeReport(doc); err != nil {
			t.Fatalf("accepted, but the encoder refuses: %v", err)
		}
		for _, fi := range in.Files {
			d := &ncmec.FileDetails{ReportID: 1, FileID: "f", OriginalFileName: fi.Name, LocationOfFile: fi.LocationURL, AdditionalInfo: fi.Annotations}
			if _, err := ncmec.EncodeFileDetails(d); err != nil {
				t.Fatalf("accepted, but the encoder refuses the file: %v", err)
			}
		}
	})
}
