package pdq

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"takedown/pkg/testenv"
)

type refImage struct {
	name string
	want Hash
}

// referenceImages reads expected.tsv from the shared PDQ data (Meta's
// published test vectors) and returns the images folder with it.
func referenceImages(tb testing.TB) (string, []refImage) {
	tb.Helper()
	dir := testenv.SharedDir(tb, "pdq")
	f, err := os.Open(filepath.Join(dir, "expected.tsv"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []refImage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hexHash, ok := strings.Cut(line, "\t")
		if !ok {
			tb.Fatalf("expected.tsv: bad line %q", line)
		}
		h, err := ParseHash(hexHash)
		if err != nil {
			tb.Fatalf("expected.tsv: %s: %v", name, err)
		}
		out = append(out, refImage{name, h})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(out) == 0 {
		tb.Fatal("expected.tsv lists no images")
	}
	return filepath.Join(dir, "images"), out
}

func hashFile(tb testing.TB, path string) Result {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := FromReader(f, Options{})
	if err != nil {
		tb.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return r
}

// Meta's bar for a port: within 10 bits of the reference on decoded images
// whose quality is 80 or more (decoders differ slightly). expected.tsv has
// no reference quality, so ours stands in for it; the full table is logged
// for the record.
func TestReferenceHashes(t *testing.T) {
	dir, imgs := referenceImages(t)
	var table strings.Builder
	fmt.Fprintf(&table, "%-46s %4s %7s\n", "image", "dist", "quality")
	for _, ri := range imgs {
		got := hashFile(t, filepath.Join(dir, ri.name))
		d := got.Hash.Distance(ri.want)
		t.Logf("%s: distance %d quality %d (got %s)", ri.name, d, got.Quality, got.Hash)
		fmt.Fprintf(&table, "%-46s %4d %7d\n", ri.name, d, got.Quality)
		if got.Quality >= 80 && d > 10 {
			t.Errorf("%s: distance %d from the reference hash, want <= 10 (quality %d)", ri.name, d, got.Quality)
		}
		// Meta's own Python test allows 16 bits on every image.
		if d > 16 {
			t.Errorf("%s: distance %d from the reference hash, want <= 16 even at quality %d", ri.name, d, got.Quality)
		}
	}
	t.Logf("distances to Meta's reference hashes:\n%s", table.String())
}

// The dih/ images are the eight transforms of one photo: the hashes derived
// from the original's DCT must match the hashes of the transformed files.
var dihFiles = [8]string{
	Original:   "reg-test-input__dih__bridge-1-original.jpg",
	Rotate90:   "reg-test-input__dih__bridge-2-rotate-90.jpg",
	Rotate180:  "reg-test-input__dih__bridge-3-rotate-180.jpg",
	Rotate270:  "reg-test-input__dih__bridge-4-rotate-270.jpg",
	FlipX:      "reg-test-input__dih__bridge-5-flipx.jpg",
	FlipY:      "reg-test-input__dih__bridge-6-flipy.jpg",
	FlipPlus1:  "reg-test-input__dih__bridge-7-flip-plus-1.jpg",
	FlipMinus1: "reg-test-input__dih__bridge-8-flip-minus-1.jpg",
}

func TestDihedralMatchesTransformedFiles(t *testing.T) {
	dir, _ := referenceImages(t)
	files := dihFiles
	f, err := os.Open(filepath.Join(dir, files[Original]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dih, q, err := DihedralFromReader(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	orig := hashFile(t, filepath.Join(dir, files[Original]))
	if dih[Original] != orig.Hash || q != orig.Quality {
		t.Errorf("dihedral original %s q%d, FromReader %s q%d", dih[Original], q, orig.Hash, orig.Quality)
	}
	for tr, name := range files {
		file := hashFile(t, filepath.Join(dir, name))
		d := dih[tr].Distance(file.Hash)
		t.Logf("%-11s derived vs %s: distance %d", Transform(tr), name, d)
		// The reference's sampling is not mirror-symmetric at the
		// 512-pixel width the photo is shrunk to (its box filters have
		// an even width of 4 and lean right), so a derived hash that
		// mirrors left-right lands some bits from the hash of the
		// mirrored pixels: 16 to 18 here, still well inside a match.
		if d > 20 {
			t.Errorf("%s: derived hash %s is %d bits from the file's %s", Transform(tr), dih[tr], d, file.Hash)
		}
		if best, bt := dih.MinDistance(file.Hash); bt != Transform(tr) {
			t.Errorf("%s file matches %s best (distance %d)", Transform(tr), bt, best)
		}
	}
}

// A JPEG whose EXIF says "turn me to display" hashes as the displayed image:
// the original photo with each orientation tag matches the file holding
// that transform of its pixels.
func TestEXIFOrientationApplied(t *testing.T) {
	dir, _ := referenceImages(t)
	raw, err := os.ReadFile(filepath.Join(dir, dihFiles[Original]))
	if err != nil {
		t.Fatal(err)
	}
	// EXIF orientation → the transform that displays the stored image.
	want := [9]Transform{
		1: Original, 2: FlipY, 3: Rotate180, 4: FlipX,
		5: FlipPlus1, 6: Rotate270, 7: FlipMinus1, 8: Rotate90,
	}
	for o := 1; o <= 8; o++ {
		file := hashFile(t, filepath.Join(dir, dihFiles[want[o]]))
		for _, order := range []string{"II", "MM"} {
			data := withEXIFOrientation(raw, o, order)
			if got := jpegOrientation(data); got != o {
				t.Fatalf("orientation %d (%s): parsed %d", o, order, got)
			}
			r, err := FromReader(bytes.NewReader(data), Options{})
			if err != nil {
				t.Fatal(err)
			}
			d := r.Hash.Distance(file.Hash)
			if order == "II" {
				t.Logf("orientation %d: distance %d to %s", o, d, dihFiles[want[o]])
			}
			if d > 10 {
				t.Errorf("orientation %d (%s): distance %d to %s", o, order, d, dihFiles[want[o]])
			}
		}
	}
}

// withEXIFOrientation returns the JPEG with an EXIF segment declaring
// orientation o inserted first, in the given TIFF byte order.
func withEXIFOrientation(jpg []byte, o int, order string) []byte {
	var tiff []byte
	put16 := func(v int) {
		if order == "II" {
			tiff = append(tiff, byte(v), byte(v>>8))
		} else {
			tiff = append(tiff, byte(v>>8), byte(v))
		}
	}
	put32 := func(v int) {
		if order == "II" {
			put16(v & 0xffff)
			put16(v >> 16)
		} else {
			put16(v >> 16)
			put16(v & 0xffff)
		}
	}
	tiff = append(tiff, order...)
	put16(42)
	put32(8) // IFD0 right after the header
	put16(2) // entries
	put16(0x010f)
	put16(2) // ASCII "Make", to be skipped
	put32(4)
	tiff = append(tiff, "Go\x00\x00"...)
	put16(0x0112)
	put16(3) // SHORT
	put32(1)
	put16(o)
	put16(0)
	put32(0) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xff, 0xe1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}
