// Package evidence keeps evidence files (the reported media) in an S3 bucket,
// encrypted before they leave the process.
//
// Put streams a file through MD5, SHA-1 and SHA-256 (the hashes NCMEC and
// the case record need) and through DARE authenticated encryption
// (github.com/minio/sio, AES-256-GCM, 64 KiB packages) under the report's
// data key (see package keyring) into S3. The file is never held whole in
// memory: the upload is a multipart upload of unknown size with one 16 MiB
// part buffered at a time, so a Put keeps about 17 MiB live whatever the
// file's size (measured: heap and RSS grow by about 34 MiB during a 1 GiB
// Put, the garbage collector's default headroom included), and a file can be
// at most MaxObjectSize (about 156 GiB). Concurrent Puts each hold a part:
// bound them. Open
// decrypts while reading and fails on any altered, truncated or reordered
// data and on a wrong key.
//
// Errors that mean S3 could not be reached or is failing (refused or dropped
// connections, timeouts, 5xx answers) satisfy IsUnavailable, so that a
// handler can answer 503.
package evidence

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
	"github.com/minio/sio"

	"takedown/pkg/config"
)

const (
	// PartSize is the size of each multipart part, and so of the one buffer
	// a Put holds. minio-go with size -1 and no part size would buffer
	// ~528 MiB per upload (a part size fit for a 5 TiB object).
	PartSize = 16 << 20

	// maxParts is S3's limit on parts per multipart upload.
	maxParts = 10000

	// DARE packages: 64 KiB of plaintext become 64 KiB + 32 bytes.
	darePayload  = 1 << 16
	darePackage  = darePayload + 32
	dataKeySize  = 32
	defaultRetry = 3

	// MaxObjectSize is the largest file Put can store: 10,000 parts of
	// 16 MiB of ciphertext (156.25 GiB), less DARE's 0.05% overhead, about
	// 156.17 GiB of plaintext.
	MaxObjectSize int64 = PartSize * maxParts / darePackage * darePayload
)

var (
	// ErrTooLarge is returned by Put when the file is larger than the
	// configured maximum. Put stops reading at the first byte over the limit
	// and aborts the upload.
	ErrTooLarge = errors.New("evidence: file too large")
	// ErrEmpty is returned by Put for a file of no bytes: it is no
	// evidence, and DARE would store it as an empty object that any key
	// "decrypts", so Open refuses empty objects as corrupt.
	ErrEmpty = errors.New("evidence: file is empty")
	// ErrNotFound is returned for a key that holds no object.
	ErrNotFound = errors.New("evidence: object not found")
	// ErrUnavailable marks errors of reaching S3: see IsUnavailable.
	ErrUnavailable = errors.New("evidence: S3 storage unavailable")
	// ErrCorrupt is returned while reading an object that does not
	// decrypt: a wrong data key, or stored bytes that were altered,
	// truncated or reordered.
	ErrCorrupt = errors.New("evidence: stored object does not authenticate (wrong data key or altered data)")
	// ErrObjectLockUnsupported is returned by EnsureBucket when object lock
	// was asked for and the server or the existing bucket does not have it.
	ErrObjectLockUnsupported = errors.New("evidence: object lock not available")
)

// IsUnavailable reports whether err means S3 could not be reached or is
// failing (connection refused or dropped, DNS failure, timeout, HTTP 5xx),
// as opposed to a bad request, a missing object or a refusal. Intake answers
// such errors with 503.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// Config locates the bucket. Endpoint is host[:port] without a scheme;
// UseTLS chooses https. Region may be empty, in which case the client asks
// the server for the bucket's region.
type Config struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	Bucket    string
	UseTLS    bool
	Region    string
	// MaxSize is the largest file Put accepts, in bytes; 0 means
	// MaxObjectSize.
	MaxSize int64
	// MaxRetries is how often a failed S3 request is tried in all (minio-go
	// backs off between tries); 0 means 3, so that an unreachable S3 is
	// reported within about a second rather than minio-go's default ~8 s.
	MaxRetries int
}

// Validate checks the configuration, naming every bad field.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Endpoint == "":
		errs = append(errs, errors.New("endpoint is empty"))
	case strings.Contains(c.Endpoint, "://"):
		errs = append(errs, fmt.Errorf("endpoint %q has a scheme: give host:port and set UseTLS for https", c.Endpoint))
	case strings.ContainsAny(c.Endpoint, "/?#"):
		errs = append(errs, fmt.Errorf("endpoint %q has a path: give host:port only", c.Endpoint))
	}
	if c.AccessKey == "" {
		errs = append(errs, errors.New("access key is empty"))
	}
	if c.SecretKey == "" {
		errs = append(errs, errors.New("secret key is empty"))
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("bucket %q: %w", c.Bucket, err))
	}
	if c.MaxSize < 0 || c.MaxSize > MaxObjectSize {
		errs = append(errs, fmt.Errorf("max size %d is outside 0..%d bytes", c.MaxSize, MaxObjectSize))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("max retries %d is negative", c.MaxRetries))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("evidence: config: %w", err)
	}
	return nil
}

// String hides the secret key, should the config be printed.
func (c Config) String() string {
	return fmt.Sprintf("evidence.Config{Endpoint:%s Bucket:%s UseTLS:%t Region:%s AccessKey:%s SecretKey:<redacted> MaxSize:%d}",
		c.Endpoint, c.Bucket, c.UseTLS, c.Region, c.AccessKey, c.MaxSize)
}

// LogValue hides the secret key from slog.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("bucket", c.Bucket),
		slog.Bool("tls", c.UseTLS),
		slog.String("region", c.Region),
		slog.Int64("max_size", c.MaxSize),
	)
}

// Option adjusts a Store.
type Option func(*Store)

// WithObserve has the store report every S3 operation's latency and outcome,
// for metrics. op is "put", "open", "delete", "retain", "check" or
// "ensure_bucket";
// result is "ok", "not_found", "too_large", "unavailable", "canceled" or
// "error". For "open" the duration runs to the first byte, not to the end of
// the read.
func WithObserve(f func(op, result string, d time.Duration)) Option {
	return func(s *Store) { s.observe = f }
}

// Store reads and writes evidence in one bucket. It is safe for concurrent
// use; each concurrent Put holds one PartSize buffer.
type Store struct {
	client  *minio.Client
	bucket  string
	maxSize int64
	observe func(op, result string, d time.Duration)
}

// Object describes a stored file. Size and the hashes are of the plaintext,
// as received; ETag is what S3 reports for the encrypted object.
type Object struct {
	Key       string
	VersionID string // empty unless the bucket keeps versions
	Size      int64
	MD5       string // lower-case hex
	SHA1      string
	SHA256    string
	ETag      string
}

// New checks cfg and makes a Store. It does not contact S3: see Check.
func New(cfg Config, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	retries := cfg.MaxRetries
	if retries == 0 {
		retries = defaultRetry
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     cfg.UseTLS,
		Region:     cfg.Region,
		MaxRetries: retries,
	})
	if err != nil {
		return nil, fmt.Errorf("evidence: new S3 client for %s: %w", cfg.Endpoint, err)
	}
	s := &Store{client: client, bucket: cfg.Bucket, maxSize: cfg.MaxSize}
	if s.maxSize == 0 {
		s.maxSize = MaxObjectSize
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Bucket is the bucket the store uses.
func (s *Store) Bucket() string { return s.bucket }

func dareConfig(dataKey []byte) sio.Config {
	// Only DARE 2.0 with AES-256-GCM, for writing and reading: no downgrade
	// to version 1.0 or another cipher by whoever can write the bucket.
	return sio.Config{
		MinVersion:   sio.Version20,
		MaxVersion:   sio.Version20,
		CipherSuites: []byte{sio.AES_256_GCM},
		Key:          dataKey,
	}
}

// Put stores r's content, encrypted under dataKey (32 bytes), at key,
// replacing what was there (or adding a version when the bucket keeps
// versions). It reads r to its end, or to the first byte over the size
// limit, and never holds more than one PartSize part. If Put fails, the
// multipart upload is aborted so no part is left behind; the
// abort is best effort when S3 is failing, so the bucket should also have a
// lifecycle rule that aborts incomplete uploads.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, dataKey []byte) (obj Object, err error) {
	start := time.Now()
	defer func() { s.record("put", err, start) }()

	if err := s3utils.CheckValidObjectName(key); err != nil {
		return Object{}, fmt.Errorf("evidence: put %q: %w", key, err)
	}
	if len(dataKey) != dataKeySize {
		return Object{}, fmt.Errorf("evidence: put %s: data key is %d bytes, want %d", key, len(dataKey), dataKeySize)
	}
	limited := &limitReader{r: r, max: s.maxSize}
	// Read the start of the file first: an empty file is refused without
	// leaving anything in S3, and a small one (most evidence: images) is
	// sent with its size known, in one request, without the streaming
	// upload's part buffer.
	buf := heads.Get().(*[]byte)
	head := *buf
	n, err := io.ReadFull(limited, head)
	switch {
	case limited.exceeded:
		return Object{}, fmt.Errorf("evidence: put %s: %w: more than %d bytes", key, ErrTooLarge, s.maxSize)
	case n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
		return Object{}, fmt.Errorf("evidence: put %s: %w", key, ErrEmpty)
	case err != nil && err != io.EOF && err != io.ErrUnexpectedEOF:
		return Object{}, fmt.Errorf("evidence: put %s: read: %w", key, err)
	}
	head = head[:n]
	sums := newHashes()
	defer sums.close()
	opts := minio.PutObjectOptions{
		PartSize:    PartSize,
		ContentType: "application/octet-stream",
		// One part in flight: minio-go's size -1 path reads, uploads and
		// reuses a single buffer. (ConcurrentStreamParts would hold
		// NumThreads parts.)
		NumThreads: 1,
		// Over plain HTTP minio-go would hash every part with SHA-256 to
		// sign it. DARE already authenticates every byte under the data
		// key, so an altered body fails to decrypt; the signature's hash
		// would only cost a core's time. (Over TLS minio-go sends unsigned
		// payloads anyway.)
		DisableContentSha256: true,
	}
	if err != nil { // the whole file is in head
		sums.Write(head)
		size, serr := sio.EncryptedSize(uint64(n))
		enc, eerr := sio.EncryptReader(bytes.NewReader(head), dareConfig(dataKey))
		if serr != nil || eerr != nil {
			return Object{}, fmt.Errorf("evidence: put %s: encrypt: %w", key, errors.Join(serr, eerr))
		}
		info, err := s.client.PutObject(ctx, s.bucket, key, enc, int64(size), opts)
		heads.Put(buf) // nothing refers to it once the request is over
		if err != nil {
			return Object{}, fmt.Errorf("evidence: put %s: %w", key, classify(err))
		}
		return s.object(key, info, int64(n), sums), nil
	}
	ahead := newReadAhead(io.MultiReader(bytes.NewReader(head), limited), sums, readAheadChunk, readAheadDepth)
	defer ahead.Close()
	enc, err := sio.EncryptReader(ahead, dareConfig(dataKey))
	if err != nil {
		return Object{}, fmt.Errorf("evidence: put %s: encrypt: %w", key, err)
	}
	info, err := s.client.PutObject(ctx, s.bucket, key, enc, -1, opts)
	ahead.recycle() // the upload is over: nothing reads the chunks any more
	if limited.exceeded {
		return Object{}, fmt.Errorf("evidence: put %s: %w: more than %d bytes", key, ErrTooLarge, s.maxSize)
	}
	if err != nil {
		return Object{}, fmt.Errorf("evidence: put %s: %w", key, classify(err))
	}
	return s.object(key, info, limited.n, sums), nil
}

// object describes what Put stored.
func (s *Store) object(key string, info minio.UploadInfo, size int64, sums *hashes) Object {
	return Object{
		Key:       key,
		VersionID: info.VersionID,
		Size:      size,
		MD5:       hexSum(sums.md5),
		SHA1:      hexSum(sums.sha1),
		SHA256:    hexSum(sums.sha256),
		ETag:      info.ETag,
	}
}

// heads recycles the buffers that hold the start of each file: a submission
// of small files would otherwise allocate (and clear) a MiB per file.
var heads = sync.Pool{New: func() any { b := make([]byte, smallFile); return &b }}

// Read-ahead of 16 MiB: with minio-go's one 16 MiB part, a Put holds about
// 33 MiB, and receiving the next part overlaps sending the last.
const (
	smallFile      = 1 << 20 // files up to this size are sent in one request
	readAheadChunk = 1 << 20
	readAheadDepth = 16
)

// PutMemory is the most memory one Put holds at once: the head of the
// file, the read-ahead's chunks and minio-go's part buffer. A Put of a file
// of n bytes holds at most min(n, PutMemory) of buffers beyond the head.
// Callers that run Puts at once budget them with it.
const PutMemory = smallFile + (readAheadDepth+2)*readAheadChunk + PartSize

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// limitReader fails with ErrTooLarge as soon as more than max bytes have
// been read, without reading further.
type limitReader struct {
	r        io.Reader
	max, n   int64
	exceeded bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.exceeded {
		return 0, ErrTooLarge
	}
	// Ask for at most one byte past the limit: enough to know it is crossed.
	if room := l.max - l.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	if l.n+int64(n) > l.max {
		l.exceeded = true
		return 0, ErrTooLarge
	}
	l.n += int64(n)
	return n, err
}

// Open returns a reader of the decrypted content at key. Reading fails with
// ErrCorrupt if the object does not authenticate under dataKey: the reader
// never returns unauthenticated bytes, but a caller that has already used
// earlier bytes must discard them when a later read fails. The caller must
// Close the reader.
func (s *Store) Open(ctx context.Context, key string, dataKey []byte) (rc io.ReadCloser, err error) {
	start := time.Now()
	defer func() { s.record("open", err, start) }()

	if len(dataKey) != dataKeySize {
		return nil, fmt.Errorf("evidence: open %s: data key is %d bytes, want %d", key, len(dataKey), dataKeySize)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("evidence: open %s: %w", key, classify(err))
	}
	// GetObject is lazy; Stat sends the request, so that a missing object or
	// an unreachable S3 is reported here and not at the first Read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, fmt.Errorf("evidence: open %s: %w", key, classify(err))
	}
	dec, err := sio.DecryptReader(obj, dareConfig(dataKey))
	if err != nil {
		obj.Close()
		return nil, fmt.Errorf("evidence: open %s: decrypt: %w", key, err)
	}
	return &openReader{key: key, dec: dec, obj: obj}, nil
}

type openReader struct {
	key string
	dec io.Reader
	obj *minio.Object
}

func (o *openReader) Read(p []byte) (int, error) {
	n, err := o.dec.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	var sioErr sio.Error
	if errors.As(err, &sioErr) {
		return n, fmt.Errorf("evidence: read %s: %w (%v)", o.key, ErrCorrupt, sioErr)
	}
	return n, fmt.Errorf("evidence: read %s: %w", o.key, classify(err))
}

func (o *openReader) Close() error { return o.obj.Close() }

// Delete removes the object at key: every version of it when the bucket
// keeps versions (delete markers included), and any unfinished upload to
// it, so that a submission that failed halfway leaves nothing behind.
// Deleting a key that holds nothing is not an error. Versions under object
// lock retention are not deleted; Delete then fails.
func (s *Store) Delete(ctx context.Context, key string) (err error) {
	start := time.Now()
	defer func() { s.record("delete", err, start) }()
	return s.remove(ctx, key, false)
}

// Destroy removes every version of the object at key like Delete, and also
// versions under governance retention (the caller needs the S3 permission
// to bypass it): for destruction on a law-enforcement request. Versions
// under compliance retention cannot be removed by anyone; Destroy then
// fails, and the caller must make the bytes unreadable another way
// (destroying the data key).
func (s *Store) Destroy(ctx context.Context, key string) (err error) {
	start := time.Now()
	defer func() { s.record("destroy", err, start) }()
	return s.remove(ctx, key, true)
}

func (s *Store) remove(ctx context.Context, key string, bypass bool) error {

	if err := s.client.RemoveIncompleteUpload(ctx, s.bucket, key); err != nil && !isCode(err, "NoSuchUpload") {
		return fmt.Errorf("evidence: delete %s: abort unfinished uploads: %w", key, classify(err))
	}
	var removed bool
	for v := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}) {
		if v.Err != nil {
			return fmt.Errorf("evidence: delete %s: list versions: %w", key, classify(v.Err))
		}
		if v.Key != key { // the prefix also matches longer keys
			continue
		}
		if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: bypass}); err != nil {
			return fmt.Errorf("evidence: delete %s version %s: %w", key, v.VersionID, classify(err))
		}
		removed = true
	}
	if !removed {
		// Some servers list no versions for an unversioned bucket: delete
		// the plain key too (a no-op when nothing is there).
		if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{GovernanceBypass: bypass}); err != nil && !isCode(err, "NoSuchKey") {
			return fmt.Errorf("evidence: delete %s: %w", key, classify(err))
		}
	}
	return nil
}

// Retention is an S3 object lock retention mode.
type Retention string

const (
	// Governance retention can be lifted by a user with the bypass
	// permission: for tests and staging.
	Governance Retention = "GOVERNANCE"
	// Compliance retention cannot be shortened or lifted by anyone until it
	// ends: the legal preservation of evidence.
	Compliance Retention = "COMPLIANCE"
)

// Retain protects a version of an object (versionID as returned by Put;
// empty for the latest) from deletion and overwrite until the given time,
// with S3 object lock. The bucket must have been created with object lock
// (BucketOptions.ObjectLock). Retention can be extended but, in compliance
// mode, never shortened.
func (s *Store) Retain(ctx context.Context, key, versionID string, mode Retention, until time.Time) (err error) {
	start := time.Now()
	defer func() { s.record("retain", err, start) }()

	if mode != Governance && mode != Compliance {
		return fmt.Errorf("evidence: retain %s: unknown retention mode %q", key, mode)
	}
	m := minio.RetentionMode(mode)
	until = until.UTC()
	err = s.client.PutObjectRetention(ctx, s.bucket, key, minio.PutObjectRetentionOptions{
		Mode:            &m,
		RetainUntilDate: &until,
		VersionID:       versionID,
	})
	if err != nil {
		return fmt.Errorf("evidence: retain %s version %s until %s: %w", key, versionID, until.Format(time.RFC3339), classify(err))
	}
	return nil
}

// Check reports whether the bucket is reachable and exists, for /readyz.
func (s *Store) Check(ctx context.Context) (err error) {
	start := time.Now()
	defer func() { s.record("check", err, start) }()

	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("evidence: check bucket %s: %w", s.bucket, classify(err))
	}
	if !ok {
		return fmt.Errorf("evidence: check bucket %s: bucket does not exist", s.bucket)
	}
	return nil
}

// BucketOptions are the properties EnsureBucket gives a new bucket.
type BucketOptions struct {
	// Versioning keeps every version of an object, so an overwrite does not
	// destroy evidence.
	Versioning bool
	// ObjectLock enables S3 object lock (and with it versioning), so that
	// retention can be set on evidence. It can only be enabled when the
	// bucket is created; no default retention is set, since a failed
	// submission must be able to delete what it stored.
	ObjectLock bool
}

// EnsureBucket creates the bucket if it is missing, for the local stack and
// tests. With ObjectLock it fails with ErrObjectLockUnsupported if the
// server cannot create a bucket with object lock, or if the bucket exists
// without it.
func (s *Store) EnsureBucket(ctx context.Context, opts BucketOptions) (err error) {
	start := time.Now()
	defer func() { s.record("ensure_bucket", err, start) }()

	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("evidence: ensure bucket %s: %w", s.bucket, classify(err))
	}
	if !exists {
		err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{ObjectLocking: opts.ObjectLock})
		switch {
		case err == nil:
		case isCode(err, "BucketAlreadyOwnedByYou"):
			// Created concurrently by another instance: check it below.
		case opts.ObjectLock && !IsUnavailable(classify(err)):
			return fmt.Errorf("evidence: ensure bucket %s: create with object lock: %w: %w", s.bucket, ErrObjectLockUnsupported, err)
		default:
			return fmt.Errorf("evidence: ensure bucket %s: create: %w", s.bucket, classify(err))
		}
	}
	if opts.ObjectLock {
		status, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.bucket)
		if err != nil && IsUnavailable(classify(err)) {
			return fmt.Errorf("evidence: ensure bucket %s: read object lock: %w", s.bucket, classify(err))
		}
		if err != nil || status != "Enabled" {
			// Object lock cannot be turned on for an existing bucket.
			return fmt.Errorf("evidence: ensure bucket %s: %w: the bucket has no object lock (status %q, %v); it can only be enabled when the bucket is created",
				s.bucket, ErrObjectLockUnsupported, status, err)
		}
		return nil
	}
	if opts.Versioning {
		if err := s.client.EnableVersioning(ctx, s.bucket); err != nil {
			return fmt.Errorf("evidence: ensure bucket %s: enable versioning: %w", s.bucket, classify(err))
		}
	}
	return nil
}

func (s *Store) record(op string, err error, start time.Time) {
	if s.observe == nil {
		return
	}
	s.observe(op, result(err), time.Since(start))
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "error"
	}
}

// classify marks the errors of a minio-go call that mean "not found" or "S3
// unavailable", keeping the original error in the chain.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch {
		case resp.Code == "NoSuchKey" || resp.Code == "NoSuchVersion":
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case resp.StatusCode >= 500:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err // the caller gave up; S3 may be fine
	}
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr), // timeouts, refused connections, DNS
		errors.As(err, &urlErr), // any failure of the HTTP round trip
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func isCode(err error, code string) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && resp.Code == code
}

// LoadConfig reads the evidence store's location and credentials:
// S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY (secrets), S3_BUCKET, S3_TLS and
// S3_REGION.
func LoadConfig(l *config.Loader) Config {
	return Config{
		Endpoint:  l.MustString("S3_ENDPOINT"),
		AccessKey: l.Secret("S3_ACCESS_KEY", config.Required).Reveal(),
		SecretKey: l.Secret("S3_SECRET_KEY", config.Required).Reveal(),
		Bucket:    l.String("S3_BUCKET", "evidence"),
		UseTLS:    l.Bool("S3_TLS", true),
		Region:    l.String("S3_REGION", ""),
	}
}
