package evidence_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/sio"

	"takedown/pkg/evidence"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newStore(t testing.TB, env testenv.S3Env, opts ...evidence.Option) *evidence.Store {
	t.Helper()
	return newStoreMax(t, env, 0, opts...)
}

func newStoreMax(t testing.TB, env testenv.S3Env, maxSize int64, opts ...evidence.Option) *evidence.Store {
	t.Helper()
	s, err := evidence.New(evidence.Config{
		Endpoint:  env.Endpoint,
		AccessKey: env.AccessKey,
		SecretKey: env.SecretKey,
		Bucket:    env.Bucket,
		Region:    env.Region,
		MaxSize:   maxSize,
	}, opts...)
	if err != nil {
		t.Fatalf("evidence.New: %v", err)
	}
	return s
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func readAll(t testing.TB, s *evidence.Store, key string, dataKey []byte) ([]byte, error) {
	t.Helper()
	rc, err := s.Open(ctxT(t), key, dataKey)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func getRaw(t testing.TB, env testenv.S3Env, key string) []byte {
	t.Helper()
	obj, err := env.Client(t).GetObject(ctxT(t), env.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	raw, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read raw %s: %v", key, err)
	}
	return raw
}

func putRaw(t testing.TB, env testenv.S3Env, key string, raw []byte) {
	t.Helper()
	_, err := env.Client(t).PutObject(ctxT(t), env.Bucket, key, bytes.NewReader(raw), int64(len(raw)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// filesIn lists the regular files under the bucket's directory on the
// gateway's disk, which shows leftovers no S3 listing does (parts of
// aborted uploads, temporary files).
func filesIn(t testing.TB, env testenv.S3Env) []string {
	t.Helper()
	var files []string
	root := filepath.Join(env.DataDir, env.Bucket)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return files
}

func objectKeys(t testing.TB, env testenv.S3Env) []string {
	t.Helper()
	var keys []string
	c := env.Client(t)
	for o := range c.ListObjects(ctxT(t), env.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatalf("list: %v", o.Err)
		}
		keys = append(keys, o.Key+"@"+o.VersionID)
	}
	for u := range c.ListIncompleteUploads(ctxT(t), env.Bucket, "", true) {
		if u.Err != nil {
			t.Fatalf("list uploads: %v", u.Err)
		}
		keys = append(keys, "upload:"+u.Key)
	}
	return keys
}

func TestRoundTrip25MiB(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	s := newStore(t, env)
	data := randomBytes(t, 25<<20)
	dataKey := randomBytes(t, 32)

	obj, err := s.Put(ctxT(t), "reports/r1/f1", bytes.NewReader(data), dataKey)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	md5sum, sha1sum, sha256sum := md5.Sum(data), sha1.Sum(data), sha256.Sum256(data)
	want := evidence.Object{
		Key:    "reports/r1/f1",
		Size:   int64(len(data)),
		MD5:    hex.EncodeToString(md5sum[:]),
		SHA1:   hex.EncodeToString(sha1sum[:]),
		SHA256: hex.EncodeToString(sha256sum[:]),
	}
	got := obj
	got.ETag, got.VersionID = "", ""
	if got != want {
		t.Errorf("Put returned\n %+v\nwant\n %+v", got, want)
	}
	if !strings.HasSuffix(obj.ETag, "-2") {
		t.Errorf("ETag %q: want a two-part multipart upload for 25 MiB", obj.ETag)
	}

	raw := getRaw(t, env, "reports/r1/f1")
	wantSize, _ := sio.EncryptedSize(uint64(len(data)))
	if uint64(len(raw)) != wantSize {
		t.Errorf("stored %d bytes, want %d (DARE size of the plaintext)", len(raw), wantSize)
	}
	if bytes.Equal(raw[:len(data)], data) {
		t.Fatal("stored bytes are the plaintext")
	}
	for _, off := range []int{0, 1 << 16, 10<<20 + 12345, len(data) - 64} {
		if bytes.Contains(raw, data[off:off+64]) {
			t.Errorf("stored bytes contain the plaintext chunk at %d", off)
		}
	}

	back, err := readAll(t, s, "reports/r1/f1", dataKey)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if !bytes.Equal(back, data) {
		t.Fatal("decrypted bytes differ from the input")
	}
}

func TestEmptyFile(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	s := newStore(t, env)
	dataKey := randomBytes(t, 32)
	if _, err := s.Put(ctxT(t), "empty", bytes.NewReader(nil), dataKey); !errors.Is(err, evidence.ErrEmpty) {
		t.Fatalf("Put of an empty file: err = %v, want ErrEmpty", err)
	}
	if keys := objectKeys(t, env); len(keys) != 0 {
		t.Errorf("objects or uploads left behind: %v", keys)
	}
	// An empty object (as if truncated to nothing) is not an empty file.
	putRaw(t, env, "empty", nil)
	if _, err := readAll(t, s, "empty", dataKey); !errors.Is(err, evidence.ErrCorrupt) {
		t.Fatalf("read of an empty object: err = %v, want ErrCorrupt", err)
	}
}

// countingReader yields n pseudo-random bytes and counts what was read.
type countingReader struct {
	r    io.Reader
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

func TestPutTooLarge(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	// Over one part, so that a part is already stored when the limit is hit.
	const max = 20 << 20
	s := newStoreMax(t, env, max)
	src := &countingReader{r: newPatternReader(64 << 20)}

	_, err := s.Put(ctxT(t), "big", src, randomBytes(t, 32))
	if !errors.Is(err, evidence.ErrTooLarge) {
		t.Fatalf("Put of 64 MiB with limit 20 MiB: err = %v, want ErrTooLarge", err)
	}
	if src.read > max+1 {
		t.Errorf("read %d bytes, want at most limit+1 = %d", src.read, max+1)
	}
	if keys := objectKeys(t, env); len(keys) != 0 {
		t.Errorf("objects or uploads left behind: %v", keys)
	}
	if files := filesIn(t, env); len(files) != 0 {
		t.Errorf("files left on the gateway's disk: %v", files)
	}

	// Exactly at the limit is fine.
	obj, err := s.Put(ctxT(t), "fits", newPatternReader(max), randomBytes(t, 32))
	if err != nil || obj.Size != max {
		t.Fatalf("Put of exactly the limit: %+v, %v", obj, err)
	}
}

func TestWrongKeyFails(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	s := newStore(t, env)
	data := randomBytes(t, 200<<10)
	if _, err := s.Put(ctxT(t), "k", bytes.NewReader(data), randomBytes(t, 32)); err != nil {
		t.Fatal(err)
	}
	back, err := readAll(t, s, "k", randomBytes(t, 32))
	if !errors.Is(err, evidence.ErrCorrupt) {
		t.Fatalf("read with a wrong key: err = %v, want ErrCorrupt", err)
	}
	if len(back) != 0 {
		t.Errorf("read %d bytes with a wrong key", len(back))
	}
}

func TestTamperedFails(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	s := newStore(t, env)
	dataKey := randomBytes(t, 32)
	data := randomBytes(t, 300<<10) // five DARE packages
	if _, err := s.Put(ctxT(t), "k", bytes.NewReader(data), dataKey); err != nil {
		t.Fatal(err)
	}
	raw := getRaw(t, env, "k")
	const pkg = 1<<16 + 32

	for _, tc := range []struct {
		name   string
		tamper func([]byte) []byte
	}{
		{"flipped bit", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"truncated to whole packages", func(b []byte) []byte { return b[:3*pkg] }},
		{"last package dropped", func(b []byte) []byte { return b[:4*pkg] }},
		{"packages swapped", func(b []byte) []byte {
			out := append([]byte{}, b[pkg:2*pkg]...)
			out = append(out, b[:pkg]...)
			return append(out, b[2*pkg:]...)
		}},
		{"appended", func(b []byte) []byte { return append(b, b[:pkg]...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "tampered/" + strings.ReplaceAll(tc.name, " ", "-")
			putRaw(t, env, key, tc.tamper(bytes.Clone(raw)))
			if _, err := readAll(t, s, key, dataKey); !errors.Is(err, evidence.ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOpenNotFound(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	s := newStore(t, env)
	_, err := s.Open(ctxT(t), "missing", randomBytes(t, 32))
	if !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if evidence.IsUnavailable(err) {
		t.Error("a missing object counts as S3 unavailable")
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	for _, versioned := range []bool{false, true} {
		name := "unversioned"
		if versioned {
			name = "versioned"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.S3(t)
			s := newStore(t, env)
			ctx := ctxT(t)
			if versioned {
				if err := s.EnsureBucket(ctx, evidence.BucketOptions{Versioning: true}); err != nil {
					t.Fatal(err)
				}
			}
			dataKey := randomBytes(t, 32)
			for i := range 2 { // two versions when versioned
				if _, err := s.Put(ctx, "r/k1", bytes.NewReader(randomBytes(t, 1000+i)), dataKey); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Put(ctx, "r/k10", bytes.NewReader(randomBytes(t, 10)), dataKey); err != nil {
				t.Fatal(err)
			}
			if versioned {
				n := 0
				for _, k := range objectKeys(t, env) {
					if strings.HasPrefix(k, "r/k1@") {
						n++
					}
				}
				if n != 2 {
					t.Fatalf("%d versions of r/k1 before Delete, want 2 (%v)", n, objectKeys(t, env))
				}
			}

			if err := s.Delete(ctx, "r/k1"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			keys := objectKeys(t, env)
			if len(keys) != 1 || !strings.HasPrefix(keys[0], "r/k10@") {
				t.Errorf("after Delete of r/k1: %v, want only r/k10", keys)
			}
			if _, err := s.Open(ctx, "r/k1", dataKey); !errors.Is(err, evidence.ErrNotFound) {
				t.Errorf("Open after Delete: %v, want ErrNotFound", err)
			}
			if err := s.Delete(ctx, "r/k1"); err != nil {
				t.Errorf("second Delete: %v", err)
			}
			if err := s.Delete(ctx, "r/k10"); err != nil {
				t.Fatal(err)
			}
			if keys := objectKeys(t, env); len(keys) != 0 {
				t.Errorf("left after deleting everything: %v", keys)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	s := newStore(t, testenv.UnreachableS3(t))
	ctx := ctxT(t)
	dataKey := randomBytes(t, 32)

	_, err := s.Put(ctx, "k", bytes.NewReader([]byte("data")), dataKey)
	if !evidence.IsUnavailable(err) {
		t.Errorf("Put: err = %v, want unavailable", err)
	}
	if _, err := s.Open(ctx, "k", dataKey); !evidence.IsUnavailable(err) {
		t.Errorf("Open: err = %v, want unavailable", err)
	}
	if err := s.Delete(ctx, "k"); !evidence.IsUnavailable(err) {
		t.Errorf("Delete: err = %v, want unavailable", err)
	}
	if err := s.Check(ctx); !evidence.IsUnavailable(err) {
		t.Errorf("Check: err = %v, want unavailable", err)
	}
}

func TestServerStoppedAndRestarted(t *testing.T) {
	t.Parallel()
	srv := testenv.StartS3Server(t)
	env := srv.Bucket(t)
	s := newStore(t, env)
	ctx := ctxT(t)
	dataKey := randomBytes(t, 32)
	if _, err := s.Put(ctx, "before", bytes.NewReader([]byte("kept")), dataKey); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	start := time.Now()
	_, err := s.Put(ctx, "during", newPatternReader(1<<20), dataKey)
	if !evidence.IsUnavailable(err) {
		t.Fatalf("Put while stopped: err = %v, want unavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Put took %v to report S3 down", d)
	}
	if err := s.Check(ctx); !evidence.IsUnavailable(err) {
		t.Errorf("Check while stopped: err = %v, want unavailable", err)
	}

	srv.Start(t)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check after restart: %v", err)
	}
	back, err := readAll(t, s, "before", dataKey)
	if err != nil || string(back) != "kept" {
		t.Fatalf("after restart: %q, %v", back, err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	if err := newStore(t, env).Check(ctxT(t)); err != nil {
		t.Fatalf("Check: %v", err)
	}
	env.Bucket = "no-such-bucket-here"
	err := newStore(t, env).Check(ctxT(t))
	if err == nil || evidence.IsUnavailable(err) {
		t.Fatalf("Check of a missing bucket: err = %v, want a plain error", err)
	}
}

func TestEnsureBucket(t *testing.T) {
	t.Parallel()
	for _, opts := range []evidence.BucketOptions{{}, {Versioning: true}, {ObjectLock: true}} {
		env := testenv.S3(t) // for its server and credentials; the bucket is new
		env.Bucket += "-new"
		s := newStore(t, env)
		ctx := ctxT(t)
		err := s.EnsureBucket(ctx, opts)
		t.Cleanup(func() {
			// Removing a bucket with object lock needs its versions gone.
			_ = s.Delete(context.Background(), "k")
			_ = env.Client(t).RemoveBucket(context.Background(), env.Bucket)
		})
		if errors.Is(err, evidence.ErrObjectLockUnsupported) {
			t.Logf("EnsureBucket(%+v): %v", opts, err)
			continue
		}
		if err != nil {
			t.Fatalf("EnsureBucket(%+v): %v", opts, err)
		}
		if err := s.Check(ctx); err != nil {
			t.Fatalf("Check after EnsureBucket(%+v): %v", opts, err)
		}
		if err := s.EnsureBucket(ctx, opts); err != nil {
			t.Fatalf("second EnsureBucket(%+v): %v", opts, err)
		}
		obj, err := s.Put(ctx, "k", bytes.NewReader([]byte("x")), randomBytes(t, 32))
		if err != nil {
			t.Fatal(err)
		}
		if (opts.Versioning || opts.ObjectLock) != (obj.VersionID != "" && obj.VersionID != "null") {
			t.Errorf("EnsureBucket(%+v): Put gave version id %q", opts, obj.VersionID)
		}
	}

	// Object lock cannot be added to an existing bucket.
	env := testenv.S3(t)
	err := newStore(t, env).EnsureBucket(ctxT(t), evidence.BucketOptions{ObjectLock: true})
	if !errors.Is(err, evidence.ErrObjectLockUnsupported) {
		t.Errorf("EnsureBucket(ObjectLock) on a bucket without it: err = %v, want ErrObjectLockUnsupported", err)
	}
}

func TestObserve(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	var mu sync.Mutex
	var got []string
	s := newStoreMax(t, env, 10, evidence.WithObserve(func(op, result string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if d <= 0 {
			t.Errorf("%s: duration %v", op, d)
		}
		got = append(got, op+":"+result)
	}))
	ctx := ctxT(t)
	dataKey := randomBytes(t, 32)
	_, _ = s.Put(ctx, "k", bytes.NewReader([]byte("small")), dataKey)
	_, _ = s.Put(ctx, "k2", bytes.NewReader([]byte("more than ten bytes")), dataKey)
	if rc, err := s.Open(ctx, "k", dataKey); err == nil {
		rc.Close()
	}
	_, _ = s.Open(ctx, "nope", dataKey)
	_ = s.Delete(ctx, "k")
	_ = s.Check(ctx)
	_, _ = newStore(t, testenv.UnreachableS3(t), evidence.WithObserve(func(op, result string, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, op+":"+result)
	})).Put(ctx, "k", bytes.NewReader([]byte("x")), dataKey)

	want := []string{"put:ok", "put:too_large", "open:ok", "open:not_found", "delete:ok", "check:ok", "put:unavailable"}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("observed %v, want %v", got, want)
	}
}

func TestPutRefusesBadInput(t *testing.T) {
	t.Parallel()
	s := newStore(t, testenv.UnreachableS3(t))
	if _, err := s.Put(context.Background(), "k", bytes.NewReader(nil), make([]byte, 16)); err == nil || evidence.IsUnavailable(err) {
		t.Errorf("16-byte data key: err = %v", err)
	}
	if _, err := s.Put(context.Background(), "", bytes.NewReader(nil), make([]byte, 32)); err == nil || evidence.IsUnavailable(err) {
		t.Errorf("empty key: err = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := evidence.Config{Endpoint: "s3.local:9000", AccessKey: "a", SecretKey: "s3cr3t", Bucket: "evidence"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*evidence.Config)
		want string
	}{
		{"no endpoint", func(c *evidence.Config) { c.Endpoint = "" }, "endpoint is empty"},
		{"scheme", func(c *evidence.Config) { c.Endpoint = "http://s3.local" }, "has a scheme"},
		{"path", func(c *evidence.Config) { c.Endpoint = "s3.local/x" }, "has a path"},
		{"no access key", func(c *evidence.Config) { c.AccessKey = "" }, "access key is empty"},
		{"no secret", func(c *evidence.Config) { c.SecretKey = "" }, "secret key is empty"},
		{"bad bucket", func(c *evidence.Config) { c.Bucket = "Evidence_Bucket" }, `bucket "Evidence_Bucket"`},
		{"no bucket", func(c *evidence.Config) { c.Bucket = "" }, `bucket ""`},
		{"max size", func(c *evidence.Config) { c.MaxSize = evidence.MaxObjectSize + 1 }, "max size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if _, err := evidence.New(c); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
	if s := good.String(); strings.Contains(s, "s3cr3t") {
		t.Errorf("String() shows the secret: %s", s)
	}
}

func TestRetain(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	env.Bucket += "-locked"
	s := newStore(t, env)
	ctx := ctxT(t)
	if err := s.EnsureBucket(ctx, evidence.BucketOptions{ObjectLock: true}); err != nil {
		if errors.Is(err, evidence.ErrObjectLockUnsupported) {
			t.Skipf("server has no object lock: %v", err)
		}
		t.Fatal(err)
	}
	c := env.Client(t)
	t.Cleanup(func() {
		for o := range c.ListObjects(context.Background(), env.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			_ = c.RemoveObject(context.Background(), env.Bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID, GovernanceBypass: true})
		}
		_ = c.RemoveBucket(context.Background(), env.Bucket)
	})
	obj, err := s.Put(ctx, "k", bytes.NewReader([]byte("evidence")), randomBytes(t, 32))
	if err != nil {
		t.Fatal(err)
	}
	// Governance mode, so that the cleanup can lift it.
	if err := s.Retain(ctx, "k", obj.VersionID, evidence.Governance, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Retain: %v", err)
	}
	err = s.Delete(ctx, "k")
	if err == nil {
		t.Fatal("Delete removed a version under retention")
	}
	t.Logf("Delete under retention: %v", err)
	if _, err := c.StatObject(ctx, env.Bucket, "k", minio.StatObjectOptions{VersionID: obj.VersionID}); err != nil {
		t.Errorf("retained version gone: %v", err)
	}
	if err := s.Retain(ctx, "k", obj.VersionID, "FOREVER", time.Now()); err == nil {
		t.Error("Retain accepted an unknown mode")
	}
	// Destroy bypasses governance retention and leaves no version.
	if err := s.Destroy(ctx, "k"); err != nil {
		t.Fatalf("Destroy under governance retention: %v", err)
	}
	for o := range c.ListObjects(ctx, env.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		t.Errorf("left after Destroy: %s version %s (err %v)", o.Key, o.VersionID, o.Err)
	}
}
