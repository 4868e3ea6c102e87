package pdq

import (
	"bytes"
	"encoding/binary"
)

// jpegOrientation returns the EXIF orientation (1-8) declared in a JPEG's
// header bytes, or 1 (as stored) when there is none or the data is
// malformed. Only the markers before the first frame or scan are read,
// which is where EXIF lives; every length is checked against b.
func jpegOrientation(b []byte) int {
	o := 1
	jpegSegments(b, func(m byte, seg []byte) bool {
		if m == 0xe1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			// The first EXIF segment is the one viewers honour.
			o = tiffOrientation(seg[6:])
			return false
		}
		return !isFrame(m)
	})
	return o
}

// isFrame reports whether m is a start-of-frame marker (SOF0-SOF15; C4,
// C8 and CC are other markers).
func isFrame(m byte) bool { return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc }

// jpegSegments calls fn with each marker segment of a JPEG's header bytes,
// up to and including the first frame header, while fn returns true. It
// stops at the first scan, at the end of b and at malformed data; every
// length is checked against b.
func jpegSegments(b []byte, fn func(marker byte, seg []byte) bool) {
	if len(b) < 2 || b[0] != 0xff || b[1] != 0xd8 {
		return
	}
	i := 2
	for {
		if i >= len(b) || b[i] != 0xff {
			return
		}
		for i < len(b) && b[i] == 0xff { // fill bytes
			i++
		}
		if i >= len(b) {
			return
		}
		m := b[i]
		i++
		switch {
		case m == 0x01 || (m >= 0xd0 && m <= 0xd8):
			continue // markers without a length
		case m == 0xda || m == 0xd9:
			return // scan or end: past the header
		}
		if i+2 > len(b) {
			return
		}
		n := int(b[i])<<8 | int(b[i+1])
		if n < 2 || i+n > len(b) {
			return
		}
		seg := b[i+2 : i+n]
		i += n
		if !fn(m, seg) || isFrame(m) {
			return
		}
	}
}

// tiffOrientation reads tag 0x0112 (Orientation) from IFD0 of the TIFF
// structure inside an EXIF segment.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := uint64(bo.Uint32(t[4:8]))
	if off < 8 || off+2 > uint64(len(t)) {
		return 1
	}
	count := int(bo.Uint16(t[off:]))
	entries := t[off+2:]
	for k := 0; k < count && 12*k+12 <= len(entries); k++ {
		e := entries[12*k : 12*k+12]
		if bo.Uint16(e[0:2]) != 0x0112 {
			continue
		}
		const typeShort = 3
		if bo.Uint16(e[2:4]) != typeShort || bo.Uint32(e[4:8]) != 1 {
			return 1
		}
		if v := int(bo.Uint16(e[8:10])); v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}

// orient copies the w×h plane src into dst as it is displayed under EXIF
// orientation o, and returns the displayed width and height. Each
// orientation is a start index and the steps, in dst, of one pixel right
// and one row down in src.
func orient(dst, src []float32, w, h, o int) (int, int) {
	var start, dx, dy int
	dw, dh := w, h
	switch o {
	case 2: // mirrored left-right
		start, dx, dy = w-1, -1, w
	case 3: // rotated 180°
		start, dx, dy = w*h-1, -1, -w
	case 4: // mirrored top-bottom
		start, dx, dy = (h-1)*w, 1, -w
	case 5: // transposed
		start, dx, dy = 0, h, 1
		dw, dh = h, w
	case 6: // displayed rotated 90° clockwise
		start, dx, dy = h-1, h, -1
		dw, dh = h, w
	case 7: // transverse
		start, dx, dy = w*h-1, -h, -1
		dw, dh = h, w
	case 8: // displayed rotated 90° counter-clockwise
		start, dx, dy = (w-1)*h, -h, 1
		dw, dh = h, w
	default:
		copy(dst, src[:w*h])
		return w, h
	}
	for y := range h {
		i := start + y*dy
		for _, v := range src[y*w : y*w+w] {
			dst[i] = v
			i += dx
		}
	}
	return dw, dh
}
