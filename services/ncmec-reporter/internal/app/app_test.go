package app_test

import (
	"context"
	"encoding/xml"
	"slices"
	"strings"
	"testing"
	"time"

	"takedown/pkg/events"
	"takedown/pkg/filing"
	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/ncmec-reporter/internal/app"
)

// A 3-file report ends finished: one NCMEC report holding our 3 files with
// our MD5s and valid documents, a receipt listing 3 file ids, and the events
// opened, file_uploaded ×3, finished in that order.
func TestThreeFilesFinished(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{xsd: true, tune: func(c *app.Config) { c.Worker.UploadParallel = 3 }})
	h.start(app.Options{})
	id, files := h.submit(false, files3()...)
	evs := h.waitEnd(id, 30*time.Second)

	want := []string{events.NcmecOpened, events.NcmecFileUploaded, events.NcmecFileUploaded, events.NcmecFileUploaded, events.NcmecFinished}
	if got := types(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	st := h.sim.State()
	if len(st.Reports) != 1 {
		t.Fatalf("%d reports at NCMEC, want 1", len(st.Reports))
	}
	rep := st.Reports[0]
	if rep.Status != ncmecsim.StatusFinished || len(rep.Files) != 3 {
		t.Fatalf("NCMEC report %s with %d files", rep.Status, len(rep.Files))
	}
	opened := evs[0].GetNcmecOpened()
	if opened.NcmecReportId != rep.ID || opened.Environment != "production" || opened.Filing != 1 {
		t.Errorf("opened: %v", opened)
	}
	byID := map[string]ncmecsim.FileState{}
	for _, f := range rep.Files {
		byID[f.ID] = f
	}
	uploaded := map[string]bool{}
	for _, e := range evs[1:4] {
		u := e.GetNcmecFileUploaded()
		i := slices.IndexFunc(files, func(f *pb.File) bool { return f.Id == u.FileId })
		sf, ok := byID[u.NcmecFileId]
		if i < 0 || !ok || sf.MD5 != files[i].Md5 || u.NcmecMd5 != files[i].Md5 || sf.Size != files[i].Size {
			t.Errorf("file_uploaded %v: NCMEC has %+v", u, sf)
		}
		if sf.Details == "" || !strings.Contains(sf.Details, files[i].Sha256) {
			t.Errorf("file %d: fileinfo missing or without the SHA-256: %q", i, sf.Details)
		}
		uploaded[u.FileId] = true
	}
	if len(uploaded) != 3 {
		t.Errorf("file_uploaded for %d distinct files", len(uploaded))
	}
	// Every read of evidence bytes is on the record: one evidence.accessed
	// per file sent to NCMEC.
	accessed := map[string]string{}
	for _, e := range h.eventsUnder(id, "takedown.evidence.") {
		if a := e.GetEvidenceAccessed(); e.Type == events.EvidenceAccessed && a != nil {
			accessed[a.FileId] = a.Purpose
		}
	}
	for _, f := range files {
		if accessed[f.Id] == "" {
			t.Errorf("no evidence.accessed (with its purpose) for file %s: %v", f.Id, accessed)
		}
	}
	if len(accessed) != len(files) {
		t.Errorf("evidence.accessed for %d files, want %d", len(accessed), len(files))
	}

	fin := evs[4].GetNcmecFinished()
	if fin.NcmecReportId != rep.ID || len(fin.NcmecFileIds) != 3 {
		t.Fatalf("finished: %v", fin)
	}
	var receipt ncmec.DoneResponse
	if err := xml.Unmarshal([]byte(fin.ReceiptXml), &receipt); err != nil || len(receipt.Files.IDs) != 3 || receipt.ReportID != rep.ID {
		t.Fatalf("receipt %q: %v", fin.ReceiptXml, err)
	}
	for _, fid := range receipt.Files.IDs {
		if _, ok := byID[fid]; !ok {
			t.Errorf("receipt lists %s, unknown at NCMEC", fid)
		}
	}

	// The exact XML NCMEC received is stored; the data key is gone.
	var sent string
	var keyGone bool
	var calls int
	if err := h.query(`SELECT convert_from(report_xml, 'UTF8'), key_ciphertext IS NULL,
			(SELECT count(*) FROM ncmec.calls c WHERE c.filing_id = f.id)
		FROM ncmec.filings f WHERE report_id = $1`, id).Scan(&sent, &keyGone, &calls); err != nil {
		t.Fatal(err)
	}
	if sent != rep.XML {
		t.Errorf("stored XML differs from what NCMEC received")
	}
	for _, s := range []string{"ncmec@example.com", "Legal", "legalURL", "termsOfService", "companyTemplate", "bad-user"} {
		if !strings.Contains(sent, s) {
			t.Errorf("report XML lacks %q", s)
		}
	}
	if !keyGone {
		t.Error("the wrapped data key is still stored after finishing")
	}
	if calls != 8 { // submit, 3 uploads, 3 fileinfo, finish
		t.Errorf("%d calls logged, want 8", calls)
	}
	if st := h.testSim.State(); len(st.Reports) != 0 {
		t.Errorf("a production report reached the test environment")
	}
	if got, err := filing.NewHandover(h.js, filing.HandoverConfig{}).ClaimRetract(context.Background(), id, 1, true); err != nil || got != filing.FinishedFirst {
		t.Errorf("hand-over: a retraction is answered %v, %v; want finished first", got, err)
	}
}

// Reports marked test go to the test environment with its credentials.
func TestTestEnvironment(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.start(app.Options{})
	id, _ := h.submit(true, files3()[:1]...)
	evs := h.waitEnd(id, 30*time.Second)
	if got := types(evs); got[len(got)-1] != events.NcmecFinished {
		t.Fatalf("events %v", got)
	}
	if evs[0].GetNcmecOpened().Environment != "test" {
		t.Errorf("opened: %v", evs[0].GetNcmecOpened())
	}
	if n := len(h.testSim.State().Reports); n != 1 {
		t.Errorf("%d reports in the test environment", n)
	}
	if n := len(h.sim.State().Reports); n != 0 {
		t.Errorf("%d reports in production", n)
	}
}

// A redelivered report.submitted files once (inbox + unique filing).
func TestRedeliveredEventFilesOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.start(app.Options{})
	id, pfs := h.submit(false, files3()[:1]...)
	h.waitEnd(id, 30*time.Second)
	// The same report again under a new event id (e.g. intake republished
	// after the duplicate window).
	h.publishSubmitted(id, false, pfs, &pb.WrappedKey{MasterKeyId: "k1", Ciphertext: []byte("x")})
	testEventually(t, func() bool {
		var n int
		_ = h.query(`SELECT count(*) FROM ncmec.inbox`).Scan(&n)
		return n == 2
	})
	var filings int
	if err := h.query(`SELECT count(*) FROM ncmec.filings`).Scan(&filings); err != nil || filings != 1 {
		t.Fatalf("%d filings (%v), want 1", filings, err)
	}
	if n := len(h.sim.State().Reports); n != 1 {
		t.Fatalf("%d NCMEC reports, want 1", n)
	}
}

// An event that cannot be filed is announced as failed, not dropped.
func TestInvalidEventFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.start(app.Options{})
	id := events.NewID()
	h.publishSubmitted(id, false, []*pb.File{{Id: events.NewID(), ObjectKey: "k", Size: 1, Md5: "x"}}, nil)
	evs := h.waitEnd(id, 20*time.Second)
	f := evs[len(evs)-1].GetNcmecFailed()
	if f == nil || f.Step != "submit" || f.ReportOpened || !strings.Contains(f.Description, "data key") {
		t.Fatalf("failed: %v", f)
	}
}

// The retraction service took over before /finish: the worker stops, finishes
// nothing and announces nothing more.
// A retraction that began before the report reached NCMEC stops it from
// ever being opened; the failure event says nothing was opened, which is
// how the retraction service knows there is nothing to retract.
func TestRetractionBeforeSubmitFilesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	id := events.NewID()
	ho := filing.NewHandover(h.js, filing.HandoverConfig{})
	if got, err := ho.ClaimRetract(context.Background(), id, 1, false); got != filing.RetractNow || err != nil {
		t.Fatal(got, err)
	}
	h.start(app.Options{})
	h.submitAs(id, files3()[:1]...)
	var state string
	testEventually(t, func() bool {
		_ = h.query(`SELECT state FROM ncmec.filings WHERE report_id = $1`, id).Scan(&state)
		return state == "failed"
	})
	if n := len(h.sim.State().Reports); n != 0 {
		t.Fatalf("%d NCMEC reports opened for a report retracted before filing", n)
	}
	testEventually(t, func() bool {
		for _, e := range h.events(id) {
			if e.Type == events.NcmecFailed {
				return true
			}
		}
		return false
	})
	var failed int
	for _, e := range h.events(id) {
		switch e.Type {
		case events.NcmecOpened, events.NcmecFinished:
			t.Fatalf("unexpected %s", e.Type)
		case events.NcmecFailed:
			if f := e.GetNcmecFailed(); f.ReportOpened || f.Step != "submit" {
				t.Fatalf("failed event %v", f)
			}
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d failed events, want 1", failed)
	}
}
