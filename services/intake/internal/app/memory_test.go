package app_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"takedown/pkg/testenv"
)

// deepPNG is a w×h 16-bit RGBA PNG of one colour: at 7000×7000, about half
// a MiB of file and 392 MB decoded. Its rows are compressed as they are
// made, so the test never holds the image.
func deepPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	chunk := func(b *bytes.Buffer, typ string, data []byte) {
		binary.Write(b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		binary.Write(b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	var idat bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&idat, zlib.BestCompression)
	row := make([]byte, 1+8*w) // filter byte 0, then the pixels
	for i := 1; i < len(row); i += 8 {
		copy(row[i:], []byte{0x80, 0, 0x40, 0, 0x20, 0, 0xff, 0xff})
	}
	for range h {
		zw.Write(row)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, 16, 6, 0, 0, 0) // 16-bit, RGBA, deflate, no filter, no interlace
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk(&b, "IHDR", ihdr)
	chunk(&b, "IDAT", idat.Bytes())
	chunk(&b, "IEND", nil)
	return b.Bytes()
}

// Issue 17: one 372 KiB 16-bit PNG of 7000×7000 raised intake's memory by
// 276 MiB, four at once by 2.5 GiB. Eight at once must now raise it by at
// most 128 MiB, and each report is still stored, without PDQ, saying why.
func TestDeepImagesAtOnceStayWithinMemory(t *testing.T) {
	deepImagesAtOnce(t)
}

// BenchmarkDeepImagesAtOnce is the same goal in `make bench`: it reports
// intake's peak RSS growth while 8 deep PNGs are submitted at once.
func BenchmarkDeepImagesAtOnce(b *testing.B) {
	for range b.N {
		b.ReportMetric(float64(deepImagesAtOnce(b))/(1<<20), "peak-RSS-growth-MiB")
	}
}

// deepImagesAtOnce submits 8 deep PNGs at once and checks the memory goal
// (≤ 128 MiB of peak RSS growth) and that each is stored without PDQ; it
// returns the growth.
func deepImagesAtOnce(t testing.TB) int64 {
	h := start(t, testenv.S3(t))
	img := deepPNG(t, 7000, 7000)
	t.Logf("PNG: %d KiB declaring 7000×7000 at 16 bits per channel, RGBA", len(img)>>10)
	const n = 8
	var types []string
	var bodies [][]byte
	for range n {
		ct, b := body(t, goodReport, file{"deep.png", img})
		types, bodies = append(types, ct), append(bodies, b)
	}
	runtime.GC()
	debug.FreeOSMemory()
	base := readRSS()
	stop := rss()
	var wg sync.WaitGroup
	answers := make([]map[string]any, n)
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			resp, ans := h.post(types[i], bytes.NewReader(bodies[i]), token)
			codes[i], answers[i] = resp.StatusCode, ans
		})
	}
	wg.Wait()
	growth := stop() - base
	t.Logf("peak RSS growth with %d at once: %d MiB", n, growth>>20)
	if growth > 128<<20 {
		t.Errorf("peak RSS grew by %d MiB, want at most 128 MiB", growth>>20)
	}
	for i := range n {
		if codes[i] != http.StatusCreated {
			t.Errorf("submission %d: %d %v, want 201", i, codes[i], answers[i])
			continue
		}
		f := answers[i]["files"].([]any)[0].(map[string]any)
		skipped, _ := f["pdq_skipped"].(string)
		if _, hashed := f["pdq"]; hashed || !strings.Contains(skipped, "PDQ_MEMORY") {
			t.Errorf("submission %d: pdq %v, pdq_skipped %q: want no hash and the memory budget named", i, f["pdq"], skipped)
		}
	}
	if got := h.count("reports"); got != n {
		t.Errorf("%d reports stored, want %d", got, n)
	}
	return int64(growth)
}
