package reports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"takedown/pkg/pdq"
)

// imageTee keeps a copy of an image's bytes while it streams to S3, up to a
// limit, so that its PDQ hash is computed right after the upload without
// reading the evidence back. Larger files, and files that are not images,
// get no PDQ hash: memory stays bounded by the limit per upload.
type imageTee struct {
	buf  bytes.Buffer
	max  int
	over bool
}

// newImageTee returns a tee for a file of the sniffed content type, or nil
// when the file cannot be an image PDQ hashes.
func newImageTee(contentType string, max int) *imageTee {
	if max <= 0 || !strings.HasPrefix(contentType, "image/") {
		return nil
	}
	return &imageTee{max: max}
}

func (t *imageTee) Write(p []byte) (int, error) {
	if !t.over {
		if t.buf.Len()+len(p) > t.max {
			t.over = true
			t.buf = bytes.Buffer{} // give the memory back at once
		} else {
			t.buf.Write(p)
		}
	}
	return len(p), nil
}

// hash returns the image's PDQ hash (hex) and quality. An image that is
// not hashed is no error: skipped then says why, for the answer, when
// the file was an image within the limits' reach (empty for files that
// are no image PDQ hashes).
func (t *imageTee) hash(ctx context.Context, opts pdq.Options) (hash string, quality int, skipped string, err error) {
	if t == nil || t.buf.Len() == 0 && !t.over {
		return "", 0, "", nil
	}
	if t.over {
		return "", 0, fmt.Sprintf("no PDQ hash: the image is larger than %d bytes (PDQ_MAX_IMAGE_SIZE)", t.max), nil
	}
	defer func() { t.buf = bytes.Buffer{} }()
	res, err := pdq.FromReaderContext(ctx, bytes.NewReader(t.buf.Bytes()), opts)
	var tl *pdq.TooLargeError
	switch {
	case err == nil:
		return res.Hash.String(), res.Quality, "", nil
	case errors.As(err, &tl) && tl.MaxBytes > 0:
		return "", 0, fmt.Sprintf("no PDQ hash: decoding this %d×%d %s takes %d bytes of memory, over the budget of %d (PDQ_MEMORY)",
			tl.Width, tl.Height, tl.Format, tl.Bytes, tl.MaxBytes), nil
	case errors.As(err, &tl):
		return "", 0, fmt.Sprintf("no PDQ hash: the %d×%d %s is over %d pixels (PDQ_MAX_PIXELS)", tl.Width, tl.Height, tl.Format, tl.MaxPixels), nil
	case errors.Is(err, pdq.ErrNotImage), errors.Is(err, pdq.ErrDecode):
		return "", 0, "", nil
	default:
		return "", 0, "", err
	}
}
