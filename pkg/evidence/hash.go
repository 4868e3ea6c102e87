package evidence

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"net/http"
)

// hashes computes MD5, SHA-1 and SHA-256 of what is written to it. MD5 has
// no hardware support and costs about as much as the other two together, so
// it runs on a goroutine of its own beside them: Put reads a part while the
// S3 server idles, and a second core halves that read time.
type hashes struct {
	md5, sha1, sha256 hash.Hash
	work              chan []byte
	done              chan struct{}
}

func newHashes() *hashes {
	h := &hashes{
		md5:    md5.New(),
		sha1:   sha1.New(),
		sha256: sha256.New(),
		work:   make(chan []byte),
		done:   make(chan struct{}),
	}
	go func() {
		for p := range h.work {
			h.md5.Write(p)
			h.done <- struct{}{}
		}
	}()
	return h
}

// Write hashes p and returns when all three hashes have taken it, so the
// caller may reuse p.
func (h *hashes) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	h.work <- p
	h.sha1.Write(p)
	h.sha256.Write(p)
	<-h.done
	return len(p), nil
}

// close stops the MD5 goroutine; the sums stay readable.
func (h *hashes) close() { close(h.work) }

// ContentType is the media type a file's first bytes (up to 512) show,
// sniffed as browsers do (the WHATWG algorithm, http.DetectContentType):
// the type a submission's file is stored and reported with, whatever name
// or type the client gave it.
func ContentType(head []byte) string { return http.DetectContentType(head) }
