package pdq

import "math"

// thumbMax is the largest side hashed. Meta's Python reference, which
// produced the published test hashes, first shrinks every image to fit in
// 512×512; doing the same reproduces those hashes (the C++ reference skips
// it and lands within a few bits), and it makes large photos cheaper.
const thumbMax = 512

// thumbSize is the size an image is shrunk to: fit in thumbMax×thumbMax,
// aspect kept, never enlarged.
func thumbSize(w, h int) (int, int) {
	if w <= thumbMax && h <= thumbMax {
		return w, h
	}
	if w >= h {
		return thumbMax, max(1, int(math.Round(float64(h)*thumbMax/float64(w))))
	}
	return max(1, int(math.Round(float64(w)*thumbMax/float64(h)))), thumbMax
}

// The shrink resamples with a triangle filter stretched to the scale, so
// every input pixel contributes (no aliasing); rows are shrunk by
// taps.apply as they are converted, then columns by shrinkCols.

// shrinkCols resamples the w×h plane src to w×nh in dst, a whole row at a
// time for sequential memory access.
func shrinkCols(dst, src []float32, w, h, nh int) {
	ys := newTaps(h, nh)
	for o := range nh {
		out := dst[o*w : o*w+w]
		clear(out)
		for t, wt := range ys.weights(o) {
			r := ys.start[o] + t
			for x, v := range src[r*w : r*w+w] {
				out[x] += wt * v
			}
		}
	}
}

// taps holds, for each output sample, the first input index and the
// normalised weights of the inputs it averages (k slots each, n used).
type taps struct {
	start, n []int
	w        []float32
	k        int
}

func (t *taps) weights(o int) []float32 { return t.w[o*t.k : o*t.k+t.n[o]] }

// apply resamples one row.
func (t *taps) apply(dst, src []float32) {
	for o := range dst {
		ws := t.weights(o)
		in := src[t.start[o]:][:len(ws)]
		var s float32
		for i, wt := range ws {
			s += wt * in[i]
		}
		dst[o] = s
	}
}

func newTaps(nin, nout int) *taps {
	scale := float64(nin) / float64(nout)
	k := int(2*scale) + 2
	t := &taps{start: make([]int, nout), n: make([]int, nout), w: make([]float32, nout*k), k: k}
	for o := range nout {
		// Output sample o is centred on input coordinate c (pixel i
		// covers [i, i+1)); its triangle reaches scale either side.
		c := (float64(o) + 0.5) * scale
		lo := max(0, int(c-scale))
		hi := min(nin, int(math.Ceil(c+scale)), lo+k)
		var sum float64
		ws := t.w[o*k : o*k+hi-lo]
		for i := range ws {
			d := math.Abs((float64(lo+i) + 0.5 - c) / scale)
			ws[i] = float32(max(0, 1-d))
			sum += float64(ws[i])
		}
		for i := range ws {
			ws[i] = float32(float64(ws[i]) / sum)
		}
		t.start[o], t.n[o] = lo, len(ws)
	}
	return t
}
