package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"takedown/pkg/testenv"
)

// FuzzSubmit posts multipart bodies to the running intake (real
// PostgreSQL, NATS and S3): whatever a client sends, the answer is 201 with
// the report and every one of its files stored, or a 4xx naming the problem
// with nothing stored; never a 5xx, which would call the client's mistake
// ours, and never a hang. The seeds (testdata/fuzz/FuzzSubmit) are valid
// and broken submissions; make fuzz explores further.
func FuzzSubmit(f *testing.F) {
	h := startLogging(f, testenv.S3(f), fuzzLog())
	client := &http.Client{Timeout: 30 * time.Second}
	check := checker(f, h)

	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		req, err := http.NewRequest(http.MethodPost, h.url+"/api/v1/reports", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", mime.FormatMediaType("multipart/form-data", map[string]string{"boundary": boundary}))
		req.Header.Set("Authorization", "Bearer "+token)
		check(t, func() (*http.Response, error) { return client.Do(req) })
	})
}

// FuzzForm posts fuzzed report forms, as the signed-in staff member's
// browser would, to the running intake: its field parser (readFields,
// formInput) must hold to FuzzSubmit's rules. The forgery protection token
// comes first, as the form sends it, so that the fuzzed fields reach the
// parser; the seeds (testdata/fuzz/FuzzForm) are the form's fields after it.
func FuzzForm(f *testing.F) {
	s := startSiteLogging(f, fuzzLog())
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	s.user("fuzz", "reporter")
	resp, err := client.Get(s.url + "/auth/login?next=/")
	if err != nil {
		f.Fatal(err)
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(html)
	if m == nil {
		f.Fatalf("signed in with %d, but no forgery protection token in the form", resp.StatusCode)
	}
	first := "--B\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n" + string(m[1]) + "\r\n"
	check := checker(f, s.harness)

	f.Fuzz(func(t *testing.T, fields []byte) {
		req, err := http.NewRequest(http.MethodPost, s.url+"/reports", io.MultiReader(strings.NewReader(first), bytes.NewReader(fields)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		req.Header.Set("Accept", "application/json") // as the page's script asks
		check(t, func() (*http.Response, error) { return client.Do(req) })
	})
}

// fuzzLog is the service's log under fuzzing: the test logger may not be
// used once fuzzing runs (testing.F), and millions of requests' lines would
// drown a failure's. Errors only, the cause of a 5xx.
func fuzzLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// checker returns the rule every fuzzed submission holds to: 201 with the
// report and at least one file stored, or a 4xx with an error code and
// nothing stored; never a 5xx, and an answer within the client's timeout.
func checker(f *testing.F, h0 *harness) func(t *testing.T, post func() (*http.Response, error)) {
	pool, err := pgxConnect(f, h0.db)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { pool.Close(context.Background()) })
	return func(t *testing.T, post func() (*http.Response, error)) {
		t.Helper()
		h := *h0
		h.t = t
		reports := func() int {
			var n int
			if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM intake.reports`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		reportsBefore, objectsBefore := reports(), len(h.objects())
		resp, err := post()
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		var out struct {
			Files []json.RawMessage `json:"files"`
			Error *struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		derr := json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if derr != nil {
			t.Fatalf("status %d with an answer that is not JSON: %v", resp.StatusCode, derr)
		}

		reportsAfter, objectsAfter := reports(), len(h.objects())
		switch {
		case resp.StatusCode == http.StatusCreated:
			// The form's answer names the report, not its files.
			files := max(len(out.Files), 1)
			if reportsAfter != reportsBefore+1 || objectsAfter < objectsBefore+files ||
				(len(out.Files) > 0 && objectsAfter != objectsBefore+len(out.Files)) {
				t.Fatalf("201 with %d files, but reports %d→%d and objects %d→%d",
					len(out.Files), reportsBefore, reportsAfter, objectsBefore, objectsAfter)
			}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			if out.Error == nil || out.Error.Code == "" {
				t.Errorf("status %d without an error code", resp.StatusCode)
			}
			if reportsAfter != reportsBefore || objectsAfter != objectsBefore {
				t.Fatalf("refused with %d, but reports %d→%d and objects %d→%d",
					resp.StatusCode, reportsBefore, reportsAfter, objectsBefore, objectsAfter)
			}
		default:
			t.Fatalf("status %d for a client's body (error %+v)", resp.StatusCode, out.Error)
		}
	}
}
