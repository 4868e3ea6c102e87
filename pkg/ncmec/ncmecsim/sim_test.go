package ncmecsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
)

func client(t *testing.T, base string) *ncmec.Client {
	t.Helper()
	c, err := ncmec.New(ncmec.Options{BaseURL: base, Username: ncmecsim.TestUsername, Password: ncmecsim.TestPassword})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func report() *ncmec.Report {
	return &ncmec.Report{
		IncidentSummary: ncmec.IncidentSummary{IncidentType: ncmec.IncidentChildPornography, IncidentDateTime: time.Now().Add(-time.Hour)},
		Reporter:        ncmec.Reporter{ReportingPerson: ncmec.Person{Email: []ncmec.Email{{Address: "a@example.com"}}}},
	}
}

func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// The admin API drives the same faults and state as the Go methods.
func TestAdminOverHTTP(t *testing.T) {
	t.Parallel()
	sim, base := ncmecsim.StartTest(t, ncmecsim.Options{Admin: true})
	root := strings.TrimSuffix(base, ncmecsim.BasePath)
	c := client(t, base)
	ctx := context.Background()

	code, body := do(t, http.MethodPost, root+"/_sim/faults", `{"endpoint": "upload", "kind": "code", "code": 1111, "times": 2, "after": 0}`)
	if code != http.StatusCreated {
		t.Fatalf("inject: %d %s", code, body)
	}
	sub, err := c.Submit(ctx, report())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Upload(ctx, sub.ReportID, "f", 1, strings.NewReader("x")); ncmec.CodeOf(err) != 1111 || !ncmec.IsRetryable(err) {
			t.Fatalf("upload under fault: %v", err)
		}
	}
	if _, err := c.Upload(ctx, sub.ReportID, "f", 1, strings.NewReader("x")); err != nil {
		t.Fatalf("upload after the fault ran out: %v", err)
	}

	code, body = do(t, http.MethodGet, root+"/_sim/faults", "")
	var listed struct {
		Faults []ncmecsim.FaultStatus `json:"faults"`
	}
	if err := json.Unmarshal(body, &listed); code != 200 || err != nil || len(listed.Faults) != 1 || listed.Faults[0].Fired != 2 {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, _ := do(t, http.MethodDelete, root+"/_sim/faults", ""); code != http.StatusNoContent || len(sim.Faults()) != 0 {
		t.Fatalf("delete: %d, %d faults left", code, len(sim.Faults()))
	}

	code, body = do(t, http.MethodGet, root+"/_sim/state", "")
	var st ncmecsim.State
	if err := json.Unmarshal(body, &st); code != 200 || err != nil {
		t.Fatalf("state: %d %s", code, body)
	}
	if len(st.Reports) != 1 || st.Reports[0].Status != "open" || len(st.Reports[0].Files) != 1 ||
		st.Reports[0].Files[0].MD5 != "9dd4e461268c8034f5c8564e155c67a6" || st.Reports[0].Files[0].Size != 1 ||
		!strings.Contains(st.Reports[0].XML, "<incidentSummary>") || st.Calls["upload"] != 3 {
		t.Errorf("state = %s", body)
	}

	code, body = do(t, http.MethodPost, root+"/_sim/faults", `{"endpoint": "nope", "kind": "code", "code": 1}`)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); code != 400 || err != nil || e.Error.Code == "" || !strings.Contains(e.Error.Message, "nope") {
		t.Errorf("bad fault: %d %s", code, body)
	}
	if code, body := do(t, http.MethodPost, root+"/_sim/faults", `{"kind": "teleport"}`); code != 400 {
		t.Errorf("unknown kind: %d %s", code, body)
	}

	if code, body := do(t, http.MethodPost, root+"/_sim/latency", `{"latency_ms": 40}`); code != 200 {
		t.Fatalf("latency: %d %s", code, body)
	}
	start := time.Now()
	if _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("status took %v with 40ms latency", d)
	}
	if st := sim.State(); st.LatencyMS != 40 {
		t.Errorf("latency in state = %d", st.LatencyMS)
	}
}

func TestAdminIsOffByDefault(t *testing.T) {
	t.Parallel()
	_, base := ncmecsim.StartTest(t, ncmecsim.Options{})
	root := strings.TrimSuffix(base, ncmecsim.BasePath)
	for _, p := range []string{"/_sim/faults", "/_sim/state"} {
		if code, _ := do(t, http.MethodGet, root+p, ""); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
}

// Request bodies are recorded; uploaded bytes are not, only their measure.
func TestRecordDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, base := ncmecsim.StartTest(t, ncmecsim.Options{RecordDir: dir})
	c := client(t, base)
	ctx := context.Background()
	sub, err := c.Submit(ctx, report())
	if err != nil {
		t.Fatal(err)
	}
	secret := "FILE-BYTES-MUST-NOT-BE-RECORDED"
	up, err := c.Upload(ctx, sub.ReportID, "f.jpg", int64(len(secret)), strings.NewReader(secret))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.FileInfo(ctx, &ncmec.FileDetails{ReportID: sub.ReportID, FileID: up.FileID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Finish(ctx, sub.ReportID); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var all bytes.Buffer
	for _, e := range entries {
		names = append(names, e.Name())
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		all.Write(b)
	}
	if len(names) != 4 || !strings.HasSuffix(names[0], "-submit.xml") || !strings.HasSuffix(names[1], "-upload.txt") ||
		!strings.HasSuffix(names[2], "-fileinfo.xml") || !strings.HasSuffix(names[3], "-finish.txt") {
		t.Fatalf("recorded %v", names)
	}
	if strings.Contains(all.String(), secret) || !strings.Contains(all.String(), up.Hash) || !strings.Contains(all.String(), "<report") {
		t.Errorf("recordings:\n%s", all.String())
	}
}

// Malformed uploads and the multipart form of finish, both seen in the wild.
func TestUploadAndFormVariants(t *testing.T) {
	t.Parallel()
	sim, base := ncmecsim.StartTest(t, ncmecsim.Options{})
	c := client(t, base)
	sub, err := c.Submit(context.Background(), report())
	if err != nil {
		t.Fatal(err)
	}
	id := func() string { return strconv.FormatInt(sub.ReportID, 10) }
	post := func(fields map[string]string, file bool, path string) int {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range fields {
			_ = mw.WriteField(k, v)
		}
		if file {
			fw, _ := mw.CreateFormFile("file", "a.bin")
			_, _ = fw.Write([]byte("abc"))
		}
		_ = mw.Close()
		req, _ := http.NewRequest(http.MethodPost, base+path, &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.SetBasicAuth(ncmecsim.TestUsername, ncmecsim.TestPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			Code int `xml:"responseCode"` // in reportResponse and reportDoneResponse
		}
		b, _ := io.ReadAll(resp.Body)
		if err := xml.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
		return r.Code
	}
	if code := post(map[string]string{"id": id()}, false, "/upload"); code != ncmec.CodeMalformedFile {
		t.Errorf("upload without file = %d, want 4200", code)
	}
	if code := post(nil, true, "/upload"); code != ncmec.CodeInvalidRequest {
		t.Errorf("upload without id = %d, want 4000", code)
	}
	if code := post(map[string]string{"id": "x"}, true, "/upload"); code != ncmec.CodeInvalidRequest {
		t.Errorf("upload with bad id = %d, want 4000", code)
	}
	if code := post(map[string]string{"id": id()}, false, "/finish"); code != 0 {
		t.Errorf("multipart finish = %d, want 0", code)
	}
	if rep, _ := sim.Report(sub.ReportID); rep.Status != ncmecsim.StatusFinished {
		t.Errorf("report = %+v", rep)
	}
}
