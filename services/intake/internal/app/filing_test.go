package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
)

// call sends a JSON request (body may be nil) with the development token.
func (h *harness) call(method, path string, body any) (int, map[string]any) {
	h.t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, h.url+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// await waits until the report's history holds n events, and returns it.
func (h *harness) await(t *testing.T, id string, n int) map[string]any {
	t.Helper()
	var rep map[string]any
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("%d events in the history", n), func() bool {
		_, rep = h.get("/api/v1/reports/" + id)
		evs, _ := rep["events"].([]any)
		return len(evs) >= n
	})
	return rep
}

func ncmecOf(rep map[string]any) map[string]any { m, _ := rep["ncmec"].(map[string]any); return m }

func errMessage(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// Filing 1 opens, fails and is retracted; filing 2 finishes. An event of
// filing 1 arriving late and a case write of filing 1 arriving last move
// nothing; the history keeps them.
func TestFilingGenerations(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	id := h.submit(t, goodReport, file{"a.bin", []byte("x")})["id"].(string)
	h.publish(t, id, &pb.NcmecOpened{Filing: 1, NcmecReportId: 7001, Environment: "test"})
	h.publish(t, id, &pb.NcmecFailed{Filing: 1, Step: "upload", Code: 4100, Description: "bad file", ReportOpened: true, NcmecReportId: 7001})
	rep := h.await(t, id, 3)
	if rep["status"] != "failed" || ncmecOf(rep)["state"] != "failed" || !strings.Contains(fmt.Sprint(ncmecOf(rep)["problem"]), "bad file") {
		t.Fatalf("after the failure: status %v, ncmec %v", rep["status"], rep["ncmec"])
	}
	if fmt.Sprint(rep["next_steps"]) != "[retract close]" {
		t.Errorf("next steps of a failed, opened filing: %v", rep["next_steps"])
	}
	// NCMEC report 7001 is still open: filing again would duplicate it.
	if code, out := h.call(http.MethodPost, "/api/v1/reports/"+id+"/refile", nil); code != http.StatusConflict || !strings.Contains(errMessage(out), "7001") {
		t.Fatalf("refile with an open NCMEC report: %d %v", code, out)
	}

	h.publish(t, id, &pb.NcmecRetracted{Filing: 1, NcmecReportId: 7001, Environment: "test", Reason: "bad file"})
	h.publish(t, id, &pb.CaseUpserted{CaseId: "500A", Filing: 1, State: "retracted", NcmecReportId: 7001})
	rep = h.await(t, id, 5)
	if rep["status"] != "retracted" || fmt.Sprint(rep["next_steps"]) != "[file_again]" {
		t.Fatalf("after the retraction: status %v, next steps %v; ncmec %v; history %v", rep["status"], rep["next_steps"], rep["ncmec"], rep["events"])
	}
	code, out := h.call(http.MethodPost, "/api/v1/reports/"+id+"/refile", nil)
	if code != http.StatusAccepted || out["status"] != "submitted" || out["filing"] != 2.0 || fmt.Sprint(ncmecOf(out)["past_report_ids"]) != "[7001]" {
		t.Fatalf("refile: %d %v", code, out)
	}

	h.publish(t, id, &pb.NcmecOpened{Filing: 2, NcmecReportId: 7002, Environment: "test"})
	h.publish(t, id, &pb.CaseUpserted{CaseId: "500A", Filing: 2, State: "opened", NcmecReportId: 7002})
	// Late: filing 1's finish (5102 learnt by a stale retry) and filing 1's
	// case write, both of states above "opened".
	h.publish(t, id, &pb.NcmecFinished{Filing: 1, NcmecReportId: 7001})
	h.publish(t, id, &pb.CaseUpserted{CaseId: "500A", Filing: 1, State: "finished", NcmecReportId: 7001})
	rep = h.await(t, id, 10) // + the refile's report.submitted
	n := ncmecOf(rep)
	c, _ := rep["case"].(map[string]any)
	if rep["status"] != "ncmec_opened" || n["report_id"] != 7002.0 || n["filing"] != 2.0 || fmt.Sprint(n["past_report_ids"]) != "[7001]" {
		t.Fatalf("filing 2 opened, late filing-1 events: status %v, ncmec %v", rep["status"], n)
	}
	if c["state"] != "opened" || c["filing"] != 2.0 {
		t.Fatalf("an older filing's case write moved the case: %v; history %v", c, rep["events"])
	}

	h.publish(t, id, &pb.NcmecFinished{Filing: 2, NcmecReportId: 7002})
	h.publish(t, id, &pb.CaseUpserted{CaseId: "500A", Filing: 2, State: "finished", NcmecReportId: 7002})
	rep = h.await(t, id, 12)
	n, c = ncmecOf(rep), rep["case"].(map[string]any)
	if rep["status"] != "finished" || n["state"] != "finished" || n["learned_from"] != "receipt" || n["report_id"] != 7002.0 || c["state"] != "finished" {
		t.Fatalf("filing 2 finished: status %v, ncmec %v, case %v; history %v", rep["status"], n, c, rep["events"])
	}
	if steps, _ := rep["next_steps"].([]any); len(steps) != 0 {
		t.Errorf("next steps of a finished report: %v", steps)
	}
	if code, out := h.call(http.MethodPost, "/api/v1/reports/"+id+"/refile", nil); code != http.StatusConflict || !strings.Contains(errMessage(out), "finished") {
		t.Fatalf("refile of a finished report: %d %v", code, out)
	}
	if code, _ := h.call(http.MethodPost, "/api/v1/reports/"+id+"/close", map[string]string{"reason": "done"}); code != http.StatusConflict {
		t.Fatalf("close of a finished report: %d", code)
	}
}

// A filing that failed before NCMEC opened anything is corrected and filed
// again; the new report.submitted carries the corrections.
func TestRefileWithCorrectionsAfterFailureBeforeOpen(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	id := h.submit(t, goodReport, file{"a.bin", []byte("x")})["id"].(string)
	if code, _ := h.call(http.MethodPost, "/api/v1/reports/"+id+"/refile", nil); code != http.StatusConflict {
		t.Fatalf("refile while pending: %d", code)
	}
	h.publish(t, id, &pb.NcmecFailed{Filing: 1, Step: "submit", Code: 4100, Description: "invalid URL"})
	rep := h.await(t, id, 2)
	if rep["status"] != "failed" || fmt.Sprint(rep["next_steps"]) != "[file_again close]" {
		t.Fatalf("failed before open: status %v, next steps %v", rep["status"], rep["next_steps"])
	}
	// The corrections meet the submission's rules.
	if code, out := h.call(http.MethodPost, "/api/v1/reports/"+id+"/refile", map[string]any{"urls": []string{"not a url"}}); code != http.StatusBadRequest {
		t.Fatalf("invalid correction: %d %v", code, out)
	}
	corr := map[string]any{"urls": []string{"https://example.com/corrected"}, "notes": "URL corrected",
		"files": []map[string]any{{"location_url": "https://example.com/corrected/a"}}}
	code, out := h.call(http.MethodPost, "/api/v1/reports/"+id+"/refile", corr)
	if code != http.StatusAccepted || out["filing"] != 2.0 || fmt.Sprint(out["urls"]) != "[https://example.com/corrected]" || out["platform"] != "Example" {
		t.Fatalf("corrected refile: %d %v", code, out)
	}
	var sub *pb.ReportSubmitted
	var actor *pb.Actor
	testenv.Eventually(t, 10*time.Second, "the corrected filing announced", func() bool {
		for _, e := range h.submitted() {
			if s := e.GetReportSubmitted(); e.ReportId == id && s.Report.Filing == 2 {
				sub, actor = s, e.Actor
			}
		}
		return sub != nil
	})
	if !slices.Equal(sub.Report.Urls, []string{"https://example.com/corrected"}) || sub.Report.Notes != "URL corrected" ||
		sub.Report.Uploader.Username != "u1" || sub.Files[0].LocationUrl != "https://example.com/corrected/a" {
		t.Fatalf("the new filing's event: %v; files %v", sub.Report, sub.Files)
	}
	if actor.Kind != pb.Actor_KIND_STAFF {
		t.Errorf("the refile's actor is %v, want the staff member", actor)
	}
	if _, rep = h.get("/api/v1/reports/" + id); fmt.Sprint(rep["urls"]) != "[https://example.com/corrected]" {
		t.Errorf("the corrections were not stored: %v", rep["urls"])
	}
}

// Close settles a failed filing, with a reason, through the outbox; nothing
// else can be closed.
func TestCloseFailedReport(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	id := h.submit(t, goodReport, file{"a.bin", []byte("x")})["id"].(string)
	if code, _ := h.call(http.MethodPost, "/api/v1/reports/"+id+"/close", map[string]string{"reason": "by phone"}); code != http.StatusConflict {
		t.Fatalf("close while pending: %d", code)
	}
	h.publish(t, id, &pb.NcmecFailed{Filing: 1, Step: "finish", Code: 9999, Description: "refused", ReportOpened: true, NcmecReportId: 8001})
	h.await(t, id, 2)
	if code, _ := h.call(http.MethodPost, "/api/v1/reports/"+id+"/close", map[string]string{"reason": " "}); code != http.StatusBadRequest {
		t.Fatalf("close without a reason: %d", code)
	}
	code, out := h.call(http.MethodPost, "/api/v1/reports/"+id+"/close", map[string]string{"reason": "finished with NCMEC by phone"})
	if code != http.StatusOK || out["status"] != "closed" || fmt.Sprint(out["next_steps"]) != "[file_again retract]" {
		t.Fatalf("close: %d %v", code, out)
	}
	var closed []*pb.Envelope
	testenv.Eventually(t, 10*time.Second, "report.closed published", func() bool {
		closed = h.events(events.ReportClosed)
		return len(closed) == 1
	})
	if c := closed[0].GetReportClosed(); closed[0].ReportId != id || c.Filing != 1 || c.Reason != "finished with NCMEC by phone" || closed[0].Actor.Kind != pb.Actor_KIND_STAFF {
		t.Fatalf("report.closed: %v", closed[0])
	}
	// progress folds its own event in again: nothing changes.
	rep := h.await(t, id, 3)
	if rep["status"] != "closed" || !strings.Contains(fmt.Sprint(ncmecOf(rep)["problem"]), "by phone") {
		t.Fatalf("after the event: %v %v", rep["status"], rep["ncmec"])
	}
	if code, _ := h.call(http.MethodPost, "/api/v1/reports/"+id+"/close", map[string]string{"reason": "again"}); code != http.StatusConflict {
		t.Fatalf("close of a closed report: %d", code)
	}
}

// The status page offers the next steps of a filing that failed before
// NCMEC opened anything: the correction form, prefilled, and close.
func TestStatusPageOffersNextSteps(t *testing.T) {
	s := startSite(t)
	c := s.signIn(t, "rita", "reporter", "retractor")
	id := s.submit(t, goodReport, file{"a.bin", []byte("x")})["id"].(string)
	s.publish(t, id, &pb.NcmecFailed{Filing: 1, Step: "submit", Description: "invalid URL"})
	testenv.Eventually(t, 10*time.Second, "failed", func() bool { return s.status(t, id) == "failed" })
	_, html := page(t, c, s.url+"/reports/"+id)
	for _, want := range []string{`id="correct-form"`, `https://example.com/x</textarea>`, `id="f-c-private_note"`, `id="close"`, `data-terminal="false"`} {
		if !strings.Contains(html, want) {
			t.Errorf("status page lacks %s", want)
		}
	}
	if strings.Contains(html, `id="retract"`) {
		t.Error("a retract button for a filing that opened nothing")
	}
	// Once the case shows the failure, nothing more happens by itself (no
	// service retracts what NCMEC never opened): the page stops polling.
	s.publish(t, id, &pb.CaseUpserted{CaseId: "500A", Filing: 1, State: "failed"})
	testenv.Eventually(t, 10*time.Second, "the failed page settles", func() bool {
		_, html := page(t, c, s.url+"/reports/"+id+"/live")
		return strings.Contains(html, `data-terminal="true"`)
	})
	tok := csrfOf(t, html)
	form := url.Values{"csrf_token": {tok}, "correct": {"1"}, "urls": {"https://example.com/fixed\n"}, "platform": {"Example"}, "notes": {"fixed"}, "private_note": {"asked the uploader's host"}}
	if resp := postForm(t, c, s.url+"/reports/"+id+"/refile", "application/x-www-form-urlencoded", []byte(form.Encode())); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("correct and file again: %d", resp.StatusCode)
	}
	_, rep := s.get("/api/v1/reports/" + id)
	if fmt.Sprint(rep["urls"]) != "[https://example.com/fixed]" || rep["filing"] != 2.0 || rep["private_note"] != "asked the uploader's host" {
		t.Fatalf("after the correction form: %v, filing %v, private note %v", rep["urls"], rep["filing"], rep["private_note"])
	}
	if _, html := page(t, c, s.url+"/reports/"+id+"/live"); !strings.Contains(html, `data-terminal="false"`) {
		t.Error("the page does not poll the new filing")
	}
	// The new filing finishes and its case is written: the page settles.
	s.publish(t, id, &pb.NcmecOpened{Filing: 2, NcmecReportId: 9002, Environment: "test"})
	s.publish(t, id, &pb.NcmecFinished{Filing: 2, NcmecReportId: 9002})
	s.publish(t, id, &pb.CaseUpserted{CaseId: "500B", Filing: 2, State: "finished"})
	testenv.Eventually(t, 10*time.Second, "the page settles", func() bool {
		_, html := page(t, c, s.url+"/reports/"+id+"/live")
		return strings.Contains(html, `data-terminal="true"`)
	})
}

// The status page shows the report itself (uploader, actions, comments,
// escalation, per-file details), names files in the history, and says in
// plain words what happened and what to do, as the attention queue does.
func TestStatusPageShowsTheReportAndWhatToDo(t *testing.T) {
	s := startSite(t)
	c := s.signIn(t, "rita", "reporter")
	rep := s.submit(t, goodReport, file{"holiday.jpg", []byte("x")})
	id := rep["id"].(string)
	fileID := rep["files"].([]any)[0].(map[string]any)["id"].(string)
	s.publish(t, id, &pb.EvidenceAccessed{FileId: fileID, Purpose: "upload to NCMEC"})
	s.publish(t, id, &pb.NcmecFailed{Filing: 1, Step: "submit", Code: 1000, Description: "the incident type is missing"})
	testenv.Eventually(t, 10*time.Second, "failed with the file read in its history", func() bool {
		_, r := s.get("/api/v1/reports/" + id)
		return r["status"] == "failed" && len(r["events"].([]any)) >= 3
	})
	_, html := page(t, c, s.url+"/reports/"+id)
	for _, want := range []string{
		// the report
		`id="uploader">u1, u1@example.com, IP <span class="mono">192.0.2.1</span>`, `id="actions">content removed<`,
		`id="escalation">not escalated`, `Recorded by the submitter: approved by legal@example.com`, `NCMEC production`,
		// the file's details
		`<dt>Where it was</dt><dd class="mono">https://example.com/a</dd>`, `<dt>Viewed by staff</dt><dd>yes</dd>`,
		// the history names the file
		"Evidence file holiday.jpg (#",
		// what happened and what to do
		`id="advice"`, "NCMEC opened nothing: the report is not filed.", "Correct what the failure names and file the report again.",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("status page lacks %s", want)
		}
	}
	if strings.Contains(html, fileID) {
		t.Error("the page still names the file by its id")
	}
}
