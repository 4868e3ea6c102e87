// Package pdq computes PDQ perceptual hashes of images, so that intake can
// recognise a file that has already been reported to NCMEC even when it was
// re-encoded, resized or lightly edited (an exact hash of the bytes misses
// those copies).
//
// The algorithm is Meta's PDQ, written from its published description in
// "The TMK+PDQF Video-Hashing Algorithm and the PDQ Image Similarity
// Algorithm" (ThreatExchange hashing/hashing.pdf): the image is reduced to
// luminance, shrunk to fit 512×512 as Meta's Python reference does, blurred
// and downsampled to 64×64 with a Jarosz tent filter (two passes of box
// filters whose widths follow from the image size), transformed
// with a 2D DCT of which the 16×16 lowest non-constant frequencies are kept,
// and thresholded at their median to give 256 bits. A quality score (0-100)
// measures how much texture the hash rests on; hashes of flat, featureless
// images collide easily and deserve less trust.
//
// Two hashes are compared by Hamming distance: Meta suggests 31 bits or fewer
// (of 256) as a match. Hashes print as 64 hex digits in the same bit order
// as Meta's reference implementations, so they interoperate with
// ThreatExchange and NCMEC hash lists.
package pdq

import (
	"encoding/hex"
	"fmt"
	"image"
	"math"
	"math/bits"
	"slices"
	"sync"
)

// Hash is a 256-bit PDQ hash. The bytes are in the order of its hex form:
// byte 0 holds the first two hex digits.
type Hash [32]byte

// MatchThreshold is the Hamming distance at or under which Meta considers
// two PDQ hashes to show the same image.
const MatchThreshold = 31

// String returns the 64 lowercase hex digits used by Meta's tools.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as hex, so it reads well in JSON and logs.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses the hex form.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash parses the 64-hex-digit form (either case).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return Hash{}, fmt.Errorf("pdq: parse hash: want %d hex digits, got %d", 2*len(h), len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("pdq: parse hash: %w", err)
	}
	return h, nil
}

// Distance returns the Hamming distance (0-256) between two hashes.
func (h Hash) Distance(o Hash) int {
	n := 0
	for i := range h {
		n += bits.OnesCount8(h[i] ^ o[i])
	}
	return n
}

// setBit sets bit k = 16*row + column of the 16×16 coefficient grid. The
// reference keeps the bits in sixteen 16-bit words, word i for row i, and
// prints the words from 15 down to 0, each as four hex digits; placing the
// bits here the same way makes String match it.
func (h *Hash) setBit(row, col int) {
	b := (15-row)*2 + 1
	if col >= 8 {
		b--
	}
	h[b] |= 1 << (col & 7)
}

// Result is the hash of one image and its quality.
type Result struct {
	Hash Hash
	// Quality (0-100) grows with the image's texture. Meta's tools ignore
	// hashes under about 50: they come from flat images and match
	// unrelated ones.
	Quality int
}

const (
	// minDim is the smallest width and height hashed: below it the
	// downsampling has nothing to blur, and the reference returns an
	// all-zero hash of quality 0, as FromImage does.
	minDim = 5
	// grid is the side of the downsampled image the DCT runs on.
	grid = 64
	// coefs is the side of the kept block of DCT coefficients.
	coefs = 16
)

// FromImage hashes a decoded image as it is (no EXIF orientation: that lives
// in the file, see FromReader).
func FromImage(img image.Image) Result {
	c, q := coefficients(img, 1)
	return Result{Hash: threshold(&c), Quality: q}
}

// coefficients reduces the image, shown under EXIF orientation o, to its
// 16×16 DCT coefficients and quality.
func coefficients(img image.Image, o int) (dct [coefs][coefs]float64, quality int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w < 1 || h < 1 {
		return dct, 0
	}
	nw, nh := thumbSize(w, h)
	bufs := getBuffers(nw*h, w)
	defer putBuffers(bufs)
	plane, tmp := bufs.a, bufs.b

	// Luminance, shrunk along each row as it is produced: the full-size
	// plane is never stored.
	rows := lumaRows(img)
	if nw == w {
		for y := range h {
			rows(plane[y*w:y*w+w], y)
		}
	} else {
		xs := newTaps(w, nw)
		for y := range h {
			rows(bufs.row, y)
			xs.apply(plane[y*nw:y*nw+nw], bufs.row)
		}
	}
	if nh != h {
		shrinkCols(tmp, plane, nw, h, nh)
		plane, tmp = tmp, plane
	}
	w, h = nw, nh

	if o != 1 {
		// Turning the thumbnail rather than the full image is cheaper,
		// and the same: the shrink treats both directions alike.
		w, h = orient(tmp, plane, w, h, o)
		plane, tmp = tmp, plane
	}
	if w < minDim || h < minDim {
		return dct, 0
	}
	var small [grid][grid]float64
	downsample(&small, plane, tmp, w, h)
	return dct16(&small), qualityOf(&small)
}

// threshold turns coefficients into hash bits: a bit is set where the
// coefficient is above the median, so half the bits are set whatever the
// image's contrast.
func threshold(dct *[coefs][coefs]float64) Hash {
	var all [coefs * coefs]float64
	for i := range coefs {
		copy(all[i*coefs:], dct[i][:])
	}
	slices.Sort(all[:])
	// The reference's median of 256 values is the lower middle one.
	median := all[len(all)/2-1]
	var h Hash
	for i := range coefs {
		for j := range coefs {
			if dct[i][j] > median {
				h.setBit(i, j)
			}
		}
	}
	return h
}

// windowSize is the reference's box-filter width for reducing n samples to
// grid: about half the spacing of the samples, rounded up, so that two passes
// of it approximate a tent filter.
func windowSize(n int) int {
	return (n + 2*grid - 1) / (2 * grid)
}

// window returns the inclusive input range the reference's running box
// filter of width win averages for output o of n: the window is centred,
// leaning right when win is even, and clipped at the edges.
func window(o, n, win int) (lo, hi int) {
	half := (win + 2) / 2
	return max(0, o+half-win), min(n-1, o+half-1)
}

// samples returns the 64 input indices the reference's decimation picks from
// n: the centre of each of 64 equal spans.
func samples(n int) [grid]int {
	var s [grid]int
	for i := range s {
		s[i] = int((float64(i) + 0.5) * float64(n) / grid)
	}
	return s
}

// downsample blurs the luma buffer with two passes of the box filters and
// keeps the 64×64 samples. The first pass is computed everywhere (the second
// needs all of it); the second only at the samples, as direct window means,
// which saves half the filtering and gives the same values.
func downsample(out *[grid][grid]float64, luma, tmp []float32, w, h int) {
	wr, wc := windowSize(w), windowSize(h)
	boxRows(tmp, luma, w, h, wr)
	boxCols(luma, tmp, w, h, wc)

	xs, ys := samples(w), samples(h)
	var xlo, xhi [grid]int
	for j, x := range xs {
		xlo[j], xhi[j] = window(x, w, wr)
	}
	for i, y := range ys {
		ylo, yhi := window(y, h, wc)
		for j := range grid {
			var sum float64
			for r := ylo; r <= yhi; r++ {
				row := luma[r*w : r*w+w]
				var rs float64
				for _, v := range row[xlo[j] : xhi[j]+1] {
					rs += float64(v)
				}
				sum += rs / float64(xhi[j]-xlo[j]+1)
			}
			out[i][j] = sum / float64(yhi-ylo+1)
		}
	}
}

// boxRows runs the box filter of width win along each row of src into dst.
func boxRows(dst, src []float32, w, h, win int) {
	for y := range h {
		box1D(dst[y*w:y*w+w], src[y*w:y*w+w], win)
	}
}

// box1D is the reference's running-sum box filter over one row: outputs near
// the edges average the part of the window inside the row. win <= len(src).
func box1D(dst, src []float32, win int) {
	n := len(src)
	dst = dst[:n]
	half := (win + 2) / 2
	var sum float64
	ri, li, oi := 0, 0, 0
	for ; ri < half-1; ri++ {
		sum += float64(src[ri])
	}
	for ; ri < win; ri++ {
		sum += float64(src[ri])
		dst[oi] = float32(sum / float64(ri+1))
		oi++
	}
	inv := 1 / float64(win)
	for ; ri < n; ri++ {
		sum += float64(src[ri])
		sum -= float64(src[li])
		li++
		dst[oi] = float32(sum * inv)
		oi++
	}
	for ; oi < n; oi++ {
		sum -= float64(src[li])
		li++
		dst[oi] = float32(sum / float64(n-li))
	}
}

// boxCols runs the same filter down each column. It walks whole rows with
// one running sum per column rather than striding down one column at a time,
// which keeps memory access sequential on large images.
func boxCols(dst, src []float32, w, h, win int) {
	acc := make([]float64, w)
	half := (win + 2) / 2
	row := func(i int) []float32 { return src[i*w : i*w+w] }
	ri, li, oi := 0, 0, 0
	for ; ri < half-1; ri++ {
		for x, v := range row(ri) {
			acc[x] += float64(v)
		}
	}
	emit := func(n int) {
		inv := 1 / float64(n)
		out := dst[oi*w : oi*w+w]
		for x := range out {
			out[x] = float32(acc[x] * inv)
		}
		oi++
	}
	for ; ri < win; ri++ {
		for x, v := range row(ri) {
			acc[x] += float64(v)
		}
		emit(ri + 1)
	}
	for ; ri < h; ri++ {
		in, old := row(ri), row(li)
		old = old[:len(in)]
		for x, v := range in {
			acc[x] += float64(v)
			acc[x] -= float64(old[x])
		}
		li++
		emit(win)
	}
	for oi < h {
		for x, v := range row(li) {
			acc[x] -= float64(v)
		}
		li++
		emit(h - li)
	}
}

// dctMatrix holds the 16 lowest non-constant DCT-II basis rows of length 64,
// scaled as in the reference. Skipping the constant row makes the hash
// blind to overall brightness.
var dctMatrix = sync.OnceValue(func() *[coefs][grid]float64 {
	var m [coefs][grid]float64
	scale := math.Sqrt(2.0 / grid)
	for i := range coefs {
		for j := range grid {
			m[i][j] = scale * math.Cos(math.Pi/2/grid*float64(i+1)*float64(2*j+1))
		}
	}
	return &m
})

// dct16 computes D·A·Dᵀ, the 16×16 low-frequency block of the 2D DCT.
func dct16(a *[grid][grid]float64) (out [coefs][coefs]float64) {
	d := dctMatrix()
	var t [coefs][grid]float64 // D·A
	for i := range coefs {
		for k := range grid {
			dik := d[i][k]
			for j := range grid {
				t[i][j] += dik * a[k][j]
			}
		}
	}
	for i := range coefs {
		for j := range coefs {
			var s float64
			for k := range grid {
				s += t[i][k] * d[j][k]
			}
			out[i][j] = s
		}
	}
	return out
}

// qualityOf is the reference's quality score: the sum of absolute
// differences between neighbouring samples of the 64×64 image, each in
// whole percent of full scale (truncated), divided by 90 and capped at 100.
func qualityOf(a *[grid][grid]float64) int {
	sum := 0
	for i := range grid - 1 {
		for j := range grid {
			sum += absInt(int((a[i][j] - a[i+1][j]) * 100 / 255))
		}
	}
	for i := range grid {
		for j := range grid - 1 {
			sum += absInt(int((a[i][j] - a[i][j+1]) * 100 / 255))
		}
	}
	return min(sum/90, 100)
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// buffers are the float planes a hash needs (at most 512 pixels wide) and
// one full-width row. They are pooled because intake hashes many images.
type buffers struct{ a, b, row []float32 }

var bufPool sync.Pool

func getBuffers(n, w int) *buffers {
	bp, ok := bufPool.Get().(*buffers)
	if !ok {
		bp = &buffers{}
	}
	bp.a, bp.b, bp.row = grow(bp.a, n), grow(bp.b, n), grow(bp.row, w)
	return bp
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

func putBuffers(bp *buffers) { bufPool.Put(bp) }
