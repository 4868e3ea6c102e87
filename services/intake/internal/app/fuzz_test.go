package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"os"
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
	// The test logger may not be used once fuzzing runs (testing.F), and
	// millions of requests' lines would drown a failure's: errors only, the
	// cause of a 5xx.
	h := startLogging(f, testenv.S3(f), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	pool, err := pgxConnect(f, h.db)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { pool.Close(context.Background()) })
	client := &http.Client{Timeout: 30 * time.Second}

	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		h := *h
		h.t = t
		reports := func() int {
			var n int
			if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM intake.reports`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		reportsBefore, objectsBefore := reports(), len(h.objects())

		req, err := http.NewRequest(http.MethodPost, h.url+"/api/v1/reports", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", mime.FormatMediaType("multipart/form-data", map[string]string{"boundary": boundary}))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
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
			if reportsAfter != reportsBefore+1 || objectsAfter != objectsBefore+len(out.Files) || len(out.Files) == 0 {
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
	})
}
