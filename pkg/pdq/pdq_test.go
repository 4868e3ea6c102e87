package pdq

import (
	"encoding/json"
	"image"
	"image/color"
	"image/draw"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestHashText(t *testing.T) {
	const s = "d8f8f0cce0f4a84f0e370a22028f67f0b36e2ed596623e1d33e6b39c4e9c9b22"
	h, err := ParseHash(strings.ToUpper(s))
	if err != nil {
		t.Fatal(err)
	}
	if h.String() != s {
		t.Errorf("round trip: %s", h)
	}
	j, err := json.Marshal(struct{ H Hash }{h})
	if err != nil || string(j) != `{"H":"`+s+`"}` {
		t.Errorf("json: %s %v", j, err)
	}
	var back struct{ H Hash }
	if err := json.Unmarshal(j, &back); err != nil || back.H != h {
		t.Errorf("json back: %v %v", back.H, err)
	}
	for _, bad := range []string{"", s[:63], s + "0", "x" + s[1:]} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}

	// The reference numbers bits 16*row+column and prints 16-bit words
	// from the last: bit 0 is the lowest bit of the last hex digit, bit
	// 255 the highest bit of the first.
	var b Hash
	b.setBit(0, 0)
	b.setBit(0, 9)
	b.setBit(15, 15)
	if got, want := b.String(), "8000"+strings.Repeat("0", 56)+"0201"; got != want {
		t.Errorf("bit order: got %s want %s", got, want)
	}
	if d := b.Distance(Hash{}); d != 3 {
		t.Errorf("distance %d, want 3", d)
	}
}

// naiveDownsample follows the reference step by step: two full passes of
// running box filters along rows then columns, then decimation.
func naiveDownsample(luma []float32, w, h int) *[grid][grid]float64 {
	a := make([]float64, w*h)
	b := make([]float64, w*h)
	for i, v := range luma {
		a[i] = float64(v)
	}
	box := func(in, out []float64, n, stride, win int) {
		for o := range n {
			lo, hi := window(o, n, win)
			var s float64
			for i := lo; i <= hi; i++ {
				s += in[i*stride]
			}
			out[o*stride] = s / float64(hi-lo+1)
		}
	}
	for range 2 {
		for y := range h {
			box(a[y*w:], b[y*w:], w, 1, windowSize(w))
		}
		for x := range w {
			box(b[x:], a[x:], h, w, windowSize(h))
		}
	}
	var out [grid][grid]float64
	for i := range grid {
		for j := range grid {
			out[i][j] = a[int((float64(i)+0.5)*float64(h)/grid)*w+int((float64(j)+0.5)*float64(w)/grid)]
		}
	}
	return &out
}

func TestDownsampleMatchesReferenceSteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sz := range [][2]int{{5, 5}, {64, 64}, {97, 300}, {512, 321}, {300, 97}, {129, 256}} {
		w, h := sz[0], sz[1]
		luma := make([]float32, w*h)
		for i := range luma {
			luma[i] = float32(rng.IntN(256))
		}
		want := naiveDownsample(luma, w, h)
		var got [grid][grid]float64
		downsample(&got, append([]float32(nil), luma...), make([]float32, w*h), w, h)
		var worst float64
		for i := range grid {
			for j := range grid {
				worst = max(worst, math.Abs(got[i][j]-want[i][j]))
			}
		}
		if worst > 1e-3 {
			t.Errorf("%d×%d: differs from the step-by-step filter by %g", w, h, worst)
		}
	}
}

// The fast paths read each pixel type exactly as the generic At path does.
func TestLumaFastPathsAgree(t *testing.T) {
	src := gradient(131, 77)
	b := src.Bounds()
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, src, image.Point{}, draw.Src)
	gray := image.NewGray(b)
	draw.Draw(gray, b, src, image.Point{}, draw.Src)
	pal := image.NewPaletted(b, []color.Color{color.Black, color.White, color.NRGBA{200, 30, 90, 255}, color.NRGBA{10, 200, 90, 255}})
	draw.Draw(pal, b, src, image.Point{}, draw.Src)
	ycc := image.NewYCbCr(b, image.YCbCrSubsampleRatio420)
	for y := range b.Dy() {
		for x := range b.Dx() {
			c := src.NRGBAAt(x, y)
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			ycc.Y[ycc.YOffset(x, y)] = yy
			ycc.Cb[ycc.COffset(x, y)] = cb
			ycc.Cr[ycc.COffset(x, y)] = cr
		}
	}
	translucent := image.NewNRGBA(b)
	draw.Draw(translucent, b, src, image.Point{}, draw.Src)
	for i := 3; i < len(translucent.Pix); i += 4 {
		translucent.Pix[i] = 128
	}
	premul := image.NewRGBA(b)
	draw.Draw(premul, b, translucent, image.Point{}, draw.Src)
	deep := image.NewNRGBA64(b) // 16-bit PNGs
	draw.Draw(deep, b, translucent, image.Point{}, draw.Src)
	gray16 := image.NewGray16(b)
	draw.Draw(gray16, b, src, image.Point{}, draw.Src)
	cmyk := image.NewCMYK(b)
	draw.Draw(cmyk, b, src, image.Point{}, draw.Src)

	for _, m := range []image.Image{src, rgba, gray, pal, ycc, translucent, premul, ycc.SubImage(image.Rect(3, 5, 100, 70)), deep, gray16, cmyk} {
		n := m.Bounds().Dx() * m.Bounds().Dy()
		fast := make([]float32, n)
		toLuma(fast, m)
		slow := make([]float32, n)
		toLuma(slow, genericImage{m})
		for i := range fast {
			// Premultiplying at alpha 128 loses a level per channel.
			if math.Abs(float64(fast[i]-slow[i])) > 1.01 {
				t.Errorf("%T: pixel %d: fast %v, At %v", m, i, fast[i], slow[i])
				break
			}
		}
	}
}

func toLuma(dst []float32, img image.Image) {
	w := img.Bounds().Dx()
	rows := lumaRows(img)
	for y := range img.Bounds().Dy() {
		rows(dst[y*w:y*w+w], y)
	}
}

// genericImage hides the concrete type so toLuma takes its At path.
type genericImage struct{ image.Image }

func TestTinyAndDegenerateImages(t *testing.T) {
	for _, r := range []image.Rectangle{
		image.Rect(0, 0, 0, 0), image.Rect(0, 0, 1, 1), image.Rect(0, 0, 4, 100),
		image.Rect(0, 0, 5000, 3), image.Rect(-10, -10, -2, 40),
	} {
		img := image.NewGray(r)
		got := FromImage(img)
		if r.Dx() < minDim || r.Dy() < minDim {
			if got != (Result{}) {
				t.Errorf("%v: got %+v, want the zero result", r, got)
			}
		}
		DihedralFromImage(img)
	}
	// The smallest hashable image works, and a negative origin too.
	if got := FromImage(gradient(5, 5)); got.Hash == (Hash{}) {
		t.Error("5×5: empty hash")
	}
	shifted := image.NewNRGBA(image.Rect(-50, -30, 270, 210))
	src := gradient(320, 240)
	draw.Draw(shifted, shifted.Bounds(), src, image.Point{}, draw.Src)
	if FromImage(shifted) != FromImage(src) {
		t.Error("the image origin changes the hash")
	}
}

// orient must place the stored image's corners where EXIF says they are
// displayed.
func TestOrientCorners(t *testing.T) {
	const w, h = 3, 2
	src := []float32{1, 2, 3, 4, 5, 6} // stored top-left 1, top-right 3, bottom-left 4
	want := map[int][]float32{
		1: {1, 2, 3, 4, 5, 6},
		2: {3, 2, 1, 6, 5, 4},
		3: {6, 5, 4, 3, 2, 1},
		4: {4, 5, 6, 1, 2, 3},
		5: {1, 4, 2, 5, 3, 6},
		6: {4, 1, 5, 2, 6, 3}, // turned clockwise
		7: {6, 3, 5, 2, 4, 1},
		8: {3, 6, 2, 5, 1, 4}, // turned counter-clockwise
	}
	for o := 1; o <= 8; o++ {
		dst := make([]float32, w*h)
		dw, dh := orient(dst, src, w, h, o)
		if (o >= 5) != (dw == h && dh == w) {
			t.Errorf("orientation %d: size %d×%d", o, dw, dh)
		}
		for i := range dst {
			if dst[i] != want[o][i] {
				t.Errorf("orientation %d: got %v want %v", o, dst, want[o])
				break
			}
		}
	}
}

func TestTIFFOrientationMalformed(t *testing.T) {
	good := withEXIFOrientation([]byte{0xff, 0xd8, 0xff, 0xd9}, 6, "II")
	if o := jpegOrientation(good); o != 6 {
		t.Fatalf("got %d", o)
	}
	// Every truncation of a valid header is read safely as "as stored".
	for n := range len(good) - 2 {
		if o := jpegOrientation(good[:n]); o != 1 {
			t.Errorf("truncated to %d bytes: orientation %d", n, o)
		}
	}
	if o := jpegOrientation(withEXIFOrientation([]byte{0xff, 0xd8, 0xff, 0xd9}, 9, "MM")); o != 1 {
		t.Errorf("orientation 9 read as %d", o)
	}
}
