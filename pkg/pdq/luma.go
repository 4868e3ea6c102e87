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

// lumaTables hold each channel's weighted contribution, so the conversion
// costs three loads and two adds per pixel.
var lumaTabR, lumaTabG, lumaTabB [256]float32

// YCbCr→RGB (JFIF, full range) in 16.16 fixed point, by chroma value, as a
// JPEG decoder producing RGB does; the reference hashes that RGB.
var crToR, cbToB, cbToG, crToG [256]int32

func init() {
	for i := range 256 {
		lumaTabR[i] = float32(lumaR * float64(i))
		lumaTabG[i] = float32(lumaG * float64(i))
		lumaTabB[i] = float32(lumaB * float64(i))
		c := float64(i - 128)
		crToR[i] = int32(roundHalfUp(1.402 * c * 65536))
		cbToB[i] = int32(roundHalfUp(1.772 * c * 65536))
		cbToG[i] = int32(roundHalfUp(-0.344136 * c * 65536))
		crToG[i] = int32(roundHalfUp(-0.714136 * c * 65536))
	}
}

func roundHalfUp(v float64) float64 {
	if v < 0 {
		return -float64(int64(-v + 0.5))
	}
	return float64(int64(v + 0.5))
}

// clamp8 rounds a 16.16 fixed-point value and clamps it to 0-255.
func clamp8(v int32) uint8 {
	v = (v + 1<<15) >> 16
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

func rgbLuma(r, g, b uint8) float32 {
	return lumaTabR[r] + lumaTabG[g] + lumaTabB[b]
}

// toLuma writes the image's luminance, row-major from its top-left corner,
// into dst (len = width×height). The common decoder output types are read
// straight from their pixel slices; anything else goes through At, which
// is much slower but correct. Alpha is ignored, as the reference does when
// it converts to RGB.
func toLuma(dst []float32, img image.Image) {
	b := img.Bounds()
	w := b.Dx()
	switch m := img.(type) {
	case *image.YCbCr:
		ycbcrLuma(dst, m)
	case *image.NYCbCrA:
		ycbcrLuma(dst, &m.YCbCr)
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, y):][:w]
			out := dst[(y-b.Min.Y)*w:][:w]
			for x, v := range src {
				out[x] = float32(v)
			}
		}
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
			out := dst[(y-b.Min.Y)*w:][:w]
			for x := range out {
				p := src[4*x : 4*x+4 : 4*x+4]
				out[x] = rgbLuma(p[0], p[1], p[2])
			}
		}
	case *image.RGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
			out := dst[(y-b.Min.Y)*w:][:w]
			for x := range out {
				p := src[4*x : 4*x+4 : 4*x+4]
				r, g, bl, a := p[0], p[1], p[2], p[3]
				if a != 0xff && a != 0 {
					// Premultiplied: recover the colour an NRGBA
					// decode of the same file would have given.
					r, g, bl = unpremul(r, a), unpremul(g, a), unpremul(bl, a)
				}
				out[x] = rgbLuma(r, g, bl)
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
		for y := b.Min.Y; y < b.Max.Y; y++ {
			src := m.Pix[m.PixOffset(b.Min.X, y):][:w]
			out := dst[(y-b.Min.Y)*w:][:w]
			for x, v := range src {
				out[x] = lut[v]
			}
		}
	default:
		// 16-bit PNGs, CMYK JPEGs and the like: rare enough that the
		// interface call per pixel does not matter.
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				n, _ := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				dst[i] = rgbLuma(n.R, n.G, n.B)
				i++
			}
		}
	}
}

func unpremul(c, a uint8) uint8 {
	return uint8(min(255, (uint32(c)*255+uint32(a)/2)/uint32(a)))
}

// ycbcrLuma converts through RGB, rounding and clamping as a decoder does,
// because saturated colours clip there and the reference sees the clipped
// values. Chroma is upsampled by replication, as Go's decoder does.
func ycbcrLuma(dst []float32, m *image.YCbCr) {
	b := m.Rect
	w := b.Dx()
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
	if b.Min != (image.Point{}) {
		// Sub-images: let the image compute its own offsets.
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				yi, ci := m.YOffset(x, y), m.COffset(x, y)
				dst[i] = ycbcrPixel(m.Y[yi], m.Cb[ci], m.Cr[ci])
				i++
			}
		}
		return
	}
	cw := (w + (1 << hs) - 1) >> hs
	for y := range b.Dy() {
		ys := m.Y[y*m.YStride:][:w]
		cbs := m.Cb[(y>>vs)*m.CStride:][:cw]
		crs := m.Cr[(y>>vs)*m.CStride:][:cw]
		out := dst[y*w:][:w]
		for x, yy := range ys {
			out[x] = ycbcrPixel(yy, cbs[x>>hs], crs[x>>hs])
		}
	}
}

func ycbcrPixel(y, cb, cr uint8) float32 {
	yy := int32(y) << 16
	r := clamp8(yy + crToR[cr])
	g := clamp8(yy + cbToG[cb] + crToG[cr])
	b := clamp8(yy + cbToB[cb])
	return rgbLuma(r, g, b)
}
