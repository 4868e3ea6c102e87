package mapping_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/salesforce/sfsim"
	"takedown/services/case-writer/internal/cases"
	"takedown/services/case-writer/internal/mapping"
)

// The default mapping must fit the simulator's default schema, which
// mirrors the org README.md describes: every field it names exists.
func TestDefaultFitsTheDefaultSchema(t *testing.T) {
	m := mapping.Default()
	fields := map[string]map[string]bool{}
	for _, o := range sfsim.DefaultSchema() {
		fields[o.Name] = map[string]bool{}
		for _, f := range o.Fields {
			fields[o.Name][f.Name] = true
		}
	}
	for _, s := range m.Schemas() {
		for _, f := range append(s.Fields, s.ExternalIDField) {
			if !fields[s.Object][f] {
				t.Errorf("%s.%s is not in the default schema", s.Object, f)
			}
		}
	}
	// Every translated value is one of the org's restricted picklist
	// values, or Salesforce refuses the case in that state.
	for _, o := range sfsim.DefaultSchema() {
		obj := m.Case
		if o.Name != obj.Object {
			obj = m.Files
		}
		for _, f := range o.Fields {
			for ours, theirs := range obj.Fields[f.Name].Values {
				if f.Restricted && !slices.Contains(f.Picklist, theirs) {
					t.Errorf("%s.%s: %s maps to %q, not one of %v", o.Name, f.Name, ours, theirs, f.Picklist)
				}
			}
		}
	}
}

func TestBadMappingsNameTheField(t *testing.T) {
	good := string(mapping.DefaultYAML())
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown source", strings.Replace(good, "Subject: report.title", "Subject: report.titel", 1),
			[]string{"case.fields.Subject", `unknown source "report.titel"`}},
		{"file source on the case", strings.Replace(good, "Subject: report.title", "Subject: file.name", 1),
			[]string{"case.fields.Subject", "per file"}},
		{"values missing a state", strings.Replace(good, ", finished: Finished}\n    NCMEC_Finished_At__c", "}\n    NCMEC_Finished_At__c", 1),
			[]string{"case.fields.NCMEC_Status__c", `no entry for "finished"`}},
		{"file values missing a state", strings.Replace(good, "uploaded: Uploaded, failed: Failed, closed: Failed,", "uploaded: Uploaded, failed: Failed,", 1),
			[]string{"files.fields.NCMEC_Status__c", `no entry for "closed"`}},
		{"external id mapped as a field", strings.Replace(good, "File_Name__c: file.name", "Takedown_File_Id__c: file.name", 1),
			[]string{"files.fields.Takedown_File_Id__c"}},
		{"no parent", strings.Replace(good, "parent: Case__c", "", 1), []string{"files.parent"}},
		{"unknown key", strings.Replace(good, "external_id: Takedown_Report_Id__c", "external_id: Takedown_Report_Id__c\n  externalid: x", 1), []string{"externalid"}},
		{"source and value", strings.Replace(good, "Subject: report.title", "Subject: {source: report.title, value: x}", 1),
			[]string{"case.fields.Subject", "either a source or a value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mapping.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestLoadReadsJSONToo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapping.json")
	doc := map[string]any{
		"case":  map[string]any{"object": "Case", "external_id": "Ext__c", "fields": map[string]any{"Subject": "report.title", "Origin": map[string]any{"value": "Web"}}},
		"files": map[string]any{"object": "F__c", "external_id": "FExt__c", "parent": "Case__c", "fields": map[string]any{"Hash__c": "file.sha256"}},
	}
	b, _ := json.Marshal(doc)
	os.WriteFile(path, b, 0o600)
	m, err := mapping.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Case.ExternalID != "Ext__c" || m.Files.Fields["Hash__c"].Source != "file.sha256" || m.Case.Fields["Origin"].Value != "Web" {
		t.Fatalf("%+v", m)
	}
	if _, err := mapping.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file was accepted")
	}
}

// Reporter__c names the submitter as people know them, within the field's
// 255 characters; a report from before names were kept shows the subject.
func TestReporterNamesTheSubmitter(t *testing.T) {
	long := strings.Repeat("n", 300)
	for _, tc := range []struct {
		r    *pb.Report
		want string
	}{
		{&pb.Report{SubmittedBy: "sub-1", SubmittedByName: "Ada Staff", SubmittedByEmail: "ada@example.org"}, "Ada Staff <ada@example.org>"},
		{&pb.Report{SubmittedBy: "sub-1", SubmittedByName: "ada@example.org", SubmittedByEmail: "ada@example.org"}, "ada@example.org"},
		{&pb.Report{SubmittedBy: "sub-1"}, "sub-1"},
		{&pb.Report{SubmittedBy: "sub-1", SubmittedByName: long, SubmittedByEmail: "ada@example.org"}, strings.Repeat("n", 254) + "…"},
	} {
		c := cases.New("0190a4b2-7c1e-7000-8000-00000000000b")
		c.Submitted = &pb.ReportSubmitted{Report: tc.r}
		if got := mapping.Default().CaseRecord(c).Fields["Reporter__c"]; got != tc.want {
			t.Errorf("%v: Reporter__c = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	up := time.Date(2026, 1, 1, 8, 30, 0, 0, time.UTC)
	c := cases.New("0190a4b2-7c1e-7000-8000-00000000000a")
	c.Submitted = &pb.ReportSubmitted{
		Report: &pb.Report{Id: c.ReportID, IncidentType: "Child Pornography (possession, manufacture, and distribution)",
			IncidentTime: timestamppb.New(up), Platform: "Commons", Uploader: &pb.Uploader{Username: "u1"},
			LegalApproved: false, NotApprovedReason: "urgent", ActionsTaken: []string{"content removed", "account locked", "CheckUser data included"},
			Notes: "comment for NCMEC", PrivateNote: "asked legal, ticket LEG-4411",
			SubmittedBy: "sub-7", SubmittedByName: "Sam Staff", SubmittedByEmail: "staff@example.org", SubmittedAt: timestamppb.New(up.Add(time.Hour)), Filing: 1},
		Files: []*pb.File{{Id: "f1", Name: "a.jpg", Size: 1234, Md5: "m", Sha1: "s1", Sha256: "s256", ObjectKey: "reports/x/y", OriginalUploadTime: timestamppb.New(up)}},
	}
	c.NCMEC = filing.Status{Filing: 1, State: filing.Finished, NCMECReportID: 4242, At: up, FinishedAt: up.Add(2 * time.Hour), LearnedFrom: filing.FromReceipt}
	c.NCMECFiles["f1"] = "nf1"
	m := mapping.Default()

	got := m.CaseRecord(c)
	want := map[string]any{
		"Subject":                "Report to NCMEC for 1 file(s) uploaded by u1 2026-01-01 08:30 UTC - Report# 4242",
		"Type":                   "Child Protection",
		"Origin":                 "Takedown Tool",
		"Priority":               "Medium",
		"Incident_Type__c":       "Child Pornography (possession, manufacture, and distribution)",
		"Incident_Time__c":       "2026-01-01T08:30:00.000Z",
		"Project__c":             "Commons",
		"Uploader_Username__c":   "u1",
		"Reporter__c":            "Sam Staff <staff@example.org>",
		"Reported_At__c":         "2026-01-01T09:30:00.000Z",
		"Legal_Approved__c":      false,
		"Not_Approved_Reason__c": "urgent",
		"Actions_Taken__c":       "content removed\naccount locked\nCheckUser data included",
		"Private_Note__c":        "asked legal, ticket LEG-4411",
		"File_Count__c":          int64(1),
		"Is_Test__c":             false,
		"NCMEC_Report_Id__c":     "4242",
		"NCMEC_Status__c":        "Finished",
		"NCMEC_Finished_At__c":   "2026-01-01T10:30:00.000Z",
	}
	desc := got.Fields["Description"].(string)
	delete(got.Fields, "Description")
	if d := cmp.Diff(want, got.Fields); d != "" || got.ExternalID != c.ReportID {
		t.Errorf("case (-want +got):\n%s", d)
	}
	for _, s := range []string{c.ReportID, "Commons", "not approved: urgent", "NCMEC: finished, report 4242", "Comments for NCMEC: comment for NCMEC", "by Sam Staff <staff@example.org>"} {
		if !strings.Contains(desc, s) {
			t.Errorf("description %q lacks %q", desc, s)
		}
	}
	// The private note has its own field; the description, which tells
	// what went to NCMEC, does not repeat it.
	if strings.Contains(desc, "LEG-4411") {
		t.Errorf("description %q holds the private note", desc)
	}

	files := m.FileRecords(c)
	wantFile := map[string]any{
		"File_Name__c": "a.jpg", "Size_Bytes__c": int64(1234), "MD5__c": "m", "SHA1__c": "s1", "SHA256__c": "s256",
		"Uploaded_At__c": "2026-01-01T08:30:00.000Z", "Uploader__c": "u1", "NCMEC_Report_Id__c": "4242",
		"NCMEC_File_Id__c": "nf1", "NCMEC_Status__c": "Finished",
	}
	if len(files) != 1 || files[0].ExternalID != "f1" {
		t.Fatalf("files %v", files)
	}
	if d := cmp.Diff(wantFile, files[0].Fields); d != "" {
		t.Errorf("file (-want +got):\n%s", d)
	}
}

// The README documents every source.
func TestREADMEListsEverySource(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range mapping.Sources(true) {
		if !strings.Contains(string(b), "| `"+s+"` |") {
			t.Errorf("README.md does not list source %s", s)
		}
	}
}

// After filing again the case carries the current filing; the description
// keeps the earlier NCMEC reports and says what staff must know about
// this one.
func TestDescriptionOfAFilingAgain(t *testing.T) {
	c := cases.New("r1")
	c.Submitted = &pb.ReportSubmitted{Report: &pb.Report{Id: "r1", Filing: 3},
		Files: []*pb.File{{Id: "f1", Name: "a.jpg"}, {Id: "f2", Name: "b.jpg"}}}
	c.NCMEC = filing.Status{Filing: 3, State: filing.Finished, NCMECReportID: 9, LearnedFrom: filing.FromFinish5102, Ambiguous: 1, Past: []int64{5, 7}}
	c.Earlier = map[int64]filing.State{7: filing.Retracted}
	c.ExtraCopiesOf = []string{"f2"}
	rec := mapping.Default().CaseRecord(c)
	desc := rec.Fields["Description"].(string)
	for _, s := range []string{
		"Takedown report r1 (filing 3)",
		"NCMEC: finished, report 9",
		"Earlier filings: NCMEC report 5, NCMEC report 7 (retracted)",
		"An earlier attempt may have opened an NCMEC report that NCMEC will delete unfinished.",
		"5102 (already finished) to a repeated finish",
		"NCMEC holds an extra copy of file b.jpg without details",
	} {
		if !strings.Contains(desc, s) {
			t.Errorf("description lacks %q:\n%s", s, desc)
		}
	}
	if rec.Fields["NCMEC_Report_Id__c"] != "9" || rec.Fields["NCMEC_Status__c"] != "Finished" {
		t.Errorf("case %v", rec.Fields)
	}
	m, err := mapping.Parse([]byte(strings.Replace(string(mapping.DefaultYAML()), "Subject: report.title", "Subject: ncmec.past_report_ids", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.CaseRecord(c).Fields["Subject"]; got != "5, 7" {
		t.Errorf("ncmec.past_report_ids %q", got)
	}
}

// The case says who in legal approved a report and, where a second person
// approved it in takedown, when.
func TestDescriptionOfLegalApproval(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		report *pb.Report
		want   string
	}{
		{&pb.Report{LegalApproved: true, Approver: "Lena Legal", LegalDecidedAt: timestamppb.New(at)},
			"Legal approval: approved by Lena Legal at 2026-12-05T09:30:00Z"},
		{&pb.Report{LegalApproved: true, Approver: "Counsel"}, "Legal approval: approved by Counsel\n"},
		{&pb.Report{NotApprovedReason: "urgent"}, "Legal approval: not approved: urgent"},
	} {
		c := cases.New("r1")
		tc.report.Id = "r1"
		c.Submitted = &pb.ReportSubmitted{Report: tc.report}
		if desc := mapping.Default().CaseRecord(c).Fields["Description"].(string); !strings.Contains(desc, tc.want) {
			t.Errorf("description lacks %q:\n%s", tc.want, desc)
		}
	}
}
