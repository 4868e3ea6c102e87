package app_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/image/draw"
	"google.golang.org/protobuf/proto"

	"takedown/pkg/events"
	"takedown/pkg/pdq"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
)

// scene draws a photo-like image: smooth gradients and a few shapes, so
// that PDQ has structure to hash. Different seeds give unrelated scenes.
func scene(w, h int, seed float64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			v := 128 + 60*math.Sin(seed*3*fx+2*fy) + 50*math.Cos(seed*5*fy-3*fx*fx)
			if dx, dy := fx-0.3*seed/2, fy-0.6; dx*dx+dy*dy < 0.02*seed {
				v = 255 - v
			}
			img.Set(x, y, color.RGBA{uint8(v), uint8(255 - v), uint8(v / 2), 255})
		}
	}
	return img
}

func encodeJPEG(t *testing.T, img image.Image, quality int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func resized(img image.Image, w, h int) image.Image {
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Over, nil)
	return dst
}

func (h *harness) submit(t *testing.T, reportJSON string, files ...file) map[string]any {
	t.Helper()
	ct, b := body(t, reportJSON, files...)
	resp, out := h.post(ct, bytes.NewReader(b), token)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %v", resp.StatusCode, out)
	}
	return out
}

func filesOf(rep map[string]any) []map[string]any {
	var out []map[string]any
	for _, f := range rep["files"].([]any) {
		out = append(out, f.(map[string]any))
	}
	return out
}

func TestReportedBeforeFindsResizedCopyAndNotAnUnrelatedImage(t *testing.T) {
	t.Parallel()
	// Meta's PDQ test photos (../shared/pdq): a bridge, and an unrelated scene.
	dir := testenv.SharedDir(t, "pdq")
	h := start(t, testenv.S3(t))
	originalJPEG, err := os.ReadFile(filepath.Join(dir, "images", "reg-test-input__dih__bridge-1-original.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	unrelated, err := os.ReadFile(filepath.Join(dir, "images", "reg-test-input__labelme-subset__q0003.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	original, err := jpeg.Decode(bytes.NewReader(originalJPEG))
	if err != nil {
		t.Fatal(err)
	}
	first := h.submit(t, goodReport, file{"original.jpg", originalJPEG}, file{"notes.txt", []byte("not an image")})
	f := filesOf(first)
	if p, _ := f[0]["pdq"].(string); len(p) != 64 {
		t.Fatalf("the JPEG has no PDQ hash: %v", f[0])
	}
	if f[1]["pdq"] != nil {
		t.Fatalf("a text file got a PDQ hash: %v", f[1])
	}

	b := original.Bounds()
	copyJPEG := encodeJPEG(t, resized(original, b.Dx()/2, b.Dy()/2), 60) // half the size, re-compressed
	exact := []byte("not an image")
	second := h.submit(t, `{"incident_time": "2026-01-02T15:04:05Z"}`,
		file{"copy.jpg", copyJPEG}, file{"other.jpg", unrelated}, file{"same.txt", exact})

	status, rep := h.get("/api/v1/reports/" + second["id"].(string))
	if status != 200 {
		t.Fatal(status)
	}
	files := filesOf(rep)
	match := func(i int) []any { m, _ := files[i]["reported_before"].([]any); return m }
	if m := match(0); len(m) != 1 || m[0].(map[string]any)["report_id"] != first["id"] || m[0].(map[string]any)["by"] != "pdq" {
		t.Fatalf("the resized copy: reported_before = %v, want the first report by pdq", m)
	} else {
		a, _ := pdq.ParseHash(f[0]["pdq"].(string))
		b, _ := pdq.ParseHash(files[0]["pdq"].(string))
		t.Logf("resized and re-compressed copy: PDQ distance %d (threshold 31), reported distance %v", a.Distance(b), m[0].(map[string]any)["distance"])
	}
	if m := match(1); len(m) != 0 {
		a, _ := pdq.ParseHash(f[0]["pdq"].(string))
		b, _ := pdq.ParseHash(files[1]["pdq"].(string))
		t.Fatalf("an unrelated image matched (distance %d): %v", a.Distance(b), m)
	}
	if m := match(2); len(m) != 1 || m[0].(map[string]any)["by"] != "sha256" || m[0].(map[string]any)["file_id"] != f[1]["id"] {
		t.Fatalf("the same bytes: reported_before = %v, want the first report's text file by sha256", m)
	}
	// The first report was reported before nothing.
	_, rep = h.get("/api/v1/reports/" + first["id"].(string))
	for _, f := range filesOf(rep) {
		if f["reported_before"] != nil {
			t.Fatalf("an earlier report lists a later one: %v", f)
		}
	}
}

func TestDecompressionBombIsStoredWithoutPDQ(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	// A valid PNG header declaring 100000×100000 pixels (40 GB decoded).
	var b bytes.Buffer
	png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1)))
	bomb := b.Bytes()
	copy(bomb[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	rep := h.submit(t, goodReport, file{"bomb.png", bomb})
	if f := filesOf(rep)[0]; f["pdq"] != nil || f["content_type"] != "image/png" {
		t.Fatalf("bomb: %v", f)
	}
}

func TestPDQAndPriorNCMECReportsTravelInTheEvent(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	uploader := `"uploader": {"username": "repeat-offender"}`
	first := h.submit(t, `{"incident_time": "2026-01-02T15:04:05Z", `+uploader+`}`, file{"a.jpg", encodeJPEG(t, scene(300, 200, 1), 90)})
	id := first["id"].(string)
	// NCMEC finishes the first report (as the reporter would announce it).
	for _, p := range []proto.Message{
		&pb.NcmecOpened{NcmecReportId: 4242, Environment: "production", Filing: 1},
		&pb.NcmecFinished{NcmecReportId: 4242},
	} {
		ev, _ := events.New(id, events.Service("ncmec-reporter"), p)
		b, _ := events.Marshal(ev)
		m := nats.NewMsg(events.Subject(ev.Type))
		m.Data = b
		m.Header.Set(jetstream.MsgIDHeader, ev.EventId)
		if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "intake knows the first report finished", func() bool {
		_, rep := h.get("/api/v1/reports/" + id)
		return rep["status"] == "finished"
	})
	second := h.submit(t, `{"incident_time": "2026-01-02T15:04:05Z", `+uploader+`}`, file{"b.jpg", encodeJPEG(t, scene(300, 200, 3), 90)})
	var sub *pb.ReportSubmitted
	testenv.Eventually(t, 10*time.Second, "the second report's event", func() bool {
		for _, e := range h.submitted() {
			if e.ReportId == second["id"] {
				sub = e.GetReportSubmitted()
			}
		}
		return sub != nil
	})
	if got := sub.Report.Uploader.PriorNcmecReportIds; fmt.Sprint(got) != "[4242]" {
		t.Fatalf("prior NCMEC reports %v, want [4242]", got)
	}
	if p := sub.Files[0].Pdq; len(p) != 64 || p != filesOf(second)[0]["pdq"] {
		t.Fatalf("the event's PDQ %q differs from the API's %v", p, filesOf(second)[0]["pdq"])
	}
}

// publish sends an event into the stream as its owning service would.
func (h *harness) publish(t *testing.T, reportID string, p proto.Message) {
	t.Helper()
	ev, err := events.New(reportID, nil, p)
	if err != nil {
		t.Fatal(err)
	}
	ev.Actor = events.Service(events.Owners(ev.Type)[0]) // consumers refuse a service publishing what it does not own
	b, _ := events.Marshal(ev)
	m := nats.NewMsg(events.Subject(ev.Type))
	m.Data = b
	m.Header.Set(jetstream.MsgIDHeader, ev.EventId)
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func TestCaseStateNeverMovesBack(t *testing.T) {
	t.Parallel()
	h := start(t, testenv.S3(t))
	id := h.submit(t, goodReport, file{"a.bin", []byte("x")})["id"].(string)
	// case-writer wrote the case twice; the later write's event comes first.
	h.publish(t, id, &pb.CaseUpserted{CaseId: "500A", State: "finished"})
	h.publish(t, id, &pb.CaseUpserted{CaseId: "500A", State: "opened"})
	testenv.Eventually(t, 10*time.Second, "both case events handled", func() bool {
		_, rep := h.get("/api/v1/reports/" + id)
		evs, _ := rep["events"].([]any)
		return len(evs) == 3
	})
	if _, rep := h.get("/api/v1/reports/" + id); rep["case"].(map[string]any)["state"] != "finished" {
		t.Fatalf("case %v, want state finished", rep["case"])
	}
}
