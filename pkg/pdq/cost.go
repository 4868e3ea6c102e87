package pdq

import (
	"bytes"
	"image"
	"image/color"
)

// decodeCost estimates the bytes a decode and hash of an image hold at
// their peak: the decoded pixels at the image's bit depth and channels,
// what the format's decoder keeps besides them, and the hashing buffers.
// head holds the header bytes the size was read from. Where the header
// does not say, the estimate takes the worst case, so that it errs towards
// refusing an image rather than towards running out of memory.
func decodeCost(format string, cfg image.Config, head []byte) int64 {
	w, h := int64(cfg.Width), int64(cfg.Height)
	px := w * h
	var pixels int64
	switch format {
	case "jpeg":
		pixels = jpegCost(head, w, h)
	case "png":
		bpp := bytesPerPixel(cfg.ColorModel)
		pixels = px * bpp
		// An interlaced PNG is decoded pass by pass into images of their
		// own; the last pass (every other row) is half the image.
		if len(head) > 28 && head[28] == 1 {
			pixels += pixels / 2
		}
		pixels += 2 * (w*bpp + 1) // the current and previous row
	case "webp":
		switch cfg.ColorModel {
		case color.YCbCrModel: // lossy: 4:2:0
			pixels = px * 3 / 2
		case color.NYCbCrAModel: // lossy with alpha
			pixels = px * 5 / 2
		default: // lossless: ARGB words, then the NRGBA image
			pixels = px * 8
		}
	default: // gif: one palette index per pixel
		pixels = px * bytesPerPixel(cfg.ColorModel)
	}
	// coefficients: two float32 planes of the thumbnail's width and the
	// image's height, and one float32 row of the image's width.
	nw, _ := thumbSize(cfg.Width, cfg.Height)
	hashing := 2*4*int64(nw)*h + 4*w
	// The rest is the decoders' own state (inflate window, Huffman
	// tables, scratch) and the shrink's taps: measured at up to a fifth of
	// the pixels' size (16-bit grey PNG), see TestCostCoversWhatADecodeAllocates.
	return pixels + pixels/4 + hashing + decoderState
}

// decoderState is what a decode allocates whatever the image's size.
const decoderState = 256 << 10

// bytesPerPixel is the size of one pixel of the image the decoders return
// for m.
func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel:
		return 4
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8
}

// jpegCost is the memory image/jpeg takes for a w×h JPEG: one byte per
// sample of each component at its sampling factors (4:2:0 chroma is a
// quarter of the luma), and for a progressive JPEG also a 64-entry int32
// block for every 8×8 block of samples, which it keeps until the last
// scan. Without a readable frame header it assumes the worst: four
// full-size components, progressive.
func jpegCost(head []byte, w, h int64) int64 {
	worst := w * h * 4 * (1 + 4)
	var cost int64 = -1
	var jfif, adobe bool
	jpegSegments(head, func(m byte, seg []byte) bool {
		switch {
		case m == 0xe0 && bytes.HasPrefix(seg, []byte("JFIF\x00")):
			jfif = true
		case m == 0xee && bytes.HasPrefix(seg, []byte("Adobe")):
			adobe = true
		}
		if !isFrame(m) {
			return true
		}
		// precision, height, width, components, then per component:
		// id, sampling factors (h<<4 | v), quantisation table.
		if len(seg) < 6 {
			return false
		}
		n := int(seg[5])
		if n < 1 || n > 4 || len(seg) < 6+3*n {
			return false
		}
		var hmax, vmax int64 = 1, 1
		for c := range n {
			f := seg[6+3*c+1]
			hmax, vmax = max(hmax, int64(f>>4)), max(vmax, int64(f&15))
		}
		progressive := m == 0xc2 || m == 0xc6 || m == 0xca || m == 0xce
		cost = 0
		for c := range n {
			f := seg[6+3*c+1]
			// Planes are padded to whole blocks of the largest factors.
			cw := ceilDiv(w*int64(f>>4), hmax)
			ch := ceilDiv(h*int64(f&15), vmax)
			samples := (ceilDiv(cw, 8) * 8) * (ceilDiv(ch, 8) * 8)
			cost += samples
			if progressive {
				cost += samples * 4
			}
		}
		rgb := n == 3 && seg[6] == 'R' && seg[9] == 'G' && seg[12] == 'B'
		if n == 4 || (n == 3 && !jfif && (adobe || rgb)) {
			// image/jpeg converts RGB and CMYK JPEGs into a new image
			// of 4 bytes a pixel.
			cost += w * h * 4
		}
		return false
	})
	if cost < 0 {
		return worst
	}
	return cost
}

func ceilDiv(a, b int64) int64 {
	if b <= 0 {
		return a
	}
	return (a + b - 1) / b
}
