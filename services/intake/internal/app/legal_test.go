package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/app"
)

// token2 is the second development token: another staff member, the
// second person of the legal gate.
const token2 = "test-token-2"

// heldReport is goodReport without the submitter's word on legal.
const heldReport = `{"incident_type": "Child Pornography (possession, manufacture, and distribution)",
	"incident_time": "2026-01-02T15:04:05Z", "platform": "Example", "urls": ["https://example.com/x"],
	"uploader": {"username": "u1", "email": "u1@example.com", "ip": "192.0.2.1"},
	"actions_taken": ["content removed"],
	"files": [{"location_url": "https://example.com/a", "upload_time": "2026-01-01T00:00:00Z", "viewed_by_staff": true}]}`

func startLegal(t *testing.T) *harness {
	return start(t, testenv.S3(t), func(c *app.Config) { c.HoldForLegal, c.DevToken2 = true, token2 })
}

// decide posts a legal decision as the staff member of tok.
func (h *harness) decide(id, tok string, body string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/api/v1/reports/"+id+"/legal-decision", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
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

// submitHeld submits heldReport with one file and returns its id.
func (h *harness) submitHeld() string {
	h.t.Helper()
	ct, b := body(h.t, heldReport, file{"a.bin", random(2048)})
	resp, out := h.post(ct, bytes.NewReader(b), token)
	if resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("submit: %d %v", resp.StatusCode, out)
	}
	if out["status"] != "awaiting_legal" {
		h.t.Fatalf("status %v, want awaiting_legal", out["status"])
	}
	return out["id"].(string)
}

// eventOf waits for the event of type about report id in the stream.
func (h *harness) eventOf(eventType, id string) *pb.Envelope {
	h.t.Helper()
	var found *pb.Envelope
	testenv.WaitFor(h.t, 10*time.Second, func() error {
		for _, e := range h.events(eventType) {
			if e.ReportId == id {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event for %s in the stream", eventType, id)
	})
	return found
}

func errorCode(out map[string]any) any {
	e, _ := out["error"].(map[string]any)
	return e["code"]
}

// LEGAL_APPROVAL=required: a report is stored at once and goes to NCMEC
// (report.submitted, which the reporter files) only after a second person
// with the legal role approves it; the submitter cannot; a rejected
// report is never filed.
func TestLegalGateHoldsAReportUntilASecondPersonApproves(t *testing.T) {
	h := startLegal(t)

	// The submitter's own word on legal is refused, and nothing kept.
	ct, b := body(t, goodReport, file{"a.bin", random(1024)})
	if resp, out := h.post(ct, bytes.NewReader(b), token); resp.StatusCode != http.StatusBadRequest || errorCode(out) != "decided_by_legal" {
		t.Fatalf("a submission with legal_approved: %d %v, want 400 decided_by_legal", resp.StatusCode, out)
	}
	h.assertNothingStored()

	approved, rejected := h.submitHeld(), h.submitHeld()
	if n := h.count("files"); n != 2 {
		t.Fatalf("%d files stored, want 2: a held report is stored and hashed at once", n)
	}

	// The submitter may not decide; a decision needs a reason.
	if code, out := h.decide(approved, token, `{"approve": true, "reason": "looks right"}`); code != http.StatusForbidden || errorCode(out) != "second_person_required" {
		t.Fatalf("the submitter's approval: %d %v, want 403 second_person_required", code, out)
	}
	if code, out := h.decide(approved, token2, `{"approve": true, "reason": " "}`); code != http.StatusBadRequest {
		t.Fatalf("an approval without a reason: %d %v, want 400", code, out)
	}

	// The rejection: recorded, never filed.
	code, out := h.decide(rejected, token2, `{"approve": false, "reason": "not CSAM: adult content"}`)
	if code != http.StatusOK || out["status"] != "rejected" {
		t.Fatalf("reject: %d %v", code, out)
	}
	dec := h.eventOf(events.ReportLegalDecided, rejected)
	if dec.GetReportLegalDecided().GetApproved() || dec.Actor.GetId() != "dev-2" {
		t.Fatalf("rejection event %v, want approved=false by dev-2", dec)
	}

	// The approval: the filing starts, naming the approver and the time.
	code, out = h.decide(approved, token2, `{"approve": true, "reason": "apparent CSAM, report it"}`)
	if code != http.StatusOK || out["status"] != "submitted" {
		t.Fatalf("approve: %d %v", code, out)
	}
	legal := out["legal"].(map[string]any)
	if legal["state"] != "approved" || legal["decided_by"] != "dev-2" || legal["decided_at"] == nil {
		t.Fatalf("legal after approval %v", legal)
	}
	sub := h.eventOf(events.ReportSubmitted, approved).GetReportSubmitted().GetReport()
	if !sub.LegalApproved || sub.Approver != "development sign-in 2" || sub.LegalDecidedAt == nil || sub.SubmittedBy != "dev" {
		t.Fatalf("report.submitted carries legal_approved=%v approver=%q decided_at=%v submitted_by=%q",
			sub.LegalApproved, sub.Approver, sub.LegalDecidedAt, sub.SubmittedBy)
	}
	// The rejection was committed (and so relayed) before the approval:
	// had it sent a report.submitted, the stream would hold it by now.
	for _, e := range h.submitted() {
		if e.ReportId == rejected {
			t.Fatal("the rejected report was sent for filing")
		}
	}

	// A decision is taken once.
	if code, out := h.decide(approved, token2, `{"approve": false, "reason": "changed my mind"}`); code != http.StatusConflict {
		t.Fatalf("a second decision: %d %v, want 409", code, out)
	}
	if code, out := h.get("/api/v1/reports/" + rejected); code != http.StatusOK || out["status"] != "rejected" ||
		out["legal"].(map[string]any)["reason"] != "not CSAM: adult content" {
		t.Fatalf("the rejected report reads %d %v", code, out)
	}
}
