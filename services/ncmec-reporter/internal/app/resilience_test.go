package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
	"takedown/services/ncmec-reporter/internal/app"
	"takedown/services/ncmec-reporter/internal/store"
)

// count returns how many events of each type the stream holds.
func count(evs []*pb.Envelope) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		m[e.Type]++
	}
	return m
}

// The reporter killed after each step resumes in a fresh process over the
// same database, NATS and NCMEC: one NCMEC report, three files, finished
// once, every event once.
func TestCrashAndResume(t *testing.T) {
	t.Parallel()
	points := []string{"submit", "upload:0", "upload:1", "upload:2", "fileinfo:0", "fileinfo:1", "fileinfo:2", "finish:sent", "finish"}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			first := h.start(app.Options{CrashAfter: point})
			id, _ := h.submit(false, files3()...)
			first.crashed(t)
			h.start(app.Options{}) // a new process; the old lease must expire first
			evs := h.waitEnd(id, 30*time.Second)

			st := h.sim.State()
			if len(st.Reports) != 1 {
				t.Fatalf("%d NCMEC reports, want 1", len(st.Reports))
			}
			if r := st.Reports[0]; r.Status != ncmecsim.StatusFinished || len(r.Files) != 3 {
				t.Fatalf("NCMEC report %s with %d files, want finished with 3", r.Status, len(r.Files))
			}
			if st.Calls[ncmec.EndpointSubmit] != 1 || st.Calls[ncmec.EndpointUpload] != 3 {
				t.Errorf("calls %v: want 1 submit and 3 uploads", st.Calls)
			}
			want := map[string]int{events.NcmecOpened: 1, events.NcmecFileUploaded: 3, events.NcmecFinished: 1}
			if got := count(evs); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("events %v, want %v", got, want)
			}
			fin := evs[len(evs)-1].GetNcmecFinished()
			if fin == nil || len(fin.NcmecFileIds) != 3 {
				t.Fatalf("last event %v", evs[len(evs)-1])
			}
			if point == "finish:sent" && fin.ReceiptXml != "" {
				t.Errorf("a receipt after 5102: %q", fin.ReceiptXml)
			}
		})
	}
}

// Killed between sending /submit and recording the answer, the restarted
// reporter records the ambiguity and opens a fresh report (DESIGN.md §5):
// the first stays unfinished at NCMEC, which deletes it by itself.
func TestCrashAfterSubmitSentOpensFreshReport(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	first := h.start(app.Options{CrashAfter: "submit:sent"})
	id, _ := h.submit(false, files3()[:1]...)
	first.crashed(t)
	h.start(app.Options{})
	evs := h.waitEnd(id, 30*time.Second)
	if last := evs[len(evs)-1]; last.Type != events.NcmecFinished {
		t.Fatalf("ended with %v", last)
	}
	amb := evs[0].GetNcmecSubmitAmbiguous()
	if amb == nil || amb.Attempt != 1 || amb.GaveUp || amb.Filing != 1 || !strings.Contains(amb.Description, "delete it unfinished") {
		t.Fatalf("first event %v, want an ambiguous /submit", evs[0])
	}
	st := h.sim.State()
	if st.Calls[ncmec.EndpointSubmit] != 2 || len(st.Reports) != 2 {
		t.Fatalf("%d submits, %d reports; want a fresh report after the ambiguous one", st.Calls[ncmec.EndpointSubmit], len(st.Reports))
	}
	finished := 0
	for _, r := range st.Reports {
		if r.Status == ncmecsim.StatusFinished {
			finished++
		}
	}
	if finished != 1 {
		t.Fatalf("%d finished NCMEC reports, want 1", finished)
	}
}

type faultCase struct {
	fault ncmecsim.Fault
	// outcome: "finished", or the step of ncmec.failed
	outcome string
	code    int
	desc    string // part of the failure's description
	// submits is the number of /submit calls expected (1 unless retried)
	submits int
	// learnt is how the finish was learnt, when it matters
	learnt string
}

// Every injected failure class at every endpoint: transient ones are retried
// to success, permanent ones fail with the step and the code, and an
// ambiguous /submit opens a fresh report, up to the bound.
func TestFaults(t *testing.T) {
	t.Parallel()
	f := func(ep, kind string, code, status int) ncmecsim.Fault {
		return ncmecsim.Fault{Endpoint: ep, Kind: kind, Code: code, Status: status, Times: 2}
	}
	cases := map[string]faultCase{
		// /submit: retried only when NCMEC's answer proves no report was opened.
		"submit_1000":       {f("submit", "code", 1000, 0), "finished", 0, "", 3, ""},
		"submit_1100":       {f("submit", "code", 1100, 0), "finished", 0, "", 3, ""},
		"submit_rate_limit": {f("submit", "rate_limit", 0, 0), "finished", 0, "", 3, ""},
		// Ambiguous /submit: a fresh report each time, up to the bound (3).
		"submit_http503":    {f("submit", "http", 0, 503), "finished", 0, "", 3, ""},
		"submit_drop":       {f("submit", "drop", 0, 0), "finished", 0, "", 3, ""},
		"submit_lost":       {f("submit", "lost_response", 0, 0), "finished", 0, "", 3, ""},
		"submit_slow":       {ncmecsim.Fault{Endpoint: "submit", Kind: "slow", DelayMS: 3000, Times: 1}, "finished", 0, "", 2, ""},
		"submit_bound":      {ncmecsim.Fault{Endpoint: "submit", Kind: "lost_response", Times: -1}, "submit", 0, "Gave up after 3", 3, ""},
		"submit_4100":       {f("submit", "code", 4100, 0), "submit", 4100, "Validation", 1, ""},
		"submit_2000":       {f("submit", "code", 2000, 0), "submit", 2000, "credentials", 1, ""},
		"submit_3100":       {f("submit", "code", 3100, 0), "submit", 3100, "credentials", 1, ""},
		"upload_1111":       {f("upload", "code", 1111, 0), "finished", 0, "", 1, ""},
		"upload_1110":       {f("upload", "code", 1110, 0), "finished", 0, "", 1, ""},
		"upload_http503":    {f("upload", "http", 0, 503), "finished", 0, "", 1, ""},
		"upload_drop":       {f("upload", "drop", 0, 0), "finished", 0, "", 1, ""},
		"upload_lost":       {f("upload", "lost_response", 0, 0), "finished", 0, "", 1, ""},
		"upload_rate_limit": {f("upload", "rate_limit", 0, 0), "finished", 0, "", 1, ""},
		"upload_slow":       {ncmecsim.Fault{Endpoint: "upload", Kind: "slow", DelayMS: 300}, "finished", 0, "", 1, ""},
		"upload_4200":       {f("upload", "code", 4200, 0), "upload", 4200, "Malformed", 1, ""},
		"upload_5001":       {f("upload", "code", 5001, 0), "upload", 5001, "no longer has the report", 1, ""},
		"upload_2000":       {f("upload", "code", 2000, 0), "upload", 2000, "credentials", 1, ""},
		"fileinfo_1000":     {f("fileinfo", "code", 1000, 0), "finished", 0, "", 1, ""},
		"fileinfo_http502":  {f("fileinfo", "http", 0, 502), "finished", 0, "", 1, ""},
		"fileinfo_drop":     {f("fileinfo", "drop", 0, 0), "finished", 0, "", 1, ""},
		"fileinfo_lost":     {f("fileinfo", "lost_response", 0, 0), "finished", 0, "", 1, ""},
		"fileinfo_slow":     {ncmecsim.Fault{Endpoint: "fileinfo", Kind: "slow", DelayMS: 3000}, "finished", 0, "", 1, ""},
		"fileinfo_4100":     {f("fileinfo", "code", 4100, 0), "fileinfo", 4100, "Validation", 1, ""},
		"fileinfo_5002":     {f("fileinfo", "code", 5002, 0), "fileinfo", 5002, "", 1, ""},
		"finish_1000":       {f("finish", "code", 1000, 0), "finished", 0, "", 1, ""},
		"finish_http503":    {f("finish", "http", 0, 503), "finished", 0, "", 1, ""},
		"finish_drop":       {f("finish", "drop", 0, 0), "finished", 0, "", 1, ""},
		"finish_lost":       {f("finish", "lost_response", 0, 0), "finished", 0, "", 1, "finish_5102"}, // then 5102: success
		"finish_rate_limit": {f("finish", "rate_limit", 0, 0), "finished", 0, "", 1, ""},
		"finish_3000":       {f("finish", "code", 3000, 0), "finish", 3000, "credentials", 1, ""},
		"finish_5001":       {f("finish", "code", 5001, 0), "finish", 5001, "no longer has the report", 1, ""},
		"upload_window":     {ncmecsim.Fault{Endpoint: "upload", Kind: "code", Code: 1111, Times: -1}, "upload", 1111, "retry window", 1, ""},
		"fileinfo_window":   {ncmecsim.Fault{Endpoint: "fileinfo", Kind: "http", Status: 503, Times: -1}, "fileinfo", 0, "retry window", 1, ""},
		"finish_window":     {ncmecsim.Fault{Endpoint: "finish", Kind: "code", Code: 1000, Times: -1}, "finish", 1000, "retry window", 1, ""},
		"submit_window":     {ncmecsim.Fault{Endpoint: "submit", Kind: "code", Code: 1100, Times: -1}, "submit", 1100, "retry window", 0, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{tune: func(cfg *app.Config) {
				cfg.NCMEC.CallTimeout = time.Second
				if strings.HasSuffix(name, "_window") {
					cfg.Worker.Window = time.Second
				}
			}})
			if err := h.sim.Inject(c.fault); err != nil {
				t.Fatal(err)
			}
			h.start(app.Options{})
			id, _ := h.submit(false, files3()[:2]...)
			evs := h.waitEnd(id, 40*time.Second)
			last := evs[len(evs)-1]
			st := h.sim.State()
			if c.submits > 0 && st.Calls[ncmec.EndpointSubmit] != c.submits {
				t.Errorf("%d submits, want %d", st.Calls[ncmec.EndpointSubmit], c.submits)
			}
			if c.outcome == "finished" {
				if last.Type != events.NcmecFinished {
					t.Fatalf("ended with %s %v", last.Type, last.GetNcmecFailed())
				}
				var done []ncmecsim.ReportState
				for _, r := range st.Reports {
					if r.Status == ncmecsim.StatusFinished {
						done = append(done, r)
					}
				}
				if len(done) != 1 || len(st.Reports) > max(c.submits, 1) {
					t.Fatalf("NCMEC state %+v: want one finished report of at most %d", st.Reports, max(c.submits, 1))
				}
				fin := last.GetNcmecFinished()
				if c.learnt != "" && fin.LearnedFrom != c.learnt {
					t.Errorf("finish learnt from %q, want %q", fin.LearnedFrom, c.learnt)
				}
				// A lost upload answer may leave an identical duplicate; never
				// fewer than our files, never a file that is not ours. Each
				// extra copy is named in the finished event.
				n := len(done[0].Files)
				if n < 2 {
					t.Errorf("%d files at NCMEC", n)
				}
				if len(fin.ExtraNcmecFileIds) != n-2 {
					t.Errorf("%d files at NCMEC, extra copies named %v", n, fin.ExtraNcmecFileIds)
				}
				if n > 2 && len(fin.ExtraCopiesOf) == 0 {
					t.Errorf("NCMEC holds %d copies of 2 files, but no file is named as copied", n)
				}
				return
			}
			fl := last.GetNcmecFailed()
			if fl == nil {
				t.Fatalf("ended with %s, want ncmec.failed", last.Type)
			}
			if fl.Step != c.outcome || int(fl.Code) != c.code || !strings.Contains(fl.Description, c.desc) {
				t.Fatalf("failed step=%s code=%d %q; want step=%s code=%d containing %q", fl.Step, fl.Code, fl.Description, c.outcome, c.code, c.desc)
			}
			opened := len(st.Reports) == 1 && st.Calls[ncmec.EndpointSubmit] > 0 && fl.Step != "submit"
			if fl.ReportOpened != opened {
				t.Errorf("report_opened %v, want %v", fl.ReportOpened, opened)
			}
			for _, r := range st.Reports {
				if r.Status == ncmecsim.StatusFinished {
					t.Error("a failed filing was finished at NCMEC")
				}
			}
		})
	}
}

// Killed mid-filing, the reporter's filing is taken over by another
// instance and moves again at NCMEC within 15 s of its start, with the
// default lease (issue 20: the lease used to be 2 minutes).
func TestResumeWithinSecondsOfRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{tune: func(cfg *app.Config) {
		cfg.Worker.Lease = 0 // the default
	}})
	first := h.start(app.Options{CrashAfter: "upload:0"})
	id, _ := h.submit(false, files3()...)
	first.crashed(t)
	restarted := time.Now()
	h.start(app.Options{})
	testenv.Eventually(t, 15*time.Second, "the filing moves at NCMEC after the take-over", func() bool {
		for _, r := range h.sim.State().Reports {
			if r.LastModified.After(restarted) {
				return true
			}
		}
		return false
	})
	h.waitEnd(id, 30*time.Second)
}

// A restarted instance resumes its previous life's filings at once: with a
// lease of 10 minutes, only the instance's release can explain a filing
// finished within seconds of the restart. Another instance leaves them be.
func TestRestartedInstanceResumesAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{tune: func(cfg *app.Config) {
		cfg.Worker.Lease = 10 * time.Minute
		cfg.Worker.Instance = "reporter-a"
	}})
	first := h.start(app.Options{CrashAfter: "upload:0"})
	id, _ := h.submit(false, files3()...)
	first.crashed(t)

	// Another instance (a name that merely starts the same) does not
	// touch reporter-a's lease.
	pool, err := database.Open(context.Background(), h.db, "ncmec")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if n, err := store.New(pool).ReleaseInstance(context.Background(), "reporter-ab#"); err != nil || n != 0 {
		t.Fatalf("another instance released %d leases (%v), want 0", n, err)
	}

	restarted := time.Now()
	h.start(app.Options{})
	h.waitEnd(id, 30*time.Second)
	if took := time.Since(restarted); took > 15*time.Second {
		t.Fatalf("the filing finished %v after the restart of its instance, want at once (within 15 s; the lease is 10 min)", took)
	}
}
