package stack

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/salesforce/sfsim"
)

// Submitted is a report a test submitted: its marker key, intake's id and
// how many files it has.
type Submitted struct {
	Key   string
	ID    string
	Files int
	// Attempts to submit it (intake or S3 away). Every attempt carries the
	// same Idempotency-Key, so none is stored twice.
	Attempts int
}

// Outcomes of a report.
const (
	OutcomeFinished  = "finished"  // finished once at NCMEC
	OutcomeRetracted = "retracted" // opened at NCMEC, then retracted
	OutcomeNotFiled  = "not_filed" // failed before NCMEC opened a report; nothing to retract
)

// Result is what Check found.
type Result struct {
	Outcomes   map[string]string // intake id → outcome
	Duplicates int               // NCMEC reports opened beside the one filed, all retracted
	// LeftToExpire counts NCMEC reports opened by a /submit whose answer
	// was lost: open, unknown to us, left for NCMEC to delete while the
	// filing opened a fresh report (DESIGN.md §5).
	LeftToExpire int
	// AmbiguousSubmits counts /submit attempts whose answer was lost, and
	// AmbiguousFailed the reports whose filing gave up after too many.
	AmbiguousSubmits, AmbiguousFailed int
	// FinishedBy5102 counts reports whose finish was learnt from NCMEC's
	// "already finished" (a lost receipt), not from a receipt.
	FinishedBy5102 int
	// DuplicateFiles counts identical copies of a file NCMEC holds because
	// an upload's answer was lost and the upload repeated.
	DuplicateFiles int
	Problems       []string // broken invariants; empty when all hold
}

// finalStatuses are the statuses after which nothing more happens to a
// report by itself.
var finalStatuses = []string{"finished", "retracted", "failed"}

// Settled says whether a report has come to rest: a final status, and a case
// written in the report's final NCMEC state.
func Settled(r Report) bool {
	if !slices.Contains(finalStatuses, r.Status) || r.Case.ID == "" {
		return false
	}
	// A failed filing is followed by a retraction when NCMEC had opened a report.
	if r.Status == "failed" && r.NCMEC.ReportID != 0 {
		return false
	}
	return strings.EqualFold(r.Case.State, r.NCMEC.State) || (r.NCMEC.State == "" && r.Case.State != "")
}

// Check compares every report across intake, the NCMEC simulator, the
// Salesforce simulator and the audit log (issue 9's invariants).
func (s *Stack) Check(ctx context.Context, reports []Submitted) Result {
	res := Result{Outcomes: map[string]string{}}
	fail := func(format string, args ...any) { res.Problems = append(res.Problems, fmt.Sprintf(format, args...)) }

	// Intake's view of every report first: which ones failed at an
	// ambiguous /submit decides which open NCMEC report is accounted for.
	intake := map[string]Report{}
	ambiguous := map[string]int{} // key → /submit attempts whose answer was lost
	for _, sub := range reports {
		rep, err := s.Report(ctx, sub.ID)
		if err != nil {
			continue // reported below
		}
		intake[sub.ID] = rep
		ambiguous[sub.Key] += rep.NCMEC.AmbiguousSubmits
		res.AmbiguousSubmits += rep.NCMEC.AmbiguousSubmits
		if AmbiguousSubmit(rep) {
			res.AmbiguousFailed++
		}
		if rep.NCMEC.LearnedFrom != "" && rep.NCMEC.LearnedFrom != "receipt" {
			res.FinishedBy5102++
		}
	}

	sim := s.NCMEC.State()
	byKey := map[string][]ncmecsim.ReportState{}
	for _, r := range sim.Reports {
		key := ""
		if i := strings.Index(r.XML, "e2e-key:"); i >= 0 {
			key = r.XML[i+len("e2e-key:"):]
			key = key[:strings.IndexByte(key, ';')]
		}
		if r.Status == ncmecsim.StatusOpen || r.Status == ncmecsim.StatusExpired {
			// A /submit whose answer was lost opened this report, and its id
			// never reached us: by design (DESIGN.md §5) NCMEC deletes it
			// unfinished and the filing opened a fresh report. Those are the
			// open reports allowed: no files, at most one per ambiguous
			// /submit intake recorded for a report with its key.
			if key != "" && ambiguous[key] > 0 && len(r.Files) == 0 {
				ambiguous[key]--
				res.LeftToExpire++
				continue
			}
			fail("NCMEC report %d is left %s", r.ID, r.Status)
		}
		if key != "" {
			byKey[key] = append(byKey[key], r)
		}
	}
	cases := map[string][]sfsim.Record{}
	for _, c := range s.SF.Records(sfsim.CaseObject) {
		id, _ := c[sfsim.CaseReportID].(string)
		cases[id] = append(cases[id], c)
	}
	children := map[string][]sfsim.Record{}
	for _, f := range s.SF.Records(sfsim.FileObject) {
		id, _ := f[sfsim.FileCase].(string)
		children[id] = append(children[id], f)
	}

	if err := s.WaitAudited(ctx); err != nil {
		fail("audit log: %v", err)
	}
	v, err := s.VerifyAudit(ctx)
	if err != nil {
		fail("audit verify: %v", err)
	} else if !v.OK {
		fail("audit chain does not verify: %+v", v.FirstBad)
	}
	audit, err := s.Audit(ctx, "")
	if err != nil {
		fail("audit list: %v", err)
	}
	inAudit := map[string]int{}
	for _, e := range audit {
		inAudit[e.EventID]++
	}
	for id, n := range inAudit {
		if n > 1 {
			fail("audit holds event %s %d times", id, n)
		}
	}

	for _, sub := range reports {
		rep, ok := intake[sub.ID]
		if !ok {
			_, err := s.Report(ctx, sub.ID)
			fail("report %s (%s): intake: %v", sub.Key, sub.ID, err)
			continue
		}
		where := fmt.Sprintf("report %s (%s)", sub.Key, sub.ID)
		if len(rep.Files) != sub.Files {
			fail("%s: intake has %d files, want %d", where, len(rep.Files), sub.Files)
		}

		// NCMEC: finished exactly once, or retracted; extra reports opened
		// by an ambiguous submit must all be retracted.
		var finished []ncmecsim.ReportState
		for _, r := range byKey[sub.Key] {
			if r.Status == ncmecsim.StatusFinished {
				finished = append(finished, r)
			}
		}
		opened := len(byKey[sub.Key])
		switch {
		case len(finished) > 1:
			fail("%s: finished %d times at NCMEC", where, len(finished))
		case len(finished) == 1:
			res.Outcomes[sub.ID] = OutcomeFinished
			res.Duplicates += opened - 1
			if rep.Status != "finished" || rep.NCMEC.ReportID != finished[0].ID {
				fail("%s: NCMEC finished report %d, intake says %s with NCMEC report %d", where, finished[0].ID, rep.Status, rep.NCMEC.ReportID)
			}
			// NCMEC holds our files and nothing else. An /upload whose
			// answer was lost is repeated (services/ncmec-reporter README,
			// "Duplicates"): an extra file is allowed only as an identical
			// copy (same MD5) of one of ours.
			if n := len(finished[0].Files); n < sub.Files {
				fail("%s: NCMEC report %d has %d files, want %d", where, finished[0].ID, n, sub.Files)
			} else {
				res.DuplicateFiles += n - sub.Files
			}
			for _, nf := range finished[0].Files {
				if !slices.ContainsFunc(rep.Files, func(f ReportFile) bool { return strings.EqualFold(f.MD5, nf.MD5) }) {
					fail("%s: NCMEC report %d holds file %s (MD5 %s), which is none of ours", where, finished[0].ID, nf.ID, nf.MD5)
				}
			}
			for _, f := range rep.Files {
				if !slices.ContainsFunc(finished[0].Files, func(nf ncmecsim.FileState) bool { return nf.ID == f.NCMECFileID && nf.MD5 == f.MD5 }) {
					fail("%s: file %s (NCMEC id %q, MD5 %s) is not in NCMEC report %d", where, f.ID, f.NCMECFileID, f.MD5, finished[0].ID)
				}
			}
		case opened > 0:
			res.Outcomes[sub.ID] = OutcomeRetracted
			res.Duplicates += opened - 1
			if rep.Status != "retracted" {
				fail("%s: retracted at NCMEC, intake says %s", where, rep.Status)
			}
		default:
			res.Outcomes[sub.ID] = OutcomeNotFiled
			if rep.Status != "failed" {
				fail("%s: never opened at NCMEC, intake says %s", where, rep.Status)
			}
		}

		// Salesforce: one case in the final state, one child per file.
		cs := cases[sub.ID]
		if len(cs) != 1 {
			fail("%s: %d Salesforce cases, want 1", where, len(cs))
		} else {
			c := cs[0]
			caseID, _ := c["Id"].(string)
			if got, want := fmt.Sprint(c["NCMEC_Status__c"]), sfState(res.Outcomes[sub.ID]); got != want {
				fail("%s: case %s has NCMEC status %s, want %s", where, caseID, got, want)
			}
			if res.Outcomes[sub.ID] == OutcomeFinished && fmt.Sprint(c["NCMEC_Report_Id__c"]) != fmt.Sprint(rep.NCMEC.ReportID) {
				fail("%s: case %s has NCMEC report id %v, want %d", where, caseID, c["NCMEC_Report_Id__c"], rep.NCMEC.ReportID)
			}
			kids := children[caseID]
			if len(kids) != sub.Files {
				fail("%s: case %s has %d file records, want %d", where, caseID, len(kids), sub.Files)
			}
			for _, f := range rep.Files {
				if !slices.ContainsFunc(kids, func(k sfsim.Record) bool { return k[sfsim.FileID] == f.ID && k["SHA256__c"] == f.SHA256 }) {
					fail("%s: case %s has no record of file %s", where, caseID, f.ID)
				}
			}
			if rep.Case.ID != "" && !strings.HasPrefix(caseID, rep.Case.ID[:min(15, len(rep.Case.ID))]) {
				fail("%s: intake names case %s, Salesforce holds %s", where, rep.Case.ID, caseID)
			}
		}

		// Audit: every event intake saw about the report, once.
		for _, e := range rep.Events {
			if e.ID != "" && inAudit[e.ID] != 1 {
				fail("%s: event %s (%s) is in the audit log %d times", where, e.ID, e.Type, inAudit[e.ID])
			}
		}
	}
	return res
}

// AmbiguousSubmit says whether the reporter gave up on a report because its
// /submit failed ambiguously too many times in a row.
func AmbiguousSubmit(r Report) bool {
	return r.Status == "failed" && r.NCMEC.ReportID == 0 && strings.Contains(r.NCMEC.LastError, "/submit failed ambiguously")
}

func sfState(outcome string) string {
	switch outcome {
	case OutcomeFinished:
		return "Finished"
	case OutcomeRetracted:
		return "Retracted"
	}
	return "Failed"
}

// Describe is one report everywhere it lives: intake's view, the NCMEC
// simulator's reports carrying its marker, its Salesforce case and the
// lines of every service's log that name it.
func (s *Stack) Describe(ctx context.Context, sub Submitted) string {
	var b strings.Builder
	fmt.Fprintf(&b, "report %s (%s), %d files, %d submission attempts\n", sub.Key, sub.ID, sub.Files, sub.Attempts)
	r, err := s.Report(ctx, sub.ID)
	fmt.Fprintf(&b, "  intake: err %v status %s NCMEC %+v case %+v\n", err, r.Status, r.NCMEC, r.Case)
	for _, e := range r.Events {
		fmt.Fprintf(&b, "    event %s %s %s\n", e.ID, e.Type, e.Summary)
	}
	for _, nr := range s.NCMEC.State().Reports {
		if strings.Contains(nr.XML, Marker(sub.Key)) {
			fmt.Fprintf(&b, "  NCMEC report %d: %s, %d files\n", nr.ID, nr.Status, len(nr.Files))
		}
	}
	for _, c := range s.SF.Records(sfsim.CaseObject) {
		if id, _ := c[sfsim.CaseReportID].(string); id == sub.ID {
			fmt.Fprintf(&b, "  Salesforce case %v: NCMEC status %v, report id %v\n", c["Id"], c["NCMEC_Status__c"], c["NCMEC_Report_Id__c"])
		}
	}
	for _, l := range s.LogLines(sub.ID, 25) {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	return b.String()
}
