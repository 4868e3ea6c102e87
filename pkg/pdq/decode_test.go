package pdq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/image/draw"
)

// pngChunk encodes one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	return b.Bytes()
}

// bombPNG is a valid-looking PNG of a few dozen bytes that declares
// w×h 8-bit grey pixels.
func bombPNG(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 0, 0, 0, 0) // depth 8, grey, deflate, no filter, no interlace
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	b.Write(pngChunk("IHDR", ihdr))
	b.Write(pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}))
	b.Write(pngChunk("IEND", nil))
	return b.Bytes()
}

func TestDecompressionBombRefusedWithoutAllocating(t *testing.T) {
	bomb := bombPNG(100000, 100000) // 10 gigapixels
	t.Logf("bomb PNG: %d bytes declaring 100000×100000", len(bomb))

	_, err := FromReader(bytes.NewReader(bomb), Options{})
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want a *TooLargeError", err)
	}
	if tl.Width != 100000 || tl.Height != 100000 || tl.Format != "png" || tl.MaxPixels != DefaultMaxPixels {
		t.Errorf("error fields: %+v", tl)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const runs = 10
	for range runs {
		if _, err := FromReader(bytes.NewReader(bomb), Options{}); !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("allocated %d bytes per refusal (the image would need 10 GB)", perRun)
	if perRun > 64<<10 {
		t.Errorf("allocated %d bytes per refusal, want well under 64 KiB", perRun)
	}

	// The limit is configurable, and an image at the limit still decodes.
	small := encodePNG(t, gradient(100, 50))
	if _, err := FromReader(bytes.NewReader(small), Options{MaxPixels: 4999}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("5000 pixels with MaxPixels 4999: got %v, want ErrTooLarge", err)
	}
	if _, err := FromReader(bytes.NewReader(small), Options{MaxPixels: 5000}); err != nil {
		t.Errorf("5000 pixels with MaxPixels 5000: %v", err)
	}
}

func TestNotImage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	cases := map[string][]byte{
		"random bytes": random,
		"text":         []byte("Dear team,\nplease find the report attached.\n"),
		"empty":        nil,
		"one byte":     {0xff},
		"pdf":          []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
	}
	for name, data := range cases {
		_, err := FromReader(bytes.NewReader(data), Options{})
		if !errors.Is(err, ErrNotImage) {
			t.Errorf("%s: got %v, want ErrNotImage", name, err)
		}
	}
}

func TestBrokenImagesAreDecodeErrors(t *testing.T) {
	jpg := encodeJPEG(t, gradient(300, 200), 90)
	pngData := encodePNG(t, gradient(300, 200))
	cases := map[string][]byte{
		"truncated jpeg":         jpg[:len(jpg)/2],
		"jpeg header only":       jpg[:20],
		"jpeg magic only":        jpg[:3],
		"truncated png":          pngData[:len(pngData)/2],
		"png with bad ihdr crc":  corruptAt(pngData, 29),
		"gif signature only":     []byte("GIF89a"),
		"webp without a payload": []byte("RIFF\x04\x00\x00\x00WEBP"),
	}
	for name, data := range cases {
		_, err := FromReader(bytes.NewReader(data), Options{})
		if !errors.Is(err, ErrDecode) || errors.Is(err, ErrNotImage) {
			t.Errorf("%s: got %v, want ErrDecode", name, err)
		}
	}
}

func corruptAt(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

// A failing reader (network, storage) is reported as itself, not as a
// broken image, so callers can retry it.
func TestReaderErrorIsNotDecodeError(t *testing.T) {
	jpg := encodeJPEG(t, gradient(300, 200), 90)
	boom := errors.New("connection reset")
	for _, at := range []int{0, 5, 400, len(jpg) / 2} {
		r := io.MultiReader(bytes.NewReader(jpg[:at]), errReader{boom})
		_, err := FromReader(r, Options{})
		if !errors.Is(err, boom) || errors.Is(err, ErrDecode) || errors.Is(err, ErrNotImage) {
			t.Errorf("failure after %d bytes: got %v, want the reader's error only", at, err)
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A JPEG padded with endless APP segments before its frame header must not
// be buffered without bound while its size is looked for.
func TestHeaderLimit(t *testing.T) {
	jpg := encodeJPEG(t, gradient(64, 64), 90)
	var b bytes.Buffer
	b.Write(jpg[:2])
	seg := append([]byte{0xff, 0xe5, 0xff, 0xff}, make([]byte, 0xfffd)...)
	for range 40 { // 2.6 MB of comments
		b.Write(seg)
	}
	b.Write(jpg[2:])
	_, err := FromReader(bytes.NewReader(b.Bytes()), Options{MaxHeaderBytes: 1 << 20})
	if !errors.Is(err, ErrDecode) {
		t.Errorf("header over the limit: got %v, want ErrDecode", err)
	}
	if _, err := FromReader(bytes.NewReader(b.Bytes()), Options{}); err != nil {
		t.Errorf("header under the default limit: %v", err)
	}
}

// Each format decodes through FromReader to the hash of the same decoded
// image given to FromImage, and close to the picture it encodes.
func TestFormats(t *testing.T) {
	img := gradient(320, 240)
	want := FromImage(img)
	var gifBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, img, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		data    []byte
		decode  func(io.Reader) (image.Image, error)
		maxDist int
	}{
		{"png", encodePNG(t, img), png.Decode, 0},
		{"jpeg", encodeJPEG(t, img, 95), jpeg.Decode, 10},
		// The encoder dithers to a 216-colour palette: noise the hash
		// partly sees, but still a match.
		{"gif", gifBuf.Bytes(), gif.Decode, MatchThreshold},
	} {
		got, err := FromReader(bytes.NewReader(c.data), Options{})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		decoded, err := c.decode(bytes.NewReader(c.data))
		if err != nil {
			t.Fatal(err)
		}
		if direct := FromImage(decoded); direct != got {
			t.Errorf("%s: FromReader %+v, FromImage of the decoded image %+v", c.name, got, direct)
		}
		d := got.Hash.Distance(want.Hash)
		t.Logf("%s (%T): distance %d from the original picture, quality %d", c.name, decoded, d, got.Quality)
		if d > c.maxDist {
			t.Errorf("%s: distance %d from the original picture, want <= %d", c.name, d, c.maxDist)
		}
	}
}

// solidWebP builds a lossless WebP of one colour (Go has no WebP encoder):
// a VP8L stream with no transforms whose five prefix codes each have a
// single symbol, so the pixels take no bits at all.
func solidWebP(w, h int, c color.NRGBA) []byte {
	var bits []byte
	var acc uint64
	var n uint
	put := func(v uint64, width uint) {
		acc |= v << n
		n += width
		for n >= 8 {
			bits = append(bits, byte(acc))
			acc >>= 8
			n -= 8
		}
	}
	put(0x2f, 8) // VP8L signature
	put(uint64(w-1), 14)
	put(uint64(h-1), 14)
	put(0, 1)                                            // alpha unused
	put(0, 3)                                            // version
	put(0, 1)                                            // no transform
	put(0, 1)                                            // no colour cache
	put(0, 1)                                            // no meta prefix codes
	for _, sym := range []uint8{c.G, c.R, c.B, c.A, 0} { // green, red, blue, alpha, distance
		put(1, 1) // simple code
		put(0, 1) // one symbol
		put(1, 1) // 8-bit symbol
		put(uint64(sym), 8)
	}
	if n > 0 {
		bits = append(bits, byte(acc))
	}
	if len(bits)%2 == 1 {
		bits = append(bits, 0) // chunks are padded to even length
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(4+8+len(bits)))
	b.WriteString("WEBPVP8L")
	binary.Write(&b, binary.LittleEndian, uint32(len(bits)))
	b.Write(bits)
	return b.Bytes()
}

func TestWebP(t *testing.T) {
	data := solidWebP(96, 64, color.NRGBA{200, 128, 50, 255})
	r, err := FromReader(bytes.NewReader(data), Options{})
	if err != nil {
		t.Fatalf("webp: %v", err)
	}
	if r.Quality != 0 {
		t.Errorf("solid webp: quality %d, want 0", r.Quality)
	}
	bomb := solidWebP(16384, 16384, color.NRGBA{A: 255})
	if _, err := FromReader(bytes.NewReader(bomb), Options{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("16384×16384 webp: got %v, want ErrTooLarge", err)
	}
}

// A resized, recompressed copy matches; an unrelated photo does not.
func TestResizedCopyMatches(t *testing.T) {
	dir, _ := referenceImages(t)
	path := filepath.Join(dir, "reg-test-input__dih__bridge-1-original.jpg")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	src, err := jpeg.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	orig := hashFile(t, path)

	for _, c := range []struct {
		scale   float64
		quality int
	}{{0.5, 70}, {0.3, 50}, {0.75, 40}, {1.3, 85}} {
		b := src.Bounds()
		dst := image.NewRGBA(image.Rect(0, 0, int(float64(b.Dx())*c.scale), int(float64(b.Dy())*c.scale)))
		draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
		copyRes, err := FromReader(bytes.NewReader(encodeJPEG(t, dst, c.quality)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		d := copyRes.Hash.Distance(orig.Hash)
		t.Logf("copy at %.0f%% size, JPEG quality %d: distance %d", 100*c.scale, c.quality, d)
		if d > MatchThreshold {
			t.Errorf("copy at %.0f%% size, JPEG quality %d: distance %d, want <= %d", 100*c.scale, c.quality, d, MatchThreshold)
		}
	}

	for _, other := range []string{
		"misc-images__c.png",
		"reg-test-input__labelme-subset__q0122.jpg",
		"reg-test-input__labelme-subset__q1050.jpg",
		"reg-test-input__labelme-subset__q2821.jpg",
	} {
		d := hashFile(t, filepath.Join(dir, other)).Hash.Distance(orig.Hash)
		t.Logf("unrelated %s: distance %d", other, d)
		if d <= MatchThreshold {
			t.Errorf("unrelated %s: distance %d, want > %d", other, d, MatchThreshold)
		}
	}
}

// gradient is a deterministic test picture with texture in both directions.
func gradient(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := uint8((x*x/7 + y*3 + (x*y)/11) % 256)
			img.SetNRGBA(x, y, color.NRGBA{v, uint8(x * 255 / w), uint8(y * 255 / h), 255})
		}
	}
	return img
}

func encodePNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(tb testing.TB, img image.Image, q int) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// FuzzFromReader checks that no input makes FromReader panic or return a
// hash along with an error.
func FuzzFromReader(f *testing.F) {
	f.Add(bombPNG(100000, 100000))
	f.Add(encodePNG(f, gradient(16, 16)))
	f.Add(encodeJPEG(f, gradient(16, 16), 80))
	f.Add(withEXIFOrientation(encodeJPEG(f, gradient(16, 9), 80), 6, "MM"))
	f.Add([]byte("GIF89a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := FromReader(bytes.NewReader(data), Options{MaxPixels: 1 << 20})
		if err != nil && r != (Result{}) {
			t.Errorf("result %+v with error %v", r, err)
		}
	})
}

func FuzzJPEGOrientation(f *testing.F) {
	f.Add(withEXIFOrientation([]byte{0xff, 0xd8, 0xff, 0xd9}, 6, "II"))
	f.Add(withEXIFOrientation([]byte{0xff, 0xd8, 0xff, 0xd9}, 3, "MM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if o := jpegOrientation(data); o < 1 || o > 8 {
			t.Errorf("orientation %d", o)
		}
	})
}
