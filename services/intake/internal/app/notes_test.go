package app_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/reportrules"
	"takedown/pkg/testenv"
)

const privateNote = "asked legal to delete, ticket LEG-4411"

// The private note is stored, returned, carried to the case in the event,
// and kept when a report is corrected and filed again; one over the limit
// is refused naming the field, with nothing stored.
func TestPrivateNoteStoredReturnedAndKeptOnCorrection(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))

	tooLong := strings.Replace(goodReport, `"actions_taken"`,
		fmt.Sprintf(`"private_note": %q, "actions_taken"`, strings.Repeat("n", reportrules.MaxPrivateNote+1)), 1)
	ct, b := body(t, tooLong, file{"a.bin", []byte("x")})
	resp, out := h.post(ct, bytes.NewReader(b), token)
	if e, _ := out["error"].(map[string]any); resp.StatusCode != http.StatusBadRequest || e["field"] != "private_note" {
		t.Fatalf("a private note over the limit: %d %v", resp.StatusCode, out)
	}
	h.assertNothingStored()

	withNote := strings.Replace(goodReport, `"actions_taken": ["content removed"]`,
		fmt.Sprintf(`"private_note": %q, "notes": "for NCMEC", "actions_taken": ["content removed", "CheckUser data included"]`, privateNote), 1)
	rep := h.submit(t, withNote, file{"a.bin", []byte("x")})
	id := rep["id"].(string)
	if rep["private_note"] != privateNote {
		t.Fatalf("the answer's private note: %v", rep["private_note"])
	}
	_, got := h.get("/api/v1/reports/" + id)
	if got["private_note"] != privateNote || got["notes"] != "for NCMEC" ||
		fmt.Sprint(got["actions_taken"]) != "[content removed CheckUser data included]" {
		t.Fatalf("stored: private note %v, notes %v, actions %v", got["private_note"], got["notes"], got["actions_taken"])
	}
	filed := func(filing uint32) *pb.Report {
		var r *pb.Report
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("filing %d announced", filing), func() bool {
			for _, e := range h.submitted() {
				if s := e.GetReportSubmitted(); e.ReportId == id && s.Report.Filing == filing {
					r = s.Report
				}
			}
			return r != nil
		})
		return r
	}
	if r := filed(1); r.PrivateNote != privateNote || !slices.Contains(r.ActionsTaken, "CheckUser data included") {
		t.Fatalf("the event for the case: private note %q, actions %q", r.PrivateNote, r.ActionsTaken)
	}

	// Corrected and filed again: the correction leaves the note alone.
	h.publish(t, id, &pb.NcmecFailed{Filing: 1, Step: "submit", Code: 4100, Description: "invalid URL"})
	h.await(t, id, 2)
	if code, out := h.call(http.MethodPost, "/api/v1/reports/"+id+"/refile", map[string]any{"notes": "URL corrected"}); code != http.StatusAccepted || out["private_note"] != privateNote {
		t.Fatalf("corrected refile: %d %v", code, out)
	}
	if r := filed(2); r.PrivateNote != privateNote || r.Notes != "URL corrected" {
		t.Fatalf("the new filing: private note %q, notes %q", r.PrivateNote, r.Notes)
	}
	if _, got = h.get("/api/v1/reports/" + id); got["private_note"] != privateNote {
		t.Fatalf("after the correction: private note %v", got["private_note"])
	}
}

// The form says which note goes where and offers the statements beside
// the actions; what it posts is stored, and the status page shows the
// private note under its own heading apart from the comments for NCMEC.
func TestFormSeparatesPrivateNoteFromCommentsForNCMEC(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	c := s.signIn(t, "rita", "reporter")
	_, html := page(t, c, s.url+"/")
	for _, want := range []string{
		`<label for="f-notes">Comments for NCMEC (sent with the report)</label>`,
		`<label for="f-private_note">Private note (this system and the case only, never sent to NCMEC)</label>`,
		`name="private_note"`,
		`value="e-mail sent to legal for deletion"`, `value="CheckUser data included"`, `value="content removed"`,
		"Statements (internal, never sent to NCMEC)",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the form lacks %s", want)
		}
	}
	if i, j := strings.Index(html, `id="statements"`), strings.Index(html, `value="CheckUser data included"`); i < 0 || j < i {
		t.Error("the statements are not in their own group")
	}

	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("csrf_token", csrfOf(t, html))
	w.WriteField("incident_time", "2026-01-02T15:04")
	w.WriteField("actions_taken", "content removed")
	w.WriteField("actions_taken", "e-mail sent to legal for deletion")
	w.WriteField("notes", "seen twice")
	w.WriteField("private_note", privateNote)
	p, _ := w.CreateFormFile("file", "a.jpg")
	p.Write([]byte("evidence"))
	w.Close()
	resp := postForm(t, c, s.url+"/reports", w.FormDataContentType(), buf.Bytes())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("form post: %d", resp.StatusCode)
	}
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/reports/")
	if _, rep := s.get("/api/v1/reports/" + id); rep["private_note"] != privateNote || rep["notes"] != "seen twice" {
		t.Fatalf("stored from the form: private note %v, notes %v", rep["private_note"], rep["notes"])
	}
	_, html = page(t, c, s.url+"/reports/"+id)
	for _, want := range []string{
		`<dt>Comments for NCMEC</dt><dd id="notes" class="notes">seen twice</dd>`,
		`id="private-note" class="notes">` + privateNote + `</dd>`,
		`id="actions">content removed; e-mail sent to legal for deletion<`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the status page lacks %s", want)
		}
	}
}
