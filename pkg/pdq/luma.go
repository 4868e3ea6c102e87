package pdq

import (
	"image"
	"image/color"
)

// Luminance weights of the reference (ITU-R BT.601), applied to 8-bit RGB.
const (
	lumaR = 0.299
	lumaG = 0.587
	lumaB = 0.114
)

// tabBias lets the luma tables be indexed by a channel value that is still
// outside 0-255 (a luma value plus a chroma offset, before clamping).
const tabBias = 256

// tabR, tabG and tabB hold each channel's weighted contribution by value,
// clamped to 0-255 at the ends, so converting a pixel costs three loads
// and two adds and clamps for free.
var tabR, tabG, tabB [3 * 256]float32

// YCbCr→RGB (JFIF, full range) offsets by chroma value: R and B in whole
// levels, G in 16.16 fixed point (its two terms are summed before
// rounding), as a JPEG decoder producing RGB computes them.
var crToR, cbToB [256]int
var cbToG, crToG [256]int32

func init() {
	for i := range tabR {
		v := float64(min(255, max(0, i-tabBias)))
		tabR[i] = float32(lumaR * v)
		tabG[i] = float32(lumaG * v)
		tabB[i] = float32(lumaB * v)
	}
	for i := range 256 {
		c := float64(i - 128)
		crToR[i] = int(roundHalfUp(1.402 * c))
		cbToB[i] = int(roundHalfUp(1.772 * c))
		cbToG[i] = int32(roundHalfUp(-0.344136 * c * 65536))
		crToG[i] = int32(roundHalfUp(-0.714136*c*65536)) + 1<<15
	}
}

func roundHalfUp(v float64) float64 {
	if v < 0 {
		return -float64(int64(-v + 0.5))
	}
	return float64(int64(v + 0.5))
}

func rgbLuma(r, g, b uint8) float32 {
	return tabR[int(r)+tabBias] + tabG[int(g)+tabBias] + tabB[int(b)+tabBias]
}

// lumaRows returns a function that writes row y (counted from the top of
// the bounds) of the image's luminance into dst, whose length is the
// image width. Working a row at a time lets the caller shrink each row
// while it is in cache, without a full-size luminance plane. The common
// decoder output types are read straight from their pixel slices;
// anything else goes through At, much slower but correct. Alpha is
// ignored, as the reference does when it converts to RGB.
func lumaRows(img image.Image) func(dst []float32, y int) {
	b := img.Bounds()
	switch m := img.(type) {
	case *image.YCbCr:
		return ycbcrRows(m)
	case *image.NYCbCrA:
		return ycbcrRows(&m.YCbCr)
	case *image.Gray:
		return func(dst []float32, y int) {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:len(dst)]
			for x, v := range src {
				dst[x] = float32(v)
			}
		}
	case *image.NRGBA:
		return func(dst []float32, y int) {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*len(dst)]
			for x := range dst {
				p := src[4*x : 4*x+4 : 4*x+4]
				dst[x] = rgbLuma(p[0], p[1], p[2])
			}
		}
	case *image.RGBA:
		return func(dst []float32, y int) {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:4*len(dst)]
			for x := range dst {
				p := src[4*x : 4*x+4 : 4*x+4]
				r, g, bl, a := p[0], p[1], p[2], p[3]
				if a != 0xff && a != 0 {
					// Premultiplied: recover the colour an NRGBA
					// decode of the same file would have given.
					r, g, bl = unpremul(r, a), unpremul(g, a), unpremul(bl, a)
				}
				dst[x] = rgbLuma(r, g, bl)
			}
		}
	case *image.Paletted:
		var lut [256]float32 // indices past the palette stay black
		for i, c := range m.Palette {
			if i == len(lut) {
				break
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = rgbLuma(n.R, n.G, n.B)
		}
		return func(dst []float32, y int) {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):][:len(dst)]
			for x, v := range src {
				dst[x] = lut[v]
			}
		}
	case image.RGBA64Image:
		// 16-bit PNGs, CMYK JPEGs and the like. RGBA64At returns a plain
		// value: At would allocate a color.Color per pixel, garbage as
		// large as the image again, outside the decoding budget.
		return func(dst []float32, y int) {
			for x := range dst {
				c := m.RGBA64At(b.Min.X+x, b.Min.Y+y)
				r, g, bl := nrgba(uint32(c.R), uint32(c.G), uint32(c.B), uint32(c.A))
				dst[x] = rgbLuma(r, g, bl)
			}
		}
	default:
		// No image the decoders return comes here.
		return func(dst []float32, y int) {
			for x := range dst {
				n, _ := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				dst[x] = rgbLuma(n.R, n.G, n.B)
			}
		}
	}
}

// nrgba is color.NRGBAModel's conversion of premultiplied 16-bit channels
// to 8-bit colour without alpha, so that the fast path above gives what
// the conversion through At gives.
func nrgba(r, g, b, a uint32) (uint8, uint8, uint8) {
	switch a {
	case 0xffff:
		return uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)
	case 0:
		return 0, 0, 0
	}
	r, g, b = r*0xffff/a, g*0xffff/a, b*0xffff/a
	return uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)
}

func unpremul(c, a uint8) uint8 {
	return uint8(min(255, (uint32(c)*255+uint32(a)/2)/uint32(a)))
}

// ycbcrRows converts through RGB, rounding and clamping as a decoder does,
// because saturated colours clip there and the reference sees the clipped
// values. The chroma offsets are worked out once per chroma sample, and
// chroma is upsampled by replication, as Go's decoder does.
func ycbcrRows(m *image.YCbCr) func(dst []float32, y int) {
	var hs, vs uint // chroma subsampling shifts
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		hs = 1
	case image.YCbCrSubsampleRatio420:
		hs, vs = 1, 1
	case image.YCbCrSubsampleRatio440:
		vs = 1
	case image.YCbCrSubsampleRatio411:
		hs = 2
	case image.YCbCrSubsampleRatio410:
		hs, vs = 2, 1
	}
	b := m.Rect
	if b.Min != (image.Point{}) {
		// Sub-images: let the image compute its own offsets.
		return func(dst []float32, y int) {
			for x := range dst {
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				dst[x] = ycbcrLuma(m.Y[m.YOffset(b.Min.X+x, b.Min.Y+y)], m.Cb[ci], m.Cr[ci])
			}
		}
	}
	return func(dst []float32, y int) {
		w := len(dst)
		cw := (w + 1<<hs - 1) >> hs
		ys := m.Y[y*m.YStride:][:w]
		crow := int(uint(y)>>vs) * m.CStride
		cbs, crs := m.Cb[crow:][:cw], m.Cr[crow:][:cw]
		for cx := range cw {
			dr, dg, db := chromaOffsets(cbs[cx], crs[cx])
			x0 := cx << hs
			for x := x0; x < min(x0+1<<hs, w); x++ {
				v := int(ys[x])
				dst[x] = tabR[v+dr] + tabG[v+dg] + tabB[v+db]
			}
		}
	}
}

// chromaOffsets returns the whole-level amounts the chroma adds to Y to
// give R, G and B, plus tabBias.
func chromaOffsets(cb, cr uint8) (dr, dg, db int) {
	return crToR[cr] + tabBias, int((cbToG[cb]+crToG[cr])>>16) + tabBias, cbToB[cb] + tabBias
}

func ycbcrLuma(y, cb, cr uint8) float32 {
	dr, dg, db := chromaOffsets(cb, cr)
	v := int(y)
	return tabR[v+dr] + tabG[v+dg] + tabB[v+db]
}
