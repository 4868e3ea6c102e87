package httpapi

import (
	"bytes"
	"errors"
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

// hash returns the image's PDQ hash (hex) and quality; ok is false for
// anything that is not a decodable image within the limits, which is no
// error: such files simply have no PDQ hash.
func (t *imageTee) hash(opts pdq.Options) (hash string, quality int, ok bool, err error) {
	if t == nil || t.over || t.buf.Len() == 0 {
		return "", 0, false, nil
	}
	defer func() { t.buf = bytes.Buffer{} }()
	res, err := pdq.FromReader(bytes.NewReader(t.buf.Bytes()), opts)
	switch {
	case err == nil:
		return res.Hash.String(), res.Quality, true, nil
	case errors.Is(err, pdq.ErrNotImage), errors.Is(err, pdq.ErrDecode), errors.Is(err, pdq.ErrTooLarge):
		return "", 0, false, nil
	default:
		return "", 0, false, err
	}
}
