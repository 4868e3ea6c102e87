package app_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"takedown/pkg/testenv"
)

// The scrape-time gauges count reports by status and show the oldest
// unfinished one, which the alert TakedownReportStuck watches.
func TestMetricsReportsByStatusAndOldestUnfinished(t *testing.T) {
	h := start(t, testenv.S3(t))
	ct, b := body(t, goodReport, file{"a.bin", random(1000)})
	if resp, out := h.post(ct, bytes.NewReader(b), token); resp.StatusCode != http.StatusCreated {
		t.Fatalf("submit: %d %v", resp.StatusCode, out)
	}
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`takedown_intake_reports{status="submitted"} 1`,
		`takedown_intake_reports{status="finished"} 0`,
		"takedown_intake_oldest_unfinished_report_age_seconds ",
		// The attention queue by reason, zeros included: a report just
		// submitted is owed nothing yet.
		`takedown_intake_reports_needing_attention{reason="failed_unopened"} 0`,
		`takedown_intake_reports_needing_attention{reason="stalled"} 0`,
		`takedown_intake_oldest_report_needing_attention_age_seconds{reason="retracted"} 0`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(string(text), "takedown_intake_oldest_unfinished_report_age_seconds 0\n") {
		t.Error("oldest unfinished report age is 0 with a report submitted")
	}
}
