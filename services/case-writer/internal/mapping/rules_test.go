package mapping_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"takedown/pkg/filing"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/reportrules"
	"takedown/pkg/reportrules/reporttest"
	"takedown/pkg/salesforce/sfsim"
	"takedown/services/case-writer/internal/cases"
	"takedown/services/case-writer/internal/mapping"
)

// submitted is the event intake publishes for a sample it accepted, marked
// test or not.
func submitted(t *testing.T, s reportrules.Sample, test bool) *pb.ReportSubmitted {
	t.Helper()
	sub := reporttest.Submitted(t, s)
	sub.Report.Test = test
	return sub
}

// states are the case's NCMEC states at their longest: a failure with a
// long message (NCMEC's, not under intake's rules), a finished report with
// the largest id.
func states(sub *pb.ReportSubmitted) []*cases.Case {
	var out []*cases.Case
	for _, n := range []filing.Status{
		{Filing: 1, State: filing.Pending},
		{Filing: 1, State: filing.Failed, NCMECReportID: math.MaxInt64, Error: strings.Repeat("e", 5000), RetractionError: strings.Repeat("r", 5000)},
		{Filing: 2, State: filing.Finished, NCMECReportID: math.MaxInt64, FinishedAt: time.Now(), Past: []int64{math.MaxInt64 - 1}, Ambiguous: 3},
	} {
		c := &cases.Case{ReportID: sub.Report.Id, Submitted: sub, NCMEC: n, NCMECFiles: map[string]string{}}
		for _, f := range sub.Files {
			c.NCMECFiles[f.Id] = strings.Repeat("f", 64) // WMF keeps up to 63
		}
		out = append(out, c)
	}
	return out
}

// lengths returns the schema's text lengths by object and field.
func lengths() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, o := range sfsim.DefaultSchema() {
		out[o.Name] = map[string]int{}
		for _, f := range o.Fields {
			out[o.Name][f.Name] = f.Length
		}
	}
	return out
}

func fits(t *testing.T, object string, fields map[string]any, max map[string]int) {
	t.Helper()
	for name, v := range fields {
		s, ok := v.(string)
		if !ok || max[name] == 0 {
			continue
		}
		if n := utf8.RuneCountInString(s); n > max[name] {
			t.Errorf("%s.%s: %d characters, the org's field holds %d (STRING_TOO_LONG): the case would fail", object, name, n, max[name])
		}
	}
}

// Every report intake accepts is cased: rendered by the default mapping,
// every value fits its field in the default org (sfsim.DefaultSchema, the
// org of the README). The longest sample puts every field at the limits of
// reportrules, so raising a limit beyond what the mapped Salesforce field
// (or the description, which holds URLs and notes) can hold fails here.
func TestDefaultMappingFitsEveryAcceptedReport(t *testing.T) {
	t.Parallel()
	m := mapping.Default()
	max := lengths()
	r := rand.New(rand.NewPCG(15, 2))
	samples := []reportrules.Sample{reportrules.LongestSample()}
	for range 200 {
		samples = append(samples, reportrules.RandomSample(r))
	}
	for i, s := range samples {
		for _, c := range states(submitted(t, s, i%2 == 0)) {
			fits(t, m.Case.Object, m.CaseRecord(c).Fields, max[m.Case.Object])
			for _, rec := range m.FileRecords(c) {
				fits(t, m.Files.Object, rec.Fields, max[m.Files.Object])
			}
			if t.Failed() {
				t.Fatalf("sample %d, NCMEC state %s", i, c.NCMEC.State)
			}
		}
	}
}

// Nothing is lost to fit: the description holds the whole of what only it
// carries, and the title's shortened uploader name is whole in its field.
func TestLongestReportIsCasedWhole(t *testing.T) {
	t.Parallel()
	m := mapping.Default()
	s := reportrules.LongestSample()
	c := states(submitted(t, s, true))[2]
	fields := m.CaseRecord(c).Fields
	desc := fields["Description"].(string)
	for _, want := range append([]string{s.Platform, s.Notes, s.NotApprovedReason, s.Escalate}, s.URLs...) {
		if !strings.Contains(desc, want) {
			t.Fatalf("the description lost %.40q…", want)
		}
	}
	for _, a := range s.Actions {
		if !strings.Contains(fields["Actions_Taken__c"].(string), a) {
			t.Fatalf("Actions_Taken__c lost %.40q…", a)
		}
	}
	if fields["Private_Note__c"] != s.PrivateNote {
		t.Fatalf("Private_Note__c is not the whole private note")
	}
	if fields["Uploader_Username__c"] != s.Username {
		t.Fatalf("Uploader_Username__c is not the whole name")
	}
	title := fields["Subject"].(string)
	if n := utf8.RuneCountInString(title); n != 255 || !strings.HasPrefix(title, "[TEST] Report to NCMEC for 2 file(s) uploaded by ") ||
		!strings.HasSuffix(title, fmt.Sprintf("… 2026-01-02 15:04 UTC - Report# %d", int64(math.MaxInt64))) {
		t.Fatalf("title (%d characters) %q", n, title)
	}
	// A short name is not shortened.
	short := states(submitted(t, reportrules.Sample{Username: "repeat-offender"}, false))[0]
	if got := m.CaseRecord(short).Fields["Subject"]; got != "Report to NCMEC for 0 file(s) uploaded by repeat-offender 2026-01-02 15:04 UTC - Report# pending" {
		t.Fatalf("title %q", got)
	}
}
