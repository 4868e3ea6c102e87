package app_test

import (
	"crypto/sha256"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/reports"
)

// getRaw GETs path with the development token and returns the answer.
func (h *harness) getRaw(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func listedIDs(out map[string]any) []string {
	var ids []string
	reps, _ := out["reports"].([]any)
	for _, r := range reps {
		ids = append(ids, r.(map[string]any)["id"].(string))
	}
	slices.Sort(ids)
	return ids
}

// GET /api/v1/reports finds a report by its NCMEC report id and every report
// holding a file by its SHA-256, filters and pages by cursor, refuses bad
// parameters with 400 naming the field, and ?attention=true lists a report
// whose filing failed before NCMEC opened anything, saying what happened and
// what to do.
func TestReportsListSearchesFiltersAndListsTheAttentionQueue(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	shared := []byte("the same evidence in two reports")
	a := h.submit(t, goodReport, file{"a.bin", shared})["id"].(string)
	b := h.submit(t, goodReport, file{"b.bin", shared})["id"].(string)
	testReport := strings.Replace(goodReport, `"legal_approved": true`, `"test": true, "legal_approved": true`, 1)
	c := h.submit(t, testReport, file{"c.bin", []byte("other")})["id"].(string)
	h.publish(t, b, &pb.NcmecOpened{Filing: 1, NcmecReportId: 7001, Environment: "production"})
	h.publish(t, c, &pb.NcmecFailed{Filing: 1, Step: "submit", Code: 4100, Description: "invalid URL"})
	h.await(t, b, 2)
	h.await(t, c, 2)

	sum := fmt.Sprintf("%x", sha256.Sum256(shared))
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"q=7001", []string{b}},
		{"q=" + sum, []string{a, b}},
		{"q=" + strings.ToUpper(sum) + "&status=ncmec_opened", []string{b}},
		{"environment=test", []string{c}},
		{"environment=production", []string{a, b}},
		{"status=failed,ncmec_opened", []string{b, c}},
		{"", []string{a, b, c}},
	} {
		code, out := h.get("/api/v1/reports?" + tc.query)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if code != http.StatusOK || !slices.Equal(listedIDs(out), want) {
			t.Errorf("?%s: %d %v, want %v", tc.query, code, listedIDs(out), want)
		}
	}

	// Pages of one, by cursor, newest first.
	var seen []string
	next := "/api/v1/reports?limit=1"
	for next != "" && len(seen) < 5 {
		code, out := h.get(next)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", next, code, out)
		}
		seen = append(seen, listedIDs(out)...)
		next, _ = out["next"].(string)
		if cur, _ := out["next_cursor"].(string); next != "" && !strings.Contains(next, "cursor="+cur) {
			t.Errorf("next %q does not carry next_cursor %q", next, cur)
		}
	}
	if !slices.Equal(seen, []string{c, b, a}) {
		t.Errorf("pages of one: %v, want %v", seen, []string{c, b, a})
	}

	for _, tc := range []struct{ query, field string }{
		{"status=bogus", "status"},
		{"environment=staging", "environment"},
		{"from=yesterday", "from"},
		{"from=2026-02-01&to=2026-01-01", "to"},
		{"sort=name", "sort"},
		{"limit=0", "limit"},
		{"limit=201", "limit"},
		{"cursor=not-a-cursor", "cursor"},
		{"q=" + strings.Repeat("x", 300), "q"},
		{"attention=yes", "attention"},
	} {
		code, out := h.get("/api/v1/reports?" + tc.query)
		e, _ := out["error"].(map[string]any)
		if code != http.StatusBadRequest || e["field"] != tc.field || e["message"] == "" {
			t.Errorf("?%s: %d %v, want 400 naming %s", tc.query, code, out, tc.field)
		}
	}

	code, out := h.get("/api/v1/reports?attention=true")
	queue, _ := out["attention"].([]any)
	if code != http.StatusOK || len(queue) != 1 {
		t.Fatalf("attention=true: %d %v, want the one failed report", code, out)
	}
	e := queue[0].(map[string]any)
	if e["report_id"] != c || e["reason"] != "failed_unopened" || !strings.Contains(e["what"].(string), "NCMEC opened nothing") ||
		!strings.Contains(e["do"].(string), "file the report again") || !slices.Contains(e["actions"].([]any), any("file_again")) {
		t.Errorf("attention entry: %v", e)
	}
}

// The CSV export holds the filtered reports' metadata and nothing of their
// evidence, neutralises cells a spreadsheet would run as formulas, and is
// recorded for the audit log with the filter and the number of reports.
func TestReportsCSVExportIsSafeForSpreadsheetsAndAudited(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	evil := strings.NewReplacer(`"platform": "Example"`, `"platform": "=HYPERLINK(\"http://evil.example\",\"x\")"`,
		`"username": "u1"`, `"username": "@SUM(1+1)"`, `"email": "u1@example.com"`, `"email": "+1@example.com"`).Replace(goodReport)
	content := []byte("evidence bytes never exported")
	id := h.submit(t, evil, file{"secret-name.jpg", content})["id"].(string)
	h.submit(t, goodReport, file{"other.bin", []byte("x")})

	resp, body := h.getRaw(t, "/api/v1/reports.csv?q="+id)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("the export is not CSV: %v\n%s", err, body)
	}
	if len(rows) != 2 || rows[1][0] != id {
		t.Fatalf("export of q=%s: %d rows, want the header and that report:\n%s", id, len(rows), body)
	}
	cell := map[string]string{}
	for i, name := range rows[0] {
		cell[name] = rows[1][i]
	}
	for name, want := range map[string]string{
		"platform": `'=HYPERLINK("http://evil.example","x")`, "uploader_username": "'@SUM(1+1)", "uploader_email": "'+1@example.com",
		"status": "submitted", "environment": "production", "submitted_by": "dev",
	} {
		if cell[name] != want {
			t.Errorf("cell %s = %q, want %q", name, cell[name], want)
		}
	}
	for _, row := range rows {
		for _, v := range row {
			if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
				t.Errorf("cell %q would run as a formula", v)
			}
		}
	}
	if sum := fmt.Sprintf("%x", sha256.Sum256(content)); strings.Contains(body, sum) || strings.Contains(body, "secret-name") ||
		strings.Contains(body, string(content)) || strings.Contains(body, "data_key") {
		t.Errorf("the export holds evidence (hash, file name or content) or a key:\n%s", body)
	}
	for _, v := range []string{"-1", "@", "=", "+", "\tx"} {
		if got := reports.CSVCell(v); got != "'"+v {
			t.Errorf("CSVCell(%q) = %q", v, got)
		}
	}

	var exported string
	testenv.Eventually(t, 10*time.Second, "the export recorded for the audit log", func() bool {
		for _, ev := range h.staffActions() {
			if a := ev.GetStaffAction(); a.GetAction() == reports.ActionExportCSV {
				exported = a.GetPath() + " " + a.GetDetail()
			}
		}
		return exported != ""
	})
	if !strings.Contains(exported, "/api/v1/reports.csv?q="+id) || !strings.Contains(exported, "1 reports") {
		t.Errorf("audit entry %q does not name the filter and the count", exported)
	}
}
