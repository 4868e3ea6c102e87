package pdq

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

// photo1000 is a 1000×1000 JPEG (4:2:0, quality 85, like a camera or
// phone upload) with texture everywhere.
func photo1000(b *testing.B) []byte {
	b.Helper()
	return encodeJPEG(b, gradient(1000, 1000), 85)
}

// BenchmarkPDQ1000x1000JPEG is the intake path: decode and hash.
func BenchmarkPDQ1000x1000JPEG(b *testing.B) {
	data := photo1000(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromReader(bytes.NewReader(data), Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkDecode1000x1000JPEG is decoding alone, the floor for the above.
func BenchmarkDecode1000x1000JPEG(b *testing.B) {
	data := photo1000(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decodes/s")
}

// BenchmarkHash1000x1000 is hashing an already decoded image.
func BenchmarkHash1000x1000(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(photo1000(b)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		FromImage(img)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkHash4000x3000 is a 12-megapixel phone photo, decoded.
func BenchmarkHash4000x3000(b *testing.B) {
	img := image.NewYCbCr(image.Rect(0, 0, 4000, 3000), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = uint8(i * 7 / 3)
	}
	b.ReportAllocs()
	for b.Loop() {
		FromImage(img)
	}
}
