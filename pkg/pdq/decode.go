package pdq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
	"golang.org/x/sync/semaphore"
)

// Defaults for Options.
const (
	// DefaultMaxPixels admits any camera photo of today (a 48-megapixel
	// phone sensor included) while keeping a decode under about 200 MB.
	DefaultMaxPixels = 50_000_000
	// DefaultMaxHeaderBytes bounds what is held in memory while the image
	// size is read: the headers of real images (EXIF, ICC profiles) are far
	// smaller.
	DefaultMaxHeaderBytes = 8 << 20
	// DefaultMaxBytes is the most memory one decode may take when no
	// Budget is given.
	DefaultMaxBytes = 256 << 20
)

// Options limit what FromReader will decode. The zero value uses the
// defaults.
type Options struct {
	// MaxPixels is the largest width×height decoded. Larger images are
	// refused with a *TooLargeError before any pixel memory is allocated,
	// which defeats decompression bombs (a few kilobytes of PNG can
	// declare gigapixels). 0 means DefaultMaxPixels.
	MaxPixels int64
	// MaxHeaderBytes bounds the bytes read, and kept, to learn the image
	// size before decoding. 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Budget, when set, bounds the memory of all the decodes that share
	// it: each holds its cost (see TooLargeError.Bytes) from the budget
	// while it decodes and hashes, waiting for room, and an image whose
	// cost alone is over the budget is refused with a *TooLargeError
	// before anything is allocated. Without a budget one decode may take
	// DefaultMaxBytes. Pixels are not bytes: a 16-bit RGBA PNG takes eight
	// times the memory of a greyscale one of the same size.
	Budget *Budget
}

// Budget is memory in bytes shared by concurrent decodes (Options.Budget).
type Budget struct {
	size int64
	sem  *semaphore.Weighted
}

// NewBudget returns a budget of size bytes.
func NewBudget(size int64) *Budget {
	return &Budget{size: size, sem: semaphore.NewWeighted(size)}
}

// Size is the budget's size in bytes.
func (b *Budget) Size() int64 { return b.size }

func (o Options) maxPixels() int64 {
	if o.MaxPixels > 0 {
		return o.MaxPixels
	}
	return DefaultMaxPixels
}

func (o Options) maxHeaderBytes() int {
	if o.MaxHeaderBytes > 0 {
		return o.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

var (
	// ErrNotImage means the input is not in a format PDQ is computed for
	// (JPEG, PNG, GIF, WebP). For intake this is not a failure: the file
	// simply has no PDQ hash.
	ErrNotImage = errors.New("pdq: not a JPEG, PNG, GIF or WebP image")
	// ErrDecode means the input looked like an image but could not be
	// decoded: truncated, corrupt, or a variant the decoders do not
	// support (such as animated WebP).
	ErrDecode = errors.New("corrupt or unsupported image")
	// ErrTooLarge is wrapped by *TooLargeError, for errors.Is.
	ErrTooLarge = errors.New("image too large")
)

// TooLargeError reports an image refused by Options.MaxPixels, or, when
// MaxBytes is set, by the memory its decode would take.
type TooLargeError struct {
	Format        string
	Width, Height int
	MaxPixels     int64
	// Bytes is the memory the decode and hash would hold at their peak,
	// MaxBytes the most one may take; both are 0 when the pixel limit
	// refused the image.
	Bytes, MaxBytes int64
}

func (e *TooLargeError) Error() string {
	if e.MaxBytes > 0 {
		return fmt.Sprintf("pdq: decoding the %s of %d×%d pixels takes %d bytes of memory, over the limit of %d", e.Format, e.Width, e.Height, e.Bytes, e.MaxBytes)
	}
	return fmt.Sprintf("pdq: %s of %d×%d pixels is over the limit of %d pixels", e.Format, e.Width, e.Height, e.MaxPixels)
}

func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// format is one supported image format. The formats are listed here rather
// than taken from image.RegisterFormat's global registry so that what is
// hashed does not change when some other package registers a decoder.
type format struct {
	name   string
	magic  func(head []byte) bool
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

var formats = []format{
	{"jpeg", func(b []byte) bool { return bytes.HasPrefix(b, []byte("\xff\xd8\xff")) }, jpeg.DecodeConfig, jpeg.Decode},
	{"png", func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }, png.DecodeConfig, png.Decode},
	{"gif", func(b []byte) bool {
		return bytes.HasPrefix(b, []byte("GIF87a")) || bytes.HasPrefix(b, []byte("GIF89a"))
	}, gif.DecodeConfig, gif.Decode},
	{"webp", func(b []byte) bool {
		return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP"
	}, webp.DecodeConfig, webp.Decode},
}

// sniffLen is enough leading bytes to tell every format apart.
const sniffLen = 12

// FromReader decodes a JPEG, PNG, GIF or WebP image and hashes it. A JPEG's
// EXIF orientation is applied first, so a phone photo hashes as it is
// displayed. Errors: ErrNotImage for other data, a *TooLargeError
// (ErrTooLarge) for images over opts.MaxPixels, ErrDecode for broken
// images; any other error is the reader's. Only the first frame of an
// animated GIF is hashed. The input size is the caller's to bound (for
// example with io.LimitReader).
func FromReader(r io.Reader, opts Options) (Result, error) {
	return FromReaderContext(context.Background(), r, opts)
}

// FromReaderContext is FromReader that waits for room in opts.Budget only
// until ctx ends, and then returns ctx's error.
func FromReaderContext(ctx context.Context, r io.Reader, opts Options) (Result, error) {
	c, q, err := readCoefficients(ctx, r, opts)
	if err != nil {
		return Result{}, err
	}
	return Result{Hash: threshold(&c), Quality: q}, nil
}

// DihedralFromReader is FromReader for all eight transforms (see
// DihedralFromImage); it also returns the quality.
func DihedralFromReader(r io.Reader, opts Options) (Dihedral, int, error) {
	c, q, err := readCoefficients(context.Background(), r, opts)
	if err != nil {
		return Dihedral{}, 0, err
	}
	return dihedral(&c), q, nil
}

func readCoefficients(ctx context.Context, r io.Reader, opts Options) (c [coefs][coefs]float64, q int, err error) {
	var release func()
	img, orientation, err := decode(r, opts, func(cost int64) error {
		if opts.Budget == nil {
			return nil
		}
		if err := opts.Budget.sem.Acquire(ctx, cost); err != nil {
			return fmt.Errorf("pdq: wait for %d bytes of the decoding budget: %w", cost, err)
		}
		release = func() { opts.Budget.sem.Release(cost) }
		return nil
	})
	if release != nil {
		// The pixels and the hashing buffers are garbage once the
		// coefficients are out; the budget is given back then.
		defer release()
	}
	if err != nil {
		return c, 0, err
	}
	c, q = coefficients(img, orientation)
	return c, q, nil
}

// decode reads the image size first and refuses oversized images before the
// decoder allocates their pixels. The bytes read for the size are kept and
// replayed to the decoder, so any io.Reader works (no seeking) and a JPEG's
// EXIF orientation is found in them without a second read. reserve is
// given the decode's memory cost before any pixel is allocated.
func decode(r io.Reader, opts Options, reserve func(cost int64) error) (img image.Image, orientation int, err error) {
	head := make([]byte, sniffLen, 4096)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, 0, fmt.Errorf("pdq: read image: %w", err)
	}
	head = head[:n]
	var f *format
	for i := range formats {
		if formats[i].magic(head) {
			f = &formats[i]
			break
		}
	}
	if f == nil {
		return nil, 0, ErrNotImage
	}

	src := &source{r: r, buf: head, limit: opts.maxHeaderBytes(), record: true}
	var cfg image.Config
	err = safely(func() (err error) {
		cfg, err = f.config(io.MultiReader(bytes.NewReader(head), src))
		return err
	})
	if src.overflow {
		return nil, 0, fmt.Errorf("pdq: %s header is over %d bytes: %w", f.name, src.limit, ErrDecode)
	}
	if err != nil {
		return nil, 0, src.wrap(f.name, err)
	}
	maxPix := opts.maxPixels()
	if cfg.Width < 0 || cfg.Height < 0 || (cfg.Height > 0 && int64(cfg.Width) > maxPix/int64(cfg.Height)) {
		return nil, 0, &TooLargeError{Format: f.name, Width: cfg.Width, Height: cfg.Height, MaxPixels: maxPix}
	}
	maxBytes := int64(DefaultMaxBytes)
	if opts.Budget != nil {
		maxBytes = opts.Budget.size
	}
	cost := decodeCost(f.name, cfg, src.buf)
	if cost > maxBytes {
		return nil, 0, &TooLargeError{Format: f.name, Width: cfg.Width, Height: cfg.Height, MaxPixels: maxPix, Bytes: cost, MaxBytes: maxBytes}
	}
	if err := reserve(cost); err != nil {
		return nil, 0, err
	}

	orientation = 1
	if f.name == "jpeg" {
		orientation = jpegOrientation(src.buf)
	}
	src.record = false
	err = safely(func() (err error) {
		img, err = f.decode(io.MultiReader(bytes.NewReader(src.buf), src))
		return err
	})
	if err != nil {
		return nil, 0, src.wrap(f.name, err)
	}
	if b := img.Bounds(); int64(b.Dx())*int64(b.Dy()) > maxPix {
		// The decoders honour their own headers; this guards the
		// hashing buffers should one ever not.
		return nil, 0, &TooLargeError{Format: f.name, Width: b.Dx(), Height: b.Dy(), MaxPixels: maxPix}
	}
	return img, orientation, nil
}

// safely turns a decoder panic into an error. The decoders are well
// tested, but they parse hostile input here, and one bad upload must not
// take down intake.
func safely(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	return fn()
}

// errHeaderLimit stops a decoder that reads past Options.MaxHeaderBytes.
var errHeaderLimit = errors.New("pdq: header limit reached")

// source reads the input, keeps what is read while record is set (up to
// limit bytes), and remembers the reader's own errors so that they are
// reported as such and not as corrupt images.
type source struct {
	r        io.Reader
	record   bool
	buf      []byte
	limit    int
	overflow bool
	err      error
}

func (s *source) Read(p []byte) (int, error) {
	if s.record {
		room := s.limit - len(s.buf)
		if room <= 0 {
			s.overflow = true
			return 0, errHeaderLimit
		}
		if len(p) > room {
			p = p[:room]
		}
	}
	n, err := s.r.Read(p)
	if s.record {
		s.buf = append(s.buf, p[:n]...)
	}
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// wrap classifies a decoder error: the reader's failure if it had one,
// otherwise a broken image.
func (s *source) wrap(format string, err error) error {
	if s.err != nil {
		return fmt.Errorf("pdq: read %s: %w", format, s.err)
	}
	return fmt.Errorf("pdq: decode %s: %w: %w", format, ErrDecode, err)
}
