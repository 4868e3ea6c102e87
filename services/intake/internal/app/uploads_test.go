package app_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"takedown/pkg/evidence"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/app"
)

// rawUpload is a submission of one file of size bytes over a connection of
// its own, with its length declared, so that a test can send part of it and
// stop.
type rawUpload struct {
	t      *testing.T
	conn   net.Conn
	src    io.Reader // the file's bytes not yet sent
	suffix []byte
}

func startUpload(t *testing.T, h *harness, size int64) *rawUpload {
	t.Helper()
	var prefix bytes.Buffer
	w := multipart.NewWriter(&prefix)
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", `form-data; name="report"`)
	p, _ := w.CreatePart(hdr)
	p.Write([]byte(goodReport))
	w.CreateFormFile("file", "video.bin")
	suffix := []byte("\r\n--" + w.Boundary() + "--\r\n")
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /api/v1/reports HTTP/1.1\r\nHost: intake\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		token, w.FormDataContentType(), int64(prefix.Len())+size+int64(len(suffix)))
	if _, err := conn.Write(prefix.Bytes()); err != nil {
		t.Fatal(err)
	}
	return &rawUpload{t: t, conn: conn, src: newPattern(size), suffix: suffix}
}

// send sends n more bytes of the file.
func (u *rawUpload) send(n int64) {
	u.t.Helper()
	if _, err := io.CopyN(u.conn, u.src, n); err != nil {
		u.t.Fatal(err)
	}
}

// finish sends the rest and reads the answer.
func (u *rawUpload) finish() *http.Response {
	u.t.Helper()
	if _, err := io.Copy(u.conn, u.src); err != nil {
		u.t.Fatal(err)
	}
	u.conn.Write(u.suffix)
	return u.answer(30 * time.Second)
}

// answer reads the answer, waiting at most d.
func (u *rawUpload) answer(d time.Duration) *http.Response {
	u.t.Helper()
	u.conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(u.conn), nil)
	if err != nil {
		u.t.Fatalf("no answer within %s: %v", d, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Issue 17: a client that stops sending held its request, its buffers and
// an open S3 multipart upload for as long as the connection lived. Now a
// client slower than the minimum rate is cut off within a window, the S3
// upload is aborted and nothing is stored.
func TestStalledUploadIsCutOffAndLeavesNothing(t *testing.T) {
	s3 := testenv.S3(t)
	h := start(t, s3, func(c *app.Config) {
		c.Limits.MinRate, c.Limits.RateWindow = 256<<10, time.Second
	})
	u := startUpload(t, h, 28<<20)
	u.send(20 << 20) // more than a part: the multipart upload is open
	stalled := time.Now()
	resp := u.answer(10 * time.Second)
	t.Logf("answered %d %s after %s of silence", resp.StatusCode, resp.Status, time.Since(stalled).Round(10*time.Millisecond))
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("answer %d, want 408", resp.StatusCode)
	}
	h.assertNothingStored()
	for up := range s3.Client(t).ListIncompleteUploads(context.Background(), s3.Bucket, "", true) {
		t.Errorf("multipart upload left open: %s (%v)", up.Key, up.Err)
	}
}

// A client that sends steadily but slowly, above the minimum rate, is not
// cut off, and the time intake spends on its side (S3) is not counted.
func TestSlowButSteadyUploadIsStored(t *testing.T) {
	h := start(t, testenv.S3(t), func(c *app.Config) {
		c.Limits.MinRate, c.Limits.RateWindow = 256<<10, time.Second
	})
	u := startUpload(t, h, 3<<20)
	for range 6 { // 512 KiB every 500 ms: 1 MiB/s, four times the minimum
		u.send(512 << 10)
		time.Sleep(500 * time.Millisecond)
	}
	if resp := u.finish(); resp.StatusCode != http.StatusCreated {
		t.Fatalf("answer %d, want 201", resp.StatusCode)
	}
}

// Issue 17: concurrent uploads were unbounded. With room for one
// submission's buffers, a second waits, then is answered 503 with
// Retry-After without its body being read; once the first is done, the
// next is stored.
func TestUploadsBeyondTheMemoryBudgetGet503(t *testing.T) {
	h := start(t, testenv.S3(t), func(c *app.Config) {
		c.Limits.UploadMemory = evidence.PutMemory + 2<<20
		c.Limits.UploadMemoryWait = 300 * time.Millisecond
	})
	first := startUpload(t, h, 24<<20)
	first.send(2 << 20)
	h.waitReserved(t, func(v float64) bool { return v > evidence.PutMemory })

	ct, b := body(t, goodReport, file{"a.bin", random(100 << 10)})
	resp, out := h.post(ct, bytes.NewReader(b), token)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second submission: %d Retry-After %q %v, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), out)
	}
	if e, _ := out["error"].(map[string]any); e["code"] != "busy" {
		t.Errorf("second submission: code %v, want busy", out["error"])
	}

	if resp := first.finish(); resp.StatusCode != http.StatusCreated {
		t.Fatalf("first submission: %d, want 201", resp.StatusCode)
	}
	if resp, out := h.post(ct, bytes.NewReader(b), token); resp.StatusCode != http.StatusCreated {
		t.Errorf("after the first: %d %v, want 201", resp.StatusCode, out)
	}
	if n := h.count("reports"); n != 2 {
		t.Errorf("%d reports stored, want 2", n)
	}
	h.waitReserved(t, func(v float64) bool { return v == 0 })
}

// waitReserved waits until intake's reserved upload memory satisfies ok.
func (h *harness) waitReserved(t *testing.T, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var v float64
	for time.Now().Before(deadline) {
		resp, err := http.Get(h.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if n, found := strings.CutPrefix(sc.Text(), "takedown_intake_upload_memory_reserved_bytes "); found {
				fmt.Sscan(n, &v)
			}
		}
		resp.Body.Close()
		if ok(v) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("reserved upload memory still %v after 10 s", v)
}
