package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oauth2-proxy/mockoidc"

	"google.golang.org/protobuf/proto"

	"takedown/pkg/auth"
	"takedown/pkg/config"
	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/staffaction"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/app"
	"takedown/services/intake/internal/progress"
)

// site is intake with OIDC sign-in through a test provider and a stand-in
// for the retraction service.
type site struct {
	*harness
	oidc       *mockoidc.MockOIDC
	mu         sync.Mutex
	retracts   []retractCall
	retraction *httptest.Server
}

type retractCall struct{ Path, Auth, Reason string }

func startSite(t *testing.T, opts ...func(*app.Config)) *site {
	t.Helper()
	return startSiteLogging(t, testenv.Logger(t), opts...)
}

// startSiteLogging is startSite with the service's log going to log.
func startSiteLogging(t testing.TB, log *slog.Logger, opts ...func(*app.Config)) *site {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	s := &site{oidc: m}
	// The retraction service is someone else's; this stand-in records what
	// intake forwards to it.
	s.retraction = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Reason string }
		json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		s.retracts = append(s.retracts, retractCall{r.URL.Path, r.Header.Get("Authorization"), body.Reason})
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"accepted"}`)
	}))
	t.Cleanup(s.retraction.Close)
	// The callback URL must be known before intake listens: pick a port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s.harness = startLogging(t, testenv.S3(t), log, func(c *app.Config) {
		c.Service.ListenAddr = addr
		c.PublicURL = "http://" + addr
		c.OIDC = &auth.OIDCConfig{Issuer: m.Issuer(), ClientID: m.ClientID, ClientSecret: config.Secret(m.ClientSecret),
			RedirectURL: "http://" + addr + "/auth/callback", RolesClaim: "groups", Scopes: []string{"profile", "email", "groups"}}
		c.Session = auth.SessionConfig{IdleTimeout: time.Hour, Lifetime: time.Hour}
		c.RetractionURL = s.retraction.URL
		for _, o := range opts {
			o(c)
		}
	})
	return s
}

// user queues the staff member the test provider signs in next.
func (s *site) user(name string, roles ...string) {
	s.oidc.QueueUser(&mockoidc.MockUser{Subject: name, Email: name + "@example.com", PreferredUsername: name, Groups: roles, EmailVerified: true})
}

// signIn signs a plain HTTP client in through the provider.
func (s *site) signIn(t *testing.T, name string, roles ...string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	s.user(name, roles...)
	resp, err := c.Get(s.url + "/auth/login?next=/reports")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/reports" {
		t.Fatalf("sign-in as %s ended at %s with %d", name, resp.Request.URL, resp.StatusCode)
	}
	return c
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func page(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func csrfOf(t *testing.T, html string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(html)
	if m == nil {
		t.Fatal("no csrf_token in the page")
	}
	return m[1]
}

// formBody is the report form as a browser without the script posts it.
func formBody(t *testing.T, token string, incident string, files ...file) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if token != "" {
		w.WriteField("csrf_token", token)
	}
	w.WriteField("incident_time", incident)
	w.WriteField("platform", "Example")
	w.WriteField("actions_taken", "content removed")
	for _, f := range files {
		p, _ := w.CreateFormFile("file", f.name)
		p.Write(f.data)
	}
	w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

func postForm(t *testing.T, c *http.Client, u, ct string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c2 := *c
	c2.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestFormRefusalsStoreNothing(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	past := "2026-01-02T15:04"
	files := []file{{"a.jpg", []byte("evidence")}}

	reporter := s.signIn(t, "rita", "reporter")
	_, html := page(t, reporter, s.url+"/")
	token := csrfOf(t, html)
	auditor := s.signIn(t, "otto", "auditor")
	_, ahtml := page(t, auditor, s.url+"/reports")
	atoken := csrfOf(t, ahtml)
	anonymous := &http.Client{}

	cases := []struct {
		name   string
		client *http.Client
		token  string
		hdr    []string
		status int
	}{
		{"no forgery token", reporter, "", nil, 403},
		{"wrong forgery token", reporter, "x" + token, nil, 403},
		{"another session's token", reporter, atoken, nil, 403},
		{"cross-origin", reporter, token, []string{"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"}, 403},
		{"no session", anonymous, token, nil, 401},
		{"without the reporter role", auditor, atoken, nil, 403},
	}
	for _, c := range cases {
		ct, b := formBody(t, c.token, past, files...)
		if resp := postForm(t, c.client, s.url+"/reports", ct, b, c.hdr...); resp.StatusCode != c.status {
			t.Errorf("%s: got %d, want %d", c.name, resp.StatusCode, c.status)
		}
	}
	// The API through the session needs the token in a header.
	ct, b := body(t, goodReport, files...)
	if resp := postForm(t, reporter, s.url+"/api/v1/reports", ct, b); resp.StatusCode != 403 {
		t.Errorf("API post by session without X-CSRF-Token: got %d, want 403", resp.StatusCode)
	}
	s.assertNothingStored()
	if n := s.count("outbox WHERE subject = 'takedown.staff.action'"); n < len(cases) {
		t.Errorf("%d staff actions recorded; want the sign-ins and each refusal", n)
	}

	// The same post with the token is taken, and goes to the status page.
	ct, b = formBody(t, token, past, files...)
	resp := postForm(t, reporter, s.url+"/reports", ct, b)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/reports/") {
		t.Fatalf("form post: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/reports/")

	// Without the script, a future date comes back as an error summary
	// linking to the field, with what was typed kept.
	ct, b = formBody(t, token, time.Now().Add(48*time.Hour).Format("2006-01-02T15:04"), files...)
	req, _ := http.NewRequest(http.MethodPost, s.url+"/reports", bytes.NewReader(b))
	req.Header.Set("Content-Type", ct)
	r2, err := reporter.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 400 || !strings.Contains(string(out), `href="#f-incident_time"`) || !strings.Contains(string(out), "in the future") {
		t.Errorf("future date: %d, summary missing:\n%s", r2.StatusCode, out)
	}

	// Retracting needs the retractor role; nothing is forwarded without it.
	s.publish(t, id, &pb.NcmecOpened{NcmecReportId: 4242, Environment: "test", Filing: 1})
	testenv.Eventually(t, 10*time.Second, "NCMEC opened", func() bool { return s.status(t, id) == "ncmec_opened" })
	// An NCMEC receipt forged on takedown.staff.action, or claimed by a
	// service that does not own it, finishes nothing: the consumer refuses
	// both before intake's progress sees them.
	forged, _ := events.New(id, events.Staff("mallory", ""), &pb.NcmecFinished{NcmecReportId: 4242})
	impostor, _ := events.New(id, events.Service(events.CaseWriter), &pb.NcmecFinished{NcmecReportId: 4242})
	for subject, ev := range map[string]*pb.Envelope{events.Subject(events.StaffAction): forged, events.Subject(events.NcmecFinished): impostor} {
		b, _ := events.Marshal(ev)
		if _, err := s.js.Publish(context.Background(), subject, b); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "the forged events decided", func() bool {
		c, err := s.js.Consumer(context.Background(), events.Stream, progress.Consumer.Durable)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if st := s.status(t, id); st != "ncmec_opened" {
		t.Fatalf("after forged receipts the report is %s, want still ncmec_opened", st)
	}
	form := url.Values{"csrf_token": {token}, "reason": {"wrong account"}}
	if resp := postForm(t, reporter, s.url+"/reports/"+id+"/retract", "application/x-www-form-urlencoded", []byte(form.Encode())); resp.StatusCode != 403 {
		t.Errorf("retract by a reporter: got %d, want 403", resp.StatusCode)
	}
	if len(s.calls()) != 0 {
		t.Fatalf("a refused retraction was forwarded: %v", s.calls())
	}
	retractor := s.signIn(t, "rex", "retractor")
	_, rhtml := page(t, retractor, s.url+"/reports/"+id)
	if !strings.Contains(rhtml, `id="retract"`) {
		t.Fatal("no retract button for a retractor while the NCMEC report is open")
	}
	rtoken := csrfOf(t, rhtml)
	form.Set("csrf_token", "")
	if resp := postForm(t, retractor, s.url+"/reports/"+id+"/retract", "application/x-www-form-urlencoded", []byte(form.Encode())); resp.StatusCode != 403 || len(s.calls()) != 0 {
		t.Errorf("retract without forgery token: got %d, forwarded %d", resp.StatusCode, len(s.calls()))
	}
	form.Set("csrf_token", rtoken)
	if resp := postForm(t, retractor, s.url+"/reports/"+id+"/retract", "application/x-www-form-urlencoded", []byte(form.Encode())); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("retract by a retractor: got %d", resp.StatusCode)
	}
	calls := s.calls()
	if len(calls) != 1 || calls[0].Path != "/api/v1/reports/"+id+"/retraction" || calls[0].Reason != "wrong account" || strings.Count(calls[0].Auth, ".") != 2 {
		t.Fatalf("forwarded retraction: %+v; want one with the staff member's ID token", calls)
	}

	// File again: only once retracted, only by a reporter.
	refile := url.Values{"csrf_token": {token}}.Encode()
	if resp := postForm(t, reporter, s.url+"/reports/"+id+"/refile", "application/x-www-form-urlencoded", []byte(refile)); resp.StatusCode != 409 {
		t.Errorf("refile of an open report: got %d, want 409", resp.StatusCode)
	}
	s.publish(t, id, &pb.NcmecRetracted{NcmecReportId: 4242, Reason: "wrong account"})
	testenv.Eventually(t, 10*time.Second, "retracted", func() bool { return s.status(t, id) == "retracted" })
	if resp := postForm(t, retractor, s.url+"/reports/"+id+"/refile", "application/x-www-form-urlencoded", []byte(url.Values{"csrf_token": {rtoken}}.Encode())); resp.StatusCode != 403 {
		t.Errorf("refile by a retractor only: got %d, want 403", resp.StatusCode)
	}
	if resp := postForm(t, reporter, s.url+"/reports/"+id+"/refile", "application/x-www-form-urlencoded", []byte(refile)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("refile: got %d", resp.StatusCode)
	}
	var filings []uint32
	testenv.Eventually(t, 10*time.Second, "the second filing announced", func() bool {
		filings = nil
		for _, e := range s.submitted() {
			if e.ReportId == id {
				filings = append(filings, e.GetReportSubmitted().Report.Filing)
			}
		}
		return fmt.Sprint(filings) == "[1 2]"
	})
	// A late event of the retracted filing moves nothing.
	s.publish(t, id, &pb.NcmecFinished{NcmecReportId: 4242})
	s.publish(t, id, &pb.NcmecOpened{NcmecReportId: 5151, Environment: "test", Filing: 2})
	testenv.Eventually(t, 10*time.Second, "second filing opened", func() bool { return s.status(t, id) == "ncmec_opened" })
}

func (s *site) calls() []retractCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]retractCall(nil), s.retracts...)
}

func (s *site) status(t *testing.T, id string) string {
	_, out := s.get("/api/v1/reports/" + id)
	st, _ := out["status"].(string)
	return st
}

// publish puts an event of another service into the stream, as the
// service that owns it would.
func (s *site) publish(t *testing.T, reportID string, payload proto.Message) {
	t.Helper()
	ev, err := events.New(reportID, nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	ev.Actor = events.Service(events.Owners(ev.Type)[0]) // consumers refuse a service publishing what it does not own
	b, _ := events.Marshal(ev)
	if _, err := s.js.Publish(context.Background(), events.Subject(ev.Type), b, jetstream.WithMsgID(ev.EventId)); err != nil {
		t.Fatal(err)
	}
}

// chrome starts a headless Chromium with a fresh profile, on a machine
// without network.
func chrome(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian: apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 1600),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// A bound on a hung browser, not a measure: under make test the
	// package's tests share two cores with Chromium.
	ctx, cancel3 := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func artifacts(t *testing.T) string {
	dir := filepath.Join("..", "..", "..", "..", "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := value(t, ctx, name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(artifacts(t), name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBrowserReportToFinished(t *testing.T) {
	s := startSite(t)
	ctx := chrome(t)
	// Files carry a random marker: no page may ever show it.
	marker := hex.EncodeToString(random(16))
	dir := t.TempDir()
	var paths []string
	for i, name := range []string{"photo.jpg", "screen.png", "clip.mp4"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(fmt.Sprintf("file %d %s %s", i, marker, marker)), 0o600)
		paths = append(paths, p)
	}

	s.user("rita", "reporter", "retractor")
	run(t, ctx, "sign in",
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible("#signin"),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#report-form"),
		chromedp.WaitVisible("#drop-zone"), // shown by the page script: it has run
	)

	// The error summary for a date in the future links to the field.
	var focused string
	run(t, ctx, "future date",
		chromedp.SetValue("#f-incident_time", time.Now().Add(72*time.Hour).Format("2006-01-02T15:04")),
		chromedp.SetUploadFiles("#f-file", paths[:1]),
		chromedp.Click("#submit"),
		chromedp.WaitVisible(`#client-summary a[href="#f-incident_time"]`),
		chromedp.Click(`#client-summary a[href="#f-incident_time"]`),
	)
	focused = value(t, ctx, "focus", chromedp.Evaluate[string](`document.activeElement.id`))
	if focused != "f-incident_time" {
		t.Errorf("the summary's link focused %q", focused)
	}

	run(t, ctx, "fill the form",
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible("#report-form"),
		chromedp.WaitVisible("#drop-zone"), // shown by the page script: it has run
		chromedp.SetValue("#f-incident_time", "2026-01-02T15:04"),
		chromedp.SendKeys("#f-platform", "Example"),
		chromedp.SendKeys("#f-urls", "https://example.com/p/1"),
		chromedp.SendKeys("#f-uploader-username", "u1"),
		chromedp.Click("#f-action-0"),
		chromedp.SetUploadFiles("#f-file", paths),
		chromedp.WaitVisible("#f-files-2-location_url"),
		chromedp.SendKeys("#f-files-0-location_url", "https://example.com/p/1/a"),
		chromedp.Click("#f-files-0-viewed_by_staff"),
		chromedp.SetValue("#f-files-1-industry_classification", "B1"),
	)
	screenshot(t, ctx, "form.png")

	var loc string
	run(t, ctx, "submit",
		chromedp.Click("#submit"),
		chromedp.WaitVisible("#report-status"),
	)
	loc = value(t, ctx, "location", chromedp.Location())
	id := loc[strings.LastIndex(loc, "/")+1:]
	// The page sent its submission with a key of its own (a lost answer
	// is then sent again without a second report).
	if n := s.count(fmt.Sprintf(`reports WHERE id = '%s' AND idempotency_key ~ '^[0-9a-f]{32}$'`, id)); n != 1 {
		t.Errorf("the form's submission carried no Idempotency-Key of 32 hex digits")
	}
	_, rep := s.get("/api/v1/reports/" + id)
	fs, _ := rep["files"].([]any)
	if len(fs) != 3 {
		t.Fatalf("report has %d files; want 3", len(fs))
	}
	meta := fs[0].(map[string]any)
	if meta["location_url"] != "https://example.com/p/1/a" || meta["viewed_by_staff"] != true || fs[1].(map[string]any)["industry_classification"] != "B1" {
		t.Errorf("per-file metadata not kept: %v", fs)
	}

	// The NCMEC reporter's part, as its events: the status page follows live.
	s.publish(t, id, &pb.NcmecOpened{NcmecReportId: 777001, Environment: "test", Filing: 1})
	run(t, ctx, "opened", chromedp.WaitVisible(`#report-status[data-status="ncmec_opened"]`))
	var fileIDs []string
	for i, f := range fs {
		fid := f.(map[string]any)["id"].(string)
		fileIDs = append(fileIDs, fmt.Sprint(i))
		s.publish(t, id, &pb.NcmecFileUploaded{NcmecReportId: 777001, FileId: fid, NcmecFileId: fmt.Sprintf("ncmec-file-%d", i)})
	}
	s.publish(t, id, &pb.CaseUpserted{CaseId: "500Sim0001", State: "finished"})
	s.publish(t, id, &pb.NcmecFinished{NcmecReportId: 777001, NcmecFileIds: fileIDs})
	var text string
	run(t, ctx, "finished",
		chromedp.WaitVisible(`#report-status[data-status="finished"]`),
		chromedp.WaitVisible(`//td[contains(., "ncmec-file-2")]`),
		chromedp.WaitVisible(`//dd[@id="case" and contains(., "500Sim0001")]`),
	)
	text = value(t, ctx, "text", chromedp.Text("#live"))
	for _, want := range []string{"777001", "NCMEC report 777001 finished", "Report submitted with 3 file(s)"} {
		if !strings.Contains(text, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	screenshot(t, ctx, "status.png")

	// Keyboard only: tab to each field, type, and press Enter to send.
	// (Choosing files is the one step a keyboard user does in the
	// system's file dialog, which a headless browser does not have.)
	run(t, ctx, "keyboard",
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible("#report-form"),
		chromedp.WaitVisible("#drop-zone"), // shown by the page script: it has run
		chromedp.SetUploadFiles("#f-file", paths[1:2]),
	)
	value(t, ctx, "blur", chromedp.Evaluate[any](`document.activeElement.blur(); window.scrollTo(0,0)`))
	tabTo(t, ctx, "f-incident_time")
	run(t, ctx, "type a date", chromedp.KeyEvent("01022026"), chromedp.KeyEvent(kb.ArrowRight), chromedp.KeyEvent("0304A"))
	tabTo(t, ctx, "f-platform")
	run(t, ctx, "type", chromedp.KeyEvent("Keyboard platform"))
	tabTo(t, ctx, "f-action-1")
	run(t, ctx, "tick", chromedp.KeyEvent(" "))
	tabTo(t, ctx, "submit")
	run(t, ctx, "send", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible("#report-status"))
	loc = value(t, ctx, "location", chromedp.Location())
	_, kr := s.get("/api/v1/reports/" + loc[strings.LastIndex(loc, "/")+1:])
	if kr["platform"] != "Keyboard platform" || !strings.HasPrefix(fmt.Sprint(kr["incident_time"]), "2026-01-02") {
		t.Errorf("keyboard submission stored %v %v", kr["platform"], kr["incident_time"])
	}

	// No page and no endpoint shows the files' bytes.
	for _, p := range []string{"/", "/reports", "/reports/" + id, "/reports/" + id + "/live", "/auth/signin",
		"/api/v1/reports", "/api/v1/reports/" + id, "/static/app.js", "/healthz", "/readyz", "/metrics"} {
		run(t, ctx, p, chromedp.Navigate(s.url+p))
		html := value(t, ctx, p, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		if strings.Contains(html, marker) {
			t.Errorf("%s shows the uploaded bytes", p)
		}
		req, _ := http.NewRequest(http.MethodGet, s.url+p, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s (API client) shows the uploaded bytes", p)
		}
	}
}

func tabTo(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	for range 80 {
		run(t, ctx, "tab", chromedp.KeyEvent(kb.Tab))
		at := value(t, ctx, "active", chromedp.Evaluate[string](`document.activeElement.id`))
		if at == id {
			return
		}
	}
	t.Fatalf("Tab never reached #%s", id)
}

func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	for i, a := range actions {
		if err := chromedp.Do(ctx, a); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
			t.Fatalf("%s, action %d: %v; the page:\n%s", step, i, err, html)
		}
	}
}

func value[T any](t *testing.T, ctx context.Context, step string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	return v
}

// staffActions returns the staff actions intake has recorded for the audit log.
func (h *harness) staffActions() []*pb.Envelope {
	h.t.Helper()
	c, err := pgxConnect(h.t, h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(h.t.Context(), `SELECT payload FROM intake.outbox WHERE subject = 'takedown.staff.action' ORDER BY id`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []*pb.Envelope
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			h.t.Fatal(err)
		}
		env, err := events.Unmarshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, env)
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// An anonymous client must not be able to grow the audit log without bound:
// its refusals are recorded cut to size, without its query's values, and
// only the first few of each minute one by one (pkg/staffaction).
func TestAnonymousRefusalsCannotFloodTheAuditLog(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	long := strings.Repeat("A", 200_000)
	anonymous := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, u := range []string{
		"/api/v1/reports?secret=" + long + "&more=" + long,
		"/auth/callback?error=" + long + "&state=" + long,
	} {
		for range 15 {
			resp, err := anonymous.Get(s.url + u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("anonymous GET %.40s...: %d", u, resp.StatusCode)
			}
		}
	}
	var denials int
	for _, env := range s.staffActions() {
		sa := env.GetStaffAction()
		if sa.GetAction() != "denied" {
			continue
		}
		denials++
		if n := proto.Size(env); n > 2048 || strings.Contains(sa.Path+sa.Detail, "AAAA") {
			t.Errorf("denial of %d bytes recorded: path %.80q, detail %.80q", n, sa.Path, sa.Detail)
		}
	}
	if denials != staffaction.PerClient {
		t.Errorf("%d denials recorded one by one from 30 anonymous requests; want %d", denials, staffaction.PerClient)
	}
}

// sessionRows returns intake.sessions' stored tokens and data.
func (h *harness) sessionRows() map[string][]byte {
	h.t.Helper()
	c, err := pgxConnect(h.t, h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(h.t.Context(), `SELECT token, data FROM intake.sessions`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var tok string
		var data []byte
		if err := rows.Scan(&tok, &data); err != nil {
			h.t.Fatal(err)
		}
		out[tok] = data
	}
	return out
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Sessions: an anonymous visitor gets no row, and a row is of no use to
// whoever can read the table: its token is hashed, its data (the roles and
// the ID token forwarded to the retraction service) sealed.
func TestSessionsKeepNothingUsableAtRest(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	jar, _ := cookiejar.New(nil)
	anonymous := &http.Client{Jar: jar, CheckRedirect: noRedirects}
	for _, u := range []string{"/auth/signin", "/auth/signin?next=/reports", "/", "/reports", "/auth/login?next=/reports",
		"/auth/callback?error=access_denied", "/auth/callback?state=x&code=y", "/reports/" + events.NewID() + "/live"} {
		resp, err := anonymous.Get(s.url + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
	}
	resp, err := anonymous.Post(s.url+"/reports", "application/x-www-form-urlencoded", strings.NewReader("a=b"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(s.sessionRows()); n != 0 {
		t.Errorf("anonymous visits made %d session rows; want none", n)
	}

	c := s.signIn(t, "rita", "reporter", "retractor")
	u, _ := url.Parse(s.url)
	var cookie string
	for _, ck := range c.Jar.Cookies(u) {
		if strings.HasSuffix(ck.Name, "takedown_session") {
			cookie = ck.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie after sign-in")
	}
	rows := s.sessionRows()
	if len(rows) != 1 {
		t.Fatalf("%d session rows after one sign-in", len(rows))
	}
	sum := sha256.Sum256([]byte(cookie))
	for tok, data := range rows {
		if tok == cookie || tok != base64.RawURLEncoding.EncodeToString(sum[:]) {
			t.Errorf("stored token %q is not the hash of the cookie's", tok)
		}
		for _, plain := range []string{"eyJ", "rita", "reporter"} {
			if bytes.Contains(data, []byte(plain)) {
				t.Errorf("session data holds %q in the clear", plain)
			}
		}
	}
}

// A session's roles and forwarding token end with the ID token they came
// from: the staff member signs in again (at the provider, without a
// password while their provider session lasts).
func TestSessionEndsWithTheIDToken(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	s.oidc.AccessTTL = 4 * time.Second
	c := s.signIn(t, "rita", "reporter")
	c.CheckRedirect = noRedirects
	signedIn := func() bool {
		resp, err := c.Get(s.url + "/reports")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !signedIn() {
		t.Fatal("not signed in right after signing in")
	}
	testenv.Eventually(t, 20*time.Second, "the session ends when the ID token expires", func() bool { return !signedIn() })
	if n := len(s.sessionRows()); n != 0 {
		// The row may stay until the cleanup, but it must be expired.
		var live int
		conn, err := pgxConnect(t, s.db)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM intake.sessions WHERE expiry > now()`).Scan(&live); err != nil {
			t.Fatal(err)
		}
		if live != 0 {
			t.Errorf("%d sessions still live after the ID token expired", live)
		}
	}
}

// TestBrowserSignInNeverLeavesTheSite is issue 17's open redirect, in the
// browser that would follow it: a link to sign in with a next page that
// Chromium reads as another origin ("/\t/host" becomes "//host" once the
// TAB is dropped) must end on intake, not on the other host.
func TestBrowserSignInNeverLeavesTheSite(t *testing.T) {
	s := startSite(t)
	var mu sync.Mutex
	var landed []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		landed = append(landed, r.URL.String())
		mu.Unlock()
		io.WriteString(w, `<!doctype html><title>elsewhere</title><p id="elsewhere">another site</p>`)
	}))
	t.Cleanup(elsewhere.Close)
	other := strings.TrimPrefix(elsewhere.URL, "http://")
	ctx := chrome(t)
	for _, next := range []string{
		"/\t/" + other + "/phish",
		"/\t\\" + other + "/phish",
		"\t//" + other + "/phish",
		"/\n/" + other + "/phish",
		"/\\" + other + "/phish",
	} {
		s.user("rita", "reporter")
		run(t, ctx, fmt.Sprintf("sign in with next=%q", next),
			chromedp.Navigate(s.url+"/auth/login?next="+url.QueryEscape(next)),
			chromedp.WaitReady("body"),
		)
		if at := value(t, ctx, "location", chromedp.Location()); at != s.url+"/" {
			t.Errorf("signed in with next=%q, the browser is at %s, not at %s/", next, at, s.url)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(landed) > 0 {
		t.Errorf("the sign-in sent the browser to another site: %q", landed)
	}
}

// forwardedFor adds the header a reverse proxy sets to every request.
type forwardedFor string

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", string(f))
	return http.DefaultTransport.RoundTrip(r)
}

// TestAuditNamesTheClientBehindTheTrustedProxy: behind the TLS proxy every
// connection comes from the proxy; the staff action must name the address
// the proxy reports, and only when the proxy is a trusted one.
func TestAuditNamesTheClientBehindTheTrustedProxy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    func(string) bool
	}{
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, func(a string) bool { return a == "203.0.113.7:0" }},
		{"no trusted proxy", nil, func(a string) bool { return strings.HasPrefix(a, "127.0.0.1:") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSite(t, func(c *app.Config) {
				c.Service.TrustedProxies, c.Service.ClientIPHeader = tc.trusted, "X-Forwarded-For"
			})
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, Transport: forwardedFor("203.0.113.7")}
			s.user("rita", "reporter")
			resp, err := c.Get(s.url + "/auth/login?next=/reports")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var got []string
			testenv.Eventually(t, 10*time.Second, "the sign-in recorded", func() bool {
				got = nil
				for _, env := range s.events(events.StaffAction) {
					if a := env.GetStaffAction(); a != nil && a.Action == "sign_in" {
						got = append(got, a.RemoteAddr)
					}
				}
				return len(got) > 0
			})
			if len(got) != 1 || !tc.want(got[0]) {
				t.Errorf("sign-in recorded from %q", got)
			}
		})
	}
}

// TestStaticServesFilesNotItsDirectory: the page assets are public; what
// else the directory holds is nobody's business.
func TestStaticServesFilesNotItsDirectory(t *testing.T) {
	h := start(t, testenv.S3(t))
	for path, want := range map[string]int{"/static/": 404, "/static": 404, "/static/app.js": 200, "/static/app.css": 200, "/static/nope.js": 404} {
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		if want == 404 && strings.Contains(string(b), "app.css") {
			t.Errorf("GET %s lists the directory: %s", path, b)
		}
	}
}
