package pdq

import "image"

// Transform names one of the eight rotations and mirror images of a square
// (the dihedral group), in the reference's order.
type Transform int

const (
	Original   Transform = iota
	Rotate90             // 90° counter-clockwise
	Rotate180            // 180°
	Rotate270            // 270° counter-clockwise (90° clockwise)
	FlipX                // mirrored top to bottom (about the horizontal axis)
	FlipY                // mirrored left to right (about the vertical axis)
	FlipPlus1            // mirrored about the main diagonal (transposed)
	FlipMinus1           // mirrored about the anti-diagonal
)

var transformNames = [...]string{"original", "rotate-90", "rotate-180", "rotate-270", "flip-x", "flip-y", "flip-plus-1", "flip-minus-1"}

func (t Transform) String() string {
	if t < 0 || int(t) >= len(transformNames) {
		return "transform(?)"
	}
	return transformNames[t]
}

// Dihedral holds the hashes the image would have under each Transform,
// indexed by it. Comparing a hash against all eight finds rotated or
// mirrored copies.
type Dihedral [8]Hash

// MinDistance returns the smallest distance from h to any of the eight
// hashes, and the transform that gives it.
func (d *Dihedral) MinDistance(h Hash) (int, Transform) {
	best, bt := 257, Original
	for t, dh := range d {
		if n := dh.Distance(h); n < best {
			best, bt = n, Transform(t)
		}
	}
	return best, bt
}

// DihedralFromImage hashes the image under all eight transforms. As in the
// reference, the transforms are applied to the DCT coefficients rather than
// the pixels, which costs almost nothing on top of one hash: mirroring the
// input negates the odd-numbered basis functions along that axis, and a
// transpose transposes the coefficients. The result is close to, not the
// same as, hashing the transformed pixels, because the reference's box
// filters and sampling are not mirror-symmetric: on Meta's test photo the
// transforms that mirror left-right land 16-18 bits from the hash of the
// transformed file (the others 0), well inside MatchThreshold.
func DihedralFromImage(img image.Image) (Dihedral, int) {
	c, q := coefficients(img, 1)
	return dihedral(&c), q
}

func dihedral(c *[coefs][coefs]float64) Dihedral {
	var d Dihedral
	for t := range d {
		tc := transform(c, Transform(t))
		d[t] = threshold(&tc)
	}
	return d
}

// transform maps the coefficients of an image to those of its transform.
// Coefficient [i][j] belongs to the basis with vertical frequency i+1 and
// horizontal frequency j+1; reversing an axis multiplies the basis by
// (-1)^frequency, so the coefficients with even i (or j) change sign.
func transform(c *[coefs][coefs]float64, t Transform) (out [coefs][coefs]float64) {
	var transpose, negRows, negCols bool // negRows: flip top-bottom after any transpose
	switch t {
	case Original:
	case Rotate90: // counter-clockwise: transpose, then mirror top-bottom
		transpose, negRows = true, true
	case Rotate180:
		negRows, negCols = true, true
	case Rotate270: // clockwise: transpose, then mirror left-right
		transpose, negCols = true, true
	case FlipX:
		negRows = true
	case FlipY:
		negCols = true
	case FlipPlus1:
		transpose = true
	case FlipMinus1:
		transpose, negRows, negCols = true, true, true
	}
	for i := range coefs {
		for j := range coefs {
			v := c[i][j]
			if transpose {
				v = c[j][i]
			}
			if negRows && i%2 == 0 {
				v = -v
			}
			if negCols && j%2 == 0 {
				v = -v
			}
			out[i][j] = v
		}
	}
	return out
}
