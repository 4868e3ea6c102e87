package pdq

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"runtime"
	"sync"
	"testing"
	"time"
)

// bombPNGOf is bombPNG for any bit depth and colour type (6: RGBA).
func bombPNGOf(w, h uint32, depth, colorType byte) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, depth, colorType, 0, 0, 0)
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	b.Write(pngChunk("IHDR", ihdr))
	b.Write(pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}))
	b.Write(pngChunk("IEND", nil))
	return b.Bytes()
}

// The image: 7000×7000 16-bit RGBA is 49 megapixels, under the
// pixel limit, but 392 MB decoded. The budget counts bytes and refuses it
// before allocating.
func TestDeepImageRefusedByBytesNotPixels(t *testing.T) {
	bomb := bombPNGOf(7000, 7000, 16, 6)
	budget := NewBudget(128 << 20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := FromReader(bytes.NewReader(bomb), Options{Budget: budget})
	runtime.ReadMemStats(&after)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want a *TooLargeError", err)
	}
	if tl.Bytes < 7000*7000*8 || tl.MaxBytes != 128<<20 {
		t.Errorf("error fields: %+v, want Bytes ≥ %d and MaxBytes %d", tl, 7000*7000*8, 128<<20)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("allocated %d bytes refusing it, want under 64 KiB", got)
	}
	// The same image at 8-bit grey (49 MB) fits and only fails to decode.
	if _, err := FromReader(bytes.NewReader(bombPNGOf(7000, 7000, 8, 0)), Options{Budget: budget}); !errors.Is(err, ErrDecode) {
		t.Errorf("8-bit grey 7000×7000: got %v, want ErrDecode (within the budget)", err)
	}
	// Without a budget, DefaultMaxBytes applies.
	if _, err := FromReader(bytes.NewReader(bomb), Options{}); !errors.As(err, &tl) || tl.MaxBytes != DefaultMaxBytes {
		t.Errorf("no budget: got %v, want a *TooLargeError against DefaultMaxBytes", err)
	}
}

// The cost is what admission rests on: it must not be below what a decode
// and hash really allocate, for every kind of image the decoders return.
func TestCostCoversWhatADecodeAllocates(t *testing.T) {
	for _, size := range []image.Point{{900, 700}, {1800, 1400}} {
		costCases(t, size.X, size.Y)
	}
}

func costCases(t *testing.T, w, h int) {
	g := gradient(w, h)
	gray := image.NewGray(g.Bounds())
	gray16 := image.NewGray16(g.Bounds())
	rgba64 := image.NewNRGBA64(g.Bounds())
	pal := image.NewPaletted(g.Bounds(), color.Palette{color.Black, color.White, color.NRGBA{200, 10, 10, 255}})
	for y := range h {
		for x := range w {
			c := g.NRGBAAt(x, y)
			gray.Set(x, y, c)
			gray16.Set(x, y, c)
			rgba64.Set(x, y, c)
			pal.Set(x, y, c)
		}
	}
	var gifData bytes.Buffer
	if err := gif.Encode(&gifData, pal, nil); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"png nrgba":     encodePNG(t, g),
		"png gray":      encodePNG(t, gray),
		"png gray16":    encodePNG(t, gray16),
		"png nrgba64":   encodePNG(t, rgba64),
		"png paletted":  encodePNG(t, pal),
		"jpeg 4:2:0":    encodeJPEG(t, g, 90),
		"jpeg gray":     encodeJPEG(t, gray, 90),
		"gif":           gifData.Bytes(),
		"webp lossless": solidWebP(w, h, color.NRGBA{10, 200, 30, 255}),
	}
	for name, data := range cases {
		t.Run(fmt.Sprintf("%s %d×%d", name, w, h), func(t *testing.T) {
			budget := NewBudget(1 << 30)
			var cost int64
			_, _, err := decode(bytes.NewReader(data), Options{Budget: budget}, func(c int64) error { cost = c; return nil })
			if err != nil {
				t.Fatal(err)
			}
			bufPool = sync.Pool{} // measure the hashing buffers too
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if _, err := FromReader(bytes.NewReader(data), Options{Budget: budget}); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			got := int64(after.TotalAlloc - before.TotalAlloc)
			t.Logf("%d×%d: cost %d bytes, allocated %d", w, h, cost, got)
			if got > cost {
				t.Errorf("allocated %d bytes, over the cost of %d", got, cost)
			}
		})
	}
}

// Concurrent decodes share the budget: one waits while another holds it,
// and gives up when its context ends.
func TestBudgetIsShared(t *testing.T) {
	data := encodePNG(t, gradient(300, 200))
	budget := NewBudget(4 << 20)
	if err := budget.sem.Acquire(t.Context(), 4<<20); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := FromReaderContext(ctx, bytes.NewReader(data), Options{Budget: budget}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with the budget taken: got %v, want the context's deadline", err)
	}
	budget.sem.Release(4 << 20)
	if _, err := FromReaderContext(t.Context(), bytes.NewReader(data), Options{Budget: budget}); err != nil {
		t.Fatalf("with the budget free: %v", err)
	}
	// Each decode gives its share back.
	if !budget.sem.TryAcquire(4 << 20) {
		t.Error("the budget was not given back after the decode")
	}
}
