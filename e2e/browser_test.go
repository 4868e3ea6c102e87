package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"takedown/e2e/stack"
	"takedown/pkg/testenv"
)

// TestBrowserReportFinished is issue 6's browser test on the whole system:
// a staff member signs in to intake through an OpenID Connect provider,
// fills the report form in headless Chromium, attaches three files and
// submits; the real ncmec-reporter files the report with the NCMEC
// simulator and the real case-writer writes the Salesforce case, and the
// status page shows both. Screenshots of the form and of the status page
// are saved to test-artifacts/e2e-form.png and e2e-status.png.
func TestBrowserReportFinished(t *testing.T) {
	chromium := chromiumPath(t)
	began := time.Now()

	// The provider is a real one, Ory Hydra: intake's code flow with PKCE
	// against it, the roles, name and e-mail in the ID token's claims. The
	// callback is allowed once the stack has given intake its address.
	hydra := testenv.StartHydra(t)
	s := stack.Start(t, stack.Options{ServiceEnv: map[string][]string{"intake": {
		"OIDC_ISSUER=" + hydra.Issuer, "OIDC_CLIENT_ID=" + hydra.ClientID, "OIDC_CLIENT_SECRET=" + hydra.ClientSecret,
		"OIDC_SCOPES=profile email",
	}}})
	hydra.AllowRedirect(t, s.URL("intake")+"/auth/callback")
	base := s.URL("intake")
	t.Logf("stack ready after %v", time.Since(began).Round(time.Millisecond))

	// Three files, each carrying a random marker no page may ever show: a
	// PNG and a JPEG (real images, so intake computes their PDQ hashes)
	// and a video-named file of other bytes.
	markerBytes := make([]byte, 16)
	_, _ = rand.Read(markerBytes)
	marker := hex.EncodeToString(markerBytes)
	dir := t.TempDir()
	var paths []string
	for name, data := range map[string][]byte{
		"photo.png":  imageFile(t, "png", marker),
		"screen.jpg": imageFile(t, "jpeg", marker),
		"clip.mp4":   []byte("not really a video " + marker),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}

	ctx := browser(t, chromium)
	const key = "browser"
	hydra.QueueUser("Rita Reporter", "rita@example.com", "reporter")
	step(t, ctx, "sign in", 20*time.Second,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#signin"),
		chromedp.Click("#signin"),
		chromedp.WaitVisible("#report-form"),
		chromedp.WaitVisible("#drop-zone"), // shown by the page script: it has run
	)
	step(t, ctx, "fill the form", 20*time.Second,
		chromedp.SetValue("#f-incident_time", time.Now().Add(-2*time.Hour).Format("2006-01-02T15:04")),
		chromedp.SendKeys("#f-platform", "Example"),
		chromedp.SendKeys("#f-urls", "https://example.com/p/1"),
		chromedp.SendKeys("#f-uploader-username", "u1"),
		chromedp.SendKeys("#f-uploader-ip", "203.0.113.7"),
		chromedp.Click("#f-legal_approved"),
		chromedp.SendKeys("#f-approver", "Legal Counsel"),
		chromedp.Click("#f-action-0"),
		// The marker lets the test find the report among the NCMEC
		// simulator's (the reporter sends the notes as additionalInfo).
		chromedp.SendKeys("#f-notes", stack.Marker(key)),
		chromedp.SetUploadFiles("#f-file", paths),
		chromedp.WaitVisible("#f-files-2-location_url"),
		chromedp.SendKeys("#f-files-0-location_url", "https://example.com/p/1/a"),
	)
	saveScreenshot(t, ctx, "e2e-form.png")

	step(t, ctx, "submit", 30*time.Second,
		chromedp.Click("#submit"),
		chromedp.WaitVisible("#report-status"),
	)
	loc := value(t, ctx, "location", chromedp.Location())
	id := loc[strings.LastIndex(loc, "/")+1:]
	if !strings.HasPrefix(strings.TrimPrefix(loc, base), "/reports/") || id == "" {
		t.Fatalf("after submitting the browser is at %s, not a status page", loc)
	}
	t.Logf("report %s submitted after %v", id, time.Since(began).Round(time.Millisecond))

	// The page follows the report live, without a reload, until NCMEC's
	// report is finished.
	step(t, ctx, "status page shows finished", 45*time.Second,
		chromedp.WaitVisible(`#report-status[data-status="finished"]`))
	live := value(t, ctx, "case on the live page", chromedp.Text("#case"))
	t.Logf("status page finished after %v; its case then: %q", time.Since(began).Round(time.Millisecond), live)

	// The case-writer's last word may come after NCMEC's: wait until the
	// report has come to rest, then look at the page again.
	apiCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rep stack.Report
	var err error
	testenv.Eventually(t, 30*time.Second, "report finished and its case written in its final state", func() bool {
		rep, err = s.Report(apiCtx, id)
		return err == nil && stack.Settled(rep)
	})
	if rep.Status != "finished" || rep.NCMEC.ReportID == 0 {
		t.Fatalf("report %s came to rest as %s (NCMEC report %d)", id, rep.Status, rep.NCMEC.ReportID)
	}
	step(t, ctx, "status page shows the case", 20*time.Second,
		chromedp.Navigate(loc),
		chromedp.WaitVisible(`#report-status[data-status="finished"]`),
		chromedp.WaitVisible(`//dd[@id="case" and contains(., "`+rep.Case.ID+`")]`),
	)
	text := value(t, ctx, "page text", chromedp.Text("#live"))
	for _, want := range []string{
		"NCMEC report " + strconv.FormatInt(rep.NCMEC.ReportID, 10) + " finished",
		rep.Case.ID + " (" + rep.Case.State + ")",
		"3 of 3",                           // files at NCMEC
		"Rita Reporter <rita@example.com>", // the signed-in staff member submitted it
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status page lacks %q; it reads:\n%s", want, text)
		}
	}
	for _, f := range rep.Files {
		if f.NCMECFileID == "" || !strings.Contains(text, f.NCMECFileID) {
			t.Errorf("status page lacks file %s's NCMEC id %q", f.Name, f.NCMECFileID)
		}
	}
	html := value(t, ctx, "page html", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if strings.Contains(html, marker) {
		t.Error("the status page shows the uploaded bytes")
	}
	saveScreenshot(t, ctx, "e2e-status.png")

	// The case names the submitter as people know them, from the ID token.
	var reporter any
	for _, c := range s.SF.Records("Case") {
		if c["Takedown_Report_Id__c"] == id {
			reporter = c["Reporter__c"]
		}
	}
	if reporter != "Rita Reporter <rita@example.com>" {
		t.Errorf("the case's Reporter__c is %v, want the submitter's name and e-mail", reporter)
	}

	// The same report across NCMEC, Salesforce and the audit log.
	res := s.Check(apiCtx, []stack.Submitted{{Key: key, ID: id, Files: 3}})
	for _, p := range res.Problems {
		t.Error(p)
	}
	if got := res.Outcomes[id]; got != stack.OutcomeFinished {
		t.Errorf("outcome %s, want %s", got, stack.OutcomeFinished)
	}
	for name, n := range s.Crashes() {
		if n != 0 {
			t.Errorf("%s exited on its own %d times", name, n)
		}
	}
	t.Logf("NCMEC report %d, Salesforce case %s, %v in all", rep.NCMEC.ReportID, rep.Case.ID, time.Since(began).Round(time.Millisecond))
}

// chromiumPath finds Chromium; without it the test is skipped, unless CI
// is set, where a missing browser must not pass unnoticed.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and CI is set (Debian: apt-get install chromium)")
	}
	t.Skip("chromium is not installed (Debian: apt-get install chromium); set CI to make this a failure")
	return ""
}

// browser starts headless Chromium on a fresh profile, with nothing that
// reaches the network by itself; it is closed when the test ends.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 1600),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelCtx)
	// The first action starts the browser, which lives as long as the
	// context of that action: the test's whole browser deadline.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// step runs actions within a deadline; on failure it shows where the
// browser is and what the page says.
func step(t *testing.T, ctx context.Context, name string, deadline time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	for i, a := range actions {
		if err := chromedp.Do(sctx, a); err != nil {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			page, _ := chromedp.Run(qctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
			cancel()
			t.Fatalf("%s, action %d (deadline %v): %v; the page:\n%s", name, i, deadline, err, page)
		}
	}
}

func value[T any](t *testing.T, ctx context.Context, name string, a chromedp.Action[T]) T {
	t.Helper()
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(vctx, a)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// saveScreenshot writes a full-page screenshot to <repo>/test-artifacts.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	img := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	dir, err := filepath.Abs(filepath.Join("..", "test-artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

// imageFile is a small image whose pixels derive from seed, encoded as
// png or jpeg.
func imageFile(t *testing.T, format, seed string) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 96, 64))
	for y := range 64 {
		for x := range 96 {
			c := seed[(x*7+y*3)%len(seed)]
			img.Set(x, y, color.RGBA{R: c * 3, G: byte(x * 2), B: byte(y * 4), A: 255})
		}
	}
	var b bytes.Buffer
	var err error
	if format == "png" {
		err = png.Encode(&b, img)
	} else {
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
