package ncmec_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
)

var (
	fileIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
	md5RE    = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// The whole filing, every endpoint, with XSD validation on.
func TestFullFiling(t *testing.T) {
	t.Parallel()
	needXMLLint(t)
	sim, c := startSim(t, ncmecsim.Options{XSDPath: xsdPath(t)})
	ctx := ctx(t)

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.Description, "Remote User : "+ncmecsim.TestUsername+", Remote Ip : ") || st.RequestID == "" {
		t.Errorf("status = %+v", st)
	}
	xsd, err := c.XSD(ctx)
	if err != nil || !bytes.Contains(xsd, []byte(`name="reportDoneResponse"`)) {
		t.Fatalf("xsd: %v (%d bytes)", err, len(xsd))
	}

	doc, err := ncmec.EncodeReport(maximalReport())
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.SubmitXML(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if sub.ReportID <= 0 || sub.RequestID == "" {
		t.Fatalf("submit = %+v", sub)
	}

	var fileIDs []string
	for i, content := range [][]byte{randomBytes(t, 300<<10), {}, []byte("small")} {
		up, err := c.Upload(ctx, sub.ReportID, fmt.Sprintf("f%d.jpg", i), int64(len(content)), bytes.NewReader(content))
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		if !fileIDRE.MatchString(up.FileID) || up.Hash != md5hex(content) || up.SentMD5 != up.Hash || up.Size != int64(len(content)) {
			t.Fatalf("upload %d = %+v", i, up)
		}
		fileIDs = append(fileIDs, up.FileID)
		fi, err := c.FileInfo(ctx, maximalFileDetails(sub.ReportID, up.FileID))
		if err != nil {
			t.Fatalf("fileinfo %d: %v", i, err)
		}
		if fi.ReportID != sub.ReportID || fi.FileID != up.FileID {
			t.Errorf("fileinfo = %+v", fi)
		}
	}

	done, err := c.Finish(ctx, sub.ReportID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fileIDs, done.Files.IDs); diff != "" || done.ReportID != sub.ReportID {
		t.Errorf("finish files (-want +got):\n%s", diff)
	}
	if !bytes.Contains(done.Raw, []byte("<reportDoneResponse>")) {
		t.Errorf("receipt not kept: %s", done.Raw)
	}

	rep, ok := sim.Report(sub.ReportID)
	if !ok || rep.Status != ncmecsim.StatusFinished || rep.XML != string(doc) || len(rep.Files) != 3 {
		t.Fatalf("sim state = %+v", rep)
	}
	if rep.Files[0].Size != 300<<10 || !md5RE.MatchString(rep.Files[0].MD5) || !strings.Contains(rep.Files[0].Details, "<fileDetails") {
		t.Errorf("file state = %+v", rep.Files[0])
	}
}

func TestSubmitRefusedByXSDAndFutureDate(t *testing.T) {
	t.Parallel()
	needXMLLint(t)
	clock := &fakeClock{now: time.Now()}
	_, c := startSim(t, ncmecsim.Options{XSDPath: xsdPath(t), Now: clock.Now})
	ctx := ctx(t)

	_, err := c.SubmitXML(ctx, []byte(`<report><reporter><reportingPerson/></reporter></report>`))
	var e *ncmec.Error
	if !errors.As(err, &e) || e.Code != ncmec.CodeValidationFailed || !ncmec.IsPermanent(err) || ncmec.IsAmbiguous(err) {
		t.Fatalf("invalid report: %v", err)
	}
	if !strings.Contains(e.Description, "incidentSummary") {
		t.Errorf("4100 should carry the validator's message, got %q", e.Description)
	}

	_, err = c.SubmitXML(ctx, []byte(`<report><incidentSummary>`))
	if ncmec.CodeOf(err) != ncmec.CodeMalformedXML {
		t.Errorf("malformed XML: %v", err)
	}

	future := minimalReport()
	future.IncidentSummary.IncidentDateTime = clock.Now().Add(time.Minute)
	_, err = c.Submit(ctx, future)
	if !errors.As(err, &e) || e.Code != ncmec.CodeValidationFailed || !strings.Contains(e.Description, "must be a past date") {
		t.Fatalf("future incidentDateTime: %v", err)
	}

	bad := maximalFileDetails(1, "nope")
	bad.FileAnnotations = nil
	doc, _ := ncmec.EncodeFileDetails(bad)
	doc = bytes.Replace(doc, []byte("<fileName>"), []byte("<bogus/><fileName>"), 1)
	if _, err := c.FileInfoXML(ctx, doc); ncmec.CodeOf(err) != ncmec.CodeValidationFailed {
		t.Errorf("invalid fileDetails: %v", err)
	}
}

// State rules as API.md documents them (§2.3, §4.2, §7).
func TestStateRules(t *testing.T) {
	t.Parallel()
	_, c := startSim(t, ncmecsim.Options{})
	ctx := ctx(t)
	open := func() int64 {
		r, err := c.Submit(ctx, minimalReport())
		if err != nil {
			t.Fatal(err)
		}
		return r.ReportID
	}
	upload := func(id int64) (string, error) {
		r, err := c.Upload(ctx, id, "x.jpg", 3, strings.NewReader("abc"))
		if err != nil {
			return "", err
		}
		return r.FileID, nil
	}
	fileinfo := func(id int64, fileID string) error {
		_, err := c.FileInfo(ctx, &ncmec.FileDetails{ReportID: id, FileID: fileID})
		return err
	}
	finish := func(id int64) error { _, err := c.Finish(ctx, id); return err }
	retract := func(id int64) error { _, err := c.Retract(ctx, id); return err }

	finished, retracted, other := open(), open(), open()
	fid, err := upload(finished)
	if err != nil {
		t.Fatal(err)
	}
	otherFile, err := upload(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := finish(finished); err != nil {
		t.Fatal(err)
	}
	if err := retract(retracted); err != nil {
		t.Fatal(err)
	}
	const unknown = 123
	cases := []struct {
		name string
		call func() error
		code int
	}{
		{"upload to unknown report", func() error { _, err := upload(unknown); return err }, ncmec.CodeReportNotFound},
		{"upload after finish", func() error { _, err := upload(finished); return err }, ncmec.CodeAlreadyFinished},
		{"upload after retract", func() error { _, err := upload(retracted); return err }, ncmec.CodeAlreadyRetracted},
		{"fileinfo for unknown report", func() error { return fileinfo(unknown, otherFile) }, ncmec.CodeReportNotFound},
		{"fileinfo for unknown file", func() error { return fileinfo(other, strings.Repeat("0", 32)) }, ncmec.CodeFileNotFound},
		{"fileinfo for another report's file", func() error { return fileinfo(other, fid) }, ncmec.CodeFileNotFound},
		{"fileinfo after finish", func() error { return fileinfo(finished, fid) }, ncmec.CodeAlreadyFinished},
		{"finish twice", func() error { return finish(finished) }, ncmec.CodeAlreadyFinished},
		{"finish after retract", func() error { return finish(retracted) }, ncmec.CodeAlreadyRetracted},
		{"finish unknown", func() error { return finish(unknown) }, ncmec.CodeReportNotFound},
		{"retract after finish", func() error { return retract(finished) }, ncmec.CodeAlreadyFinished},
		{"retract twice", func() error { return retract(retracted) }, ncmec.CodeAlreadyRetracted},
		{"retract unknown", func() error { return retract(unknown) }, ncmec.CodeReportNotFound},
	}
	for _, tc := range cases {
		err := tc.call()
		var e *ncmec.Error
		if !errors.As(err, &e) || e.Code != tc.code || !ncmec.IsState(err) || ncmec.IsRetryable(err) || e.HTTPStatus != 200 || e.RequestID == "" {
			t.Errorf("%s: got %v, want state error %d", tc.name, err, tc.code)
		}
	}
	// The open report is untouched by all of that.
	if err := finish(other); err != nil {
		t.Errorf("finish other: %v", err)
	}
}

// Unfinished reports expire at max(opened+24h, last change+1h).
func TestExpiry(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Now()}
	sim, c := startSim(t, ncmecsim.Options{Now: clock.Now})
	ctx := ctx(t)

	idle, err := c.Submit(ctx, minimalReport())
	if err != nil {
		t.Fatal(err)
	}
	busy, err := c.Submit(ctx, minimalReport())
	if err != nil {
		t.Fatal(err)
	}
	upload := func(id int64) error {
		_, err := c.Upload(ctx, id, "x", 1, strings.NewReader("x"))
		return err
	}

	clock.Advance(23*time.Hour + 30*time.Minute)
	if err := upload(busy.ReportID); err != nil { // last change at 23h30: deadline 24h30
		t.Fatal(err)
	}
	clock.Advance(31 * time.Minute) // 24h01
	if err := upload(idle.ReportID); ncmec.CodeOf(err) != ncmec.CodeReportNotFound {
		t.Fatalf("idle report after 24h: %v, want 5001", err)
	}
	if err := upload(busy.ReportID); err != nil { // still alive; deadline now 25h01
		t.Fatalf("busy report at 24h01: %v", err)
	}
	clock.Advance(59 * time.Minute) // 25h00
	if rep, _ := sim.Report(busy.ReportID); rep.Status != ncmecsim.StatusOpen || rep.ExpiresAt == nil {
		t.Fatalf("busy report at 25h00: %+v", rep)
	}
	clock.Advance(2 * time.Minute) // 25h02
	if _, err := c.Finish(ctx, busy.ReportID); ncmec.CodeOf(err) != ncmec.CodeReportNotFound {
		t.Fatalf("finish after expiry: %v, want 5001", err)
	}
	if _, err := c.Retract(ctx, busy.ReportID); ncmec.CodeOf(err) != ncmec.CodeReportNotFound {
		t.Fatalf("retract after expiry: %v, want 5001", err)
	}
	for _, r := range sim.State().Reports {
		if r.Status != ncmecsim.StatusExpired {
			t.Errorf("report %d is %s, want expired", r.ID, r.Status)
		}
	}
}

func TestConcurrentUploadsToOneReport(t *testing.T) {
	t.Parallel()
	sim, c := startSim(t, ncmecsim.Options{})
	ctx := ctx(t)
	sub, err := c.Submit(ctx, minimalReport())
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	var wg sync.WaitGroup
	results := make([]*ncmec.UploadResult, n)
	errs := make([]error, n)
	want := map[string]string{} // file id -> md5
	contents := make([][]byte, n)
	for i := range n {
		contents[i] = randomBytes(t, 64<<10+i)
	}
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = c.Upload(ctx, sub.ReportID, fmt.Sprintf("f%d", i), -1, bytes.NewReader(contents[i]))
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("upload %d: %v", i, errs[i])
		}
		if _, dup := want[results[i].FileID]; dup {
			t.Fatalf("duplicate file id %s", results[i].FileID)
		}
		want[results[i].FileID] = md5hex(contents[i])
	}
	done, err := c.Finish(ctx, sub.ReportID)
	if err != nil {
		t.Fatal(err)
	}
	if len(done.Files.IDs) != n {
		t.Fatalf("finish lists %d files, want %d", len(done.Files.IDs), n)
	}
	rep, _ := sim.Report(sub.ReportID)
	got := map[string]string{}
	for _, f := range rep.Files {
		got[f.ID] = f.MD5
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestAuthenticationErrors(t *testing.T) {
	t.Parallel()
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy_body=%v", legacy), func(t *testing.T) {
			t.Parallel()
			_, c := startSim(t, ncmecsim.Options{LegacyAuthBody: legacy}, func(o *ncmec.Options) { o.Password = "wrong" })
			_, err := c.Status(ctx(t))
			var e *ncmec.Error
			if !errors.As(err, &e) || e.HTTPStatus != 401 || !ncmec.IsAuth(err) || !ncmec.IsPermanent(err) || ncmec.IsRetryable(err) {
				t.Fatalf("got %#v", err)
			}
			if legacy && e.Code != 1000 {
				t.Errorf("2016 body code not kept: %v", e)
			}
		})
	}
}

// Every fault kind and every error class, through every endpoint.
func TestFaults(t *testing.T) {
	t.Parallel()
	type check func(t *testing.T, err error)
	class := func(kind ncmec.Kind, auth, ambiguous bool, code, status int) check {
		return func(t *testing.T, err error) {
			t.Helper()
			var e *ncmec.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *ncmec.Error", err)
			}
			if e.Kind != kind || e.Auth != auth || e.Ambiguous != ambiguous || e.Code != code || (status != 0 && e.HTTPStatus != status) {
				t.Fatalf("got %v (kind %v auth %v ambiguous %v code %d http %d), want kind %v auth %v ambiguous %v code %d http %d",
					err, e.Kind, e.Auth, e.Ambiguous, e.Code, e.HTTPStatus, kind, auth, ambiguous, code, status)
			}
		}
	}
	faults := []struct {
		fault ncmecsim.Fault
		check check
	}{
		{ncmecsim.Fault{Kind: "code", Code: 1000}, class(ncmec.KindRetryable, false, false, 1000, 200)},
		{ncmecsim.Fault{Kind: "code", Code: 1100}, class(ncmec.KindRetryable, false, false, 1100, 200)},
		{ncmecsim.Fault{Kind: "code", Code: 1111}, class(ncmec.KindRetryable, false, false, 1111, 200)},
		{ncmecsim.Fault{Kind: "code", Code: 2000}, class(ncmec.KindPermanent, true, false, 2000, 200)},
		{ncmecsim.Fault{Kind: "code", Code: 3100}, class(ncmec.KindPermanent, true, false, 3100, 200)},
		{ncmecsim.Fault{Kind: "code", Code: 4100}, class(ncmec.KindPermanent, false, false, 4100, 200)},
		{ncmecsim.Fault{Kind: "code", Code: 5001}, class(ncmec.KindState, false, false, 5001, 200)},
		{ncmecsim.Fault{Kind: "http", Status: 503}, class(ncmec.KindRetryable, false, true, 0, 503)},
		{ncmecsim.Fault{Kind: "http", Status: 500}, class(ncmec.KindRetryable, false, true, 0, 500)},
		{ncmecsim.Fault{Kind: "http", Status: 400}, class(ncmec.KindPermanent, false, false, 0, 400)},
		{ncmecsim.Fault{Kind: "rate_limit"}, class(ncmec.KindRetryable, false, false, 0, 429)},
		{ncmecsim.Fault{Kind: "drop"}, class(ncmec.KindRetryable, false, true, 0, 0)},
		{ncmecsim.Fault{Kind: "lost_response"}, class(ncmec.KindRetryable, false, true, 0, 0)},
		{ncmecsim.Fault{Kind: "slow", DelayMS: 30_000}, class(ncmec.KindRetryable, false, true, 0, 0)},
	}
	for _, ep := range []string{"status", "xsd", "submit", "upload", "fileinfo", "finish", "retract"} {
		t.Run(ep, func(t *testing.T) {
			t.Parallel()
			sim, c := startSim(t, ncmecsim.Options{}, func(o *ncmec.Options) {
				o.CallTimeout = 300 * time.Millisecond // for the slow fault
			})
			for _, f := range faults {
				name := f.fault.Kind + fmt.Sprint(f.fault.Code, f.fault.Status)
				t.Run(name, func(t *testing.T) {
					ctx := ctx(t)
					sub, err := c.Submit(ctx, minimalReport())
					if err != nil {
						t.Fatal(err)
					}
					up, err := c.Upload(ctx, sub.ReportID, "x", 1, strings.NewReader("x"))
					if err != nil {
						t.Fatal(err)
					}
					fault := f.fault
					fault.Endpoint = ep
					wantFired := 1
					if (ep == "status" || ep == "xsd") && (fault.Kind == "drop" || fault.Kind == "lost_response") {
						// net/http retries an idempotent GET once on a reused
						// connection that closes without an answer.
						fault.Times, wantFired = 2, 2
					}
					if err := sim.Inject(fault); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(sim.ClearFaults)
					var callErr error
					switch ep {
					case "status":
						_, callErr = c.Status(ctx)
					case "xsd":
						_, callErr = c.XSD(ctx)
					case "submit":
						_, callErr = c.Submit(ctx, minimalReport())
					case "upload":
						if f.fault.Kind == "slow" {
							// Uploads are bounded by the caller's context.
							short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
							defer cancel()
							_, callErr = c.Upload(short, sub.ReportID, "y", 1, strings.NewReader("y"))
						} else {
							_, callErr = c.Upload(ctx, sub.ReportID, "y", 1, strings.NewReader("y"))
						}
					case "fileinfo":
						_, callErr = c.FileInfo(ctx, &ncmec.FileDetails{ReportID: sub.ReportID, FileID: up.FileID})
					case "finish":
						_, callErr = c.Finish(ctx, sub.ReportID)
					case "retract":
						_, callErr = c.Retract(ctx, sub.ReportID)
					}
					f.check(t, callErr)
					if got := sim.Faults()[0].Fired; got != wantFired {
						t.Errorf("fault fired %d times, want %d", got, wantFired)
					}
				})
			}
		})
	}
}

// "Done but the answer was lost": the effect is applied; a retry of an
// idempotent call then answers with the state code.
func TestLostResponseAppliesTheEffect(t *testing.T) {
	t.Parallel()
	sim, c := startSim(t, ncmecsim.Options{})
	ctx := ctx(t)

	if err := sim.Inject(ncmecsim.Fault{Endpoint: "submit", Kind: "lost_response"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Submit(ctx, minimalReport())
	if !ncmec.IsAmbiguous(err) {
		t.Fatalf("submit with lost answer: %v, want ambiguous", err)
	}
	if st := sim.State(); len(st.Reports) != 1 || st.Reports[0].Status != ncmecsim.StatusOpen {
		t.Fatalf("the report should be open at NCMEC: %+v", st.Reports)
	}
	id := sim.State().Reports[0].ID

	if err := sim.Inject(ncmecsim.Fault{Endpoint: "finish", Kind: "lost_response"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Finish(ctx, id); !ncmec.IsRetryable(err) {
		t.Fatalf("finish with lost answer: %v, want retryable", err)
	}
	_, err = c.Finish(ctx, id)
	if ncmec.CodeOf(err) != ncmec.CodeAlreadyFinished || !ncmec.IsState(err) {
		t.Fatalf("finish retry: %v, want 5102", err)
	}

	// A dropped connection has no effect.
	if err := sim.Inject(ncmecsim.Fault{Endpoint: "submit", Kind: "drop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, minimalReport()); !ncmec.IsAmbiguous(err) {
		t.Fatalf("dropped submit: %v", err)
	}
	if n := len(sim.State().Reports); n != 1 {
		t.Fatalf("dropped submit opened a report: %d reports", n)
	}
}

func TestFaultAfterAndTimes(t *testing.T) {
	t.Parallel()
	sim, c := startSim(t, ncmecsim.Options{})
	ctx := ctx(t)
	if err := sim.Inject(ncmecsim.Fault{Endpoint: "status", Kind: "code", Code: 1000, After: 1, Times: 2}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 5 {
		_, err := c.Status(ctx)
		got = append(got, ncmec.Outcome(err))
	}
	want := []string{"ok", "retryable", "retryable", "ok", "ok"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if f := sim.Faults()[0]; f.Fired != 2 || f.Seen != 3 {
		t.Errorf("counters = %+v", f)
	}
	// Other endpoints are not affected by a status fault; "*" affects all.
	if err := sim.Inject(ncmecsim.Fault{Endpoint: "*", Kind: "http", Status: 502, Times: -1}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Submit(ctx, minimalReport()); !ncmec.IsRetryable(err) {
			t.Fatalf("submit under a permanent 502: %v", err)
		}
	}
	sim.ClearFaults()
	if _, err := c.Submit(ctx, minimalReport()); err != nil {
		t.Fatalf("after clearing: %v", err)
	}
}

func TestObserveHook(t *testing.T) {
	t.Parallel()
	type obs struct{ ep, result string }
	var mu sync.Mutex
	var seen []obs
	sim, c := startSim(t, ncmecsim.Options{}, func(o *ncmec.Options) {
		o.Observe = func(ep, result string, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			if d <= 0 {
				t.Errorf("duration %v", d)
			}
			seen = append(seen, obs{ep, result})
		}
	})
	ctx := ctx(t)
	sub, err := c.Submit(ctx, minimalReport())
	if err != nil {
		t.Fatal(err)
	}
	_ = sim.Inject(ncmecsim.Fault{Endpoint: "upload", Kind: "http", Status: 503})
	_, _ = c.Upload(ctx, sub.ReportID, "x", 1, strings.NewReader("x"))
	_, _ = c.Finish(ctx, sub.ReportID)
	_, _ = c.Finish(ctx, sub.ReportID)
	_, _ = c.Submit(ctx, &ncmec.Report{})
	want := []obs{{"submit", "ok"}, {"upload", "retryable"}, {"finish", "ok"}, {"finish", "state"}}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, seen, cmp.AllowUnexported(obs{})); diff != "" {
		t.Errorf("observations (-want +got):\n%s", diff)
	}
}

// A large upload streams: neither the client nor the simulator (both in
// this process) allocates anything near the file's size.
func TestUploadStreamsInConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 256 MiB through loopback")
	}
	// Not parallel: it measures this process's allocations.
	_, c := startSim(t, ncmecsim.Options{})
	ctx := ctx(t)
	sub, err := c.Submit(ctx, minimalReport())
	if err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	for _, known := range []bool{true, false} {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		body := io.LimitReader(patternReader{}, size)
		n := int64(-1)
		if known {
			n = size
		}
		up, err := c.Upload(ctx, sub.ReportID, "big.bin", n, body)
		if err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if up.Size != size || up.Hash != up.SentMD5 {
			t.Fatalf("upload = %+v", up)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
			t.Errorf("known size %v: allocated %d MiB for a %d MiB upload", known, alloc>>20, size>>20)
		}
	}
}

type patternReader struct{}

func (patternReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, r.err
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

// A source that fails mid-file surfaces its own error and adds no file.
func TestUploadSourceFailure(t *testing.T) {
	t.Parallel()
	sim, c := startSim(t, ncmecsim.Options{})
	ctx := ctx(t)
	sub, err := c.Submit(ctx, minimalReport())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("evidence store went away")
	for _, size := range []int64{1 << 20, -1} {
		_, err = c.Upload(ctx, sub.ReportID, "x", size, &failingReader{n: 100 << 10, err: boom})
		if !errors.Is(err, boom) || !ncmec.IsRetryable(err) || ncmec.IsAmbiguous(err) {
			t.Fatalf("size %d: got %v", size, err)
		}
	}
	if rep, _ := sim.Report(sub.ReportID); len(rep.Files) != 0 {
		t.Errorf("a failed upload added a file: %+v", rep.Files)
	}
}

// Calls as many at once as IdleConns allows reuse their connections: a
// second burst of 16 dials (next to) none, where the default keeps only 8
// of 16 open. A connection is put back a moment after its call returns, so
// a call of the second burst may, rarely, dial before it is.
func TestIdleConnsKeepABurstsConnections(t *testing.T) {
	for _, c := range []struct {
		idle        int
		least, most int32 // connections the second burst dials
	}{{16, 0, 2}, {0, 7, 16}} {
		sim, err := ncmecsim.New(ncmecsim.Options{Username: ncmecsim.TestUsername, Password: ncmecsim.TestPassword, Latency: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var dialled atomic.Int32
		ts := httptest.NewUnstartedServer(sim)
		ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				dialled.Add(1)
			}
		}
		ts.Start()
		client, err := ncmec.New(ncmec.Options{BaseURL: ts.URL + ncmecsim.BasePath, Username: ncmecsim.TestUsername,
			Password: ncmecsim.TestPassword, IdleConns: c.idle})
		if err != nil {
			t.Fatal(err)
		}
		burst := func() {
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					if _, err := client.Submit(ctx(t), minimalReport()); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
		burst()
		first := dialled.Load()
		burst()
		if again := dialled.Load() - first; again < c.least || again > c.most {
			t.Errorf("IdleConns %d: the second burst dialled %d connections (the first %d)", c.idle, again, first)
		}
		ts.Close()
		sim.Close()
	}
}
