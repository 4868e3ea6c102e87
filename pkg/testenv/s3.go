package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Region is the region the test S3 server answers for.
const S3Region = "us-east-1"

// S3Env is one test's S3 bucket on a real S3 server (versitygw over HTTP).
type S3Env struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	Region    string
	Bucket    string
	// DataDir is the directory the gateway serves: the bucket's objects are
	// files under DataDir/Bucket.
	DataDir string
}

// Client returns a minio-go client for the environment's server, for tests
// that look at or tamper with what is stored. It does not retry, so that a
// stopped server fails a call at once.
func (e S3Env) Client(tb testing.TB) *minio.Client {
	tb.Helper()
	c, err := newS3Client(e.Endpoint, e.AccessKey, e.SecretKey, 1)
	if err != nil {
		tb.Fatalf("testenv: s3 client: %v", err)
	}
	return c
}

// S3 gives the test its own empty bucket on the test binary's shared S3
// server, started on first use, and removes the bucket (every object
// version and unfinished upload in it) when the test ends. Tests using it
// may run in parallel.
//
// The server is versitygw with its posix backend; the binary is found
// through $VERSITYGW, <repo>/bin/versitygw (make tools) or $PATH. It runs
// until the test binary ends: it is killed with it (Linux), and Main stops it
// and removes its directory.
func S3(tb testing.TB) S3Env {
	tb.Helper()
	bin := versitygwPath(tb)
	sharedS3.once.Do(func() {
		sharedS3.srv, sharedS3.err = startS3Server(bin)
		if sharedS3.err == nil {
			atExit(sharedS3.srv.close)
		}
	})
	if sharedS3.err != nil {
		tb.Fatalf("testenv: start shared S3 server: %v", sharedS3.err)
	}
	return sharedS3.srv.Bucket(tb)
}

var sharedS3 struct {
	once sync.Once
	srv  *S3Server
	err  error
}

// UnreachableS3 returns an environment whose endpoint refuses connections
// (a loopback port nobody listens on), for tests of "S3 is down".
func UnreachableS3(tb testing.TB) S3Env {
	tb.Helper()
	addr, err := freeLoopbackAddr()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return S3Env{
		Endpoint:  addr,
		AccessKey: "unreachable",
		SecretKey: "unreachable-secret",
		Region:    S3Region,
		Bucket:    "unreachable",
		DataDir:   tb.TempDir(),
	}
}

// S3Server is a versitygw process of the test's own, for tests that stop and
// restart S3. Stopping the shared server would break the tests running
// beside them.
type S3Server struct {
	bin       string
	root      string // holds data/, versions/ and perhaps sidecar/
	dataDir   string
	args      []string
	addr      string
	accessKey string
	secretKey string

	mu      sync.Mutex
	running *childProcess
}

// StartS3Server starts a private S3 server for the test, stopped and removed
// when the test ends.
func StartS3Server(tb testing.TB) *S3Server {
	tb.Helper()
	s, err := startS3Server(versitygwPath(tb))
	if err != nil {
		tb.Fatalf("testenv: start S3 server: %v", err)
	}
	tb.Cleanup(s.close)
	return s
}

// Endpoint is the server's host:port; it stays the same across restarts.
func (s *S3Server) Endpoint() string { return s.addr }

// Bucket creates a bucket for the test on this server and removes it when
// the test ends.
func (s *S3Server) Bucket(tb testing.TB) S3Env {
	tb.Helper()
	env := S3Env{
		Endpoint:  s.addr,
		AccessKey: s.accessKey,
		SecretKey: s.secretKey,
		Region:    S3Region,
		Bucket:    bucketName(tb.Name()),
		DataDir:   s.dataDir,
	}
	c, err := newS3Client(env.Endpoint, env.AccessKey, env.SecretKey, 0)
	if err != nil {
		tb.Fatalf("testenv: s3 client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, env.Bucket, minio.MakeBucketOptions{Region: S3Region}); err != nil {
		tb.Fatalf("testenv: create bucket %s: %v", env.Bucket, err)
	}
	tb.Cleanup(func() { s.removeBucket(tb, env.Bucket) })
	return env
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s). Its data stays
// for Start.
func (s *S3Server) Stop(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	p := s.running
	s.running = nil
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Start starts a stopped server again on the same port and data.
func (s *S3Server) Start(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("testenv: restart S3 server: %v", err)
	}
}

func startS3Server(bin string) (*S3Server, error) {
	sweepStaleS3Dirs()
	root, err := os.MkdirTemp("", fmt.Sprintf("takedown-vgw-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s := &S3Server{
		bin:       bin,
		root:      root,
		dataDir:   filepath.Join(root, "data"),
		accessKey: "test" + s3RandomHex(8),
		secretKey: s3RandomHex(20),
	}
	versions := filepath.Join(root, "versions")
	for _, d := range []string{s.dataDir, versions} {
		if err := os.Mkdir(d, 0o700); err != nil {
			os.RemoveAll(root)
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	// The posix backend keeps object metadata (ETag, content type, version
	// ids) in user xattrs; where the temporary filesystem has none (tmpfs on
	// some kernels, macOS quirks) it keeps them in a sidecar directory.
	backend := []string{"posix", "--versioning-dir", versions}
	if !userXattrsWork(s.dataDir) {
		sidecar := filepath.Join(root, "sidecar")
		if err := os.Mkdir(sidecar, 0o700); err != nil {
			os.RemoveAll(root)
			return nil, fmt.Errorf("create %s: %w", sidecar, err)
		}
		backend = append(backend, "--sidecar", sidecar)
	}
	s.addr, err = freeLoopbackAddr()
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	// Credentials are passed in the environment, not argv, so they do not
	// show in ps.
	s.args = append([]string{"--port", s.addr, "--region", S3Region, "--quiet"}, append(backend, s.dataDir)...)
	if err := s.start(); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	return s, nil
}

func (s *S3Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		return nil
	}
	p, err := startChild(s.bin, s.args, []string{
		"ROOT_ACCESS_KEY_ID=" + s.accessKey,
		"ROOT_SECRET_ACCESS_KEY=" + s.secretKey,
	})
	if err != nil {
		return err
	}
	if err := waitS3Ready(s.addr, p, 15*time.Second); err != nil {
		p.stop()
		return err
	}
	s.running = p
	return nil
}

func (s *S3Server) close() {
	s.mu.Lock()
	p := s.running
	s.running = nil
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
	os.RemoveAll(s.root)
}

// removeBucket empties and removes a test's bucket. A test may have left the
// server stopped or objects under governance retention, so a failure of the
// S3 calls falls back to removing the bucket's directories.
func (s *S3Server) removeBucket(tb testing.TB, bucket string) {
	s.mu.Lock()
	up := s.running != nil
	s.mu.Unlock()
	if up {
		if err := emptyAndRemoveBucket(s.addr, s.accessKey, s.secretKey, bucket); err == nil {
			return
		} else {
			tb.Logf("testenv: remove bucket %s through S3: %v; removing its directory", bucket, err)
		}
	}
	os.RemoveAll(filepath.Join(s.dataDir, bucket))
	os.RemoveAll(filepath.Join(s.root, "versions", bucket))
	os.RemoveAll(filepath.Join(s.root, "sidecar", bucket))
}

func emptyAndRemoveBucket(addr, ak, sk, bucket string) error {
	c, err := newS3Client(addr, ak, sk, 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for obj := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			return fmt.Errorf("list: %w", obj.Err)
		}
		opts := minio.RemoveObjectOptions{VersionID: obj.VersionID, GovernanceBypass: true}
		if err := c.RemoveObject(ctx, bucket, obj.Key, opts); err != nil {
			return fmt.Errorf("remove %s: %w", obj.Key, err)
		}
	}
	for up := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if up.Err != nil {
			return fmt.Errorf("list uploads: %w", up.Err)
		}
		if err := c.RemoveIncompleteUpload(ctx, bucket, up.Key); err != nil {
			return fmt.Errorf("abort upload of %s: %w", up.Key, err)
		}
	}
	return c.RemoveBucket(ctx, bucket)
}

// newS3Client makes a path-style client; maxRetries 0 keeps minio-go's
// default.
func newS3Client(addr, ak, sk string, maxRetries int) (*minio.Client, error) {
	return minio.New(addr, &minio.Options{
		Creds:        credentials.NewStaticV4(ak, sk, ""),
		Region:       S3Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   maxRetries,
	})
}

// childProcess is one running server binary of the harness (versitygw,
// hydra): killed with the test binary on Linux, its output's tail kept to
// explain a failed start.
type childProcess struct {
	cmd    *exec.Cmd
	out    *tailBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, set before exited closes
}

func startChild(bin string, args, env []string) (*childProcess, error) {
	p := &childProcess{out: &tailBuffer{max: 8 << 10}, exited: make(chan struct{})}
	started := make(chan error, 1)
	// The process is started and waited for on one goroutine that holds its
	// OS thread: on Linux the child's parent-death signal fires when the
	// thread that forked it exits, so the thread must live as long as the
	// child does.
	go func() {
		lockThreadForChild()
		defer unlockThreadForChild()
		p.cmd = exec.Command(bin, args...)
		p.cmd.Env = append(os.Environ(), env...)
		p.cmd.Stdout = p.out
		p.cmd.Stderr = p.out
		p.cmd.SysProcAttr = childProcAttr()
		if err := p.cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", bin, err)
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *childProcess) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitS3Ready polls until the server answers HTTP at all (an anonymous
// request gets 403), the process exits, or the deadline passes.
func waitS3Ready(addr string, p *childProcess, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("versitygw exited before serving (%v); output:\n%s", p.err, p.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw not answering on %s after %v (%v); output:\n%s", addr, timeout, err, p.out)
		}
	}
}

// versitygwPath finds the versitygw binary or fails the test saying how to
// install it.
func versitygwPath(tb testing.TB) string {
	tb.Helper()
	p, ok := toolPath(tb, "versitygw", "VERSITYGW")
	if !ok {
		tb.Fatalf("testenv: the S3 server versitygw is not installed: run `make tools` in the repository root (installs bin/versitygw), or set $VERSITYGW to its path")
	}
	return p
}

// toolPath finds a server binary the tests run: $<envVar> (which must
// exist), <repo>/bin/<name> (make tools), or $PATH. ok is false when none
// has it.
func toolPath(tb testing.TB, name, envVar string) (path string, ok bool) {
	tb.Helper()
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("testenv: $%s=%s: %v", envVar, p, err)
		}
		return p, true
	}
	p := filepath.Join(RepoRoot(tb), "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p, true
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	return "", false
}

// freeLoopbackAddr returns a loopback address nobody listens on at the
// moment. Another process could take it before the server binds; on a test
// machine that is rare enough.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

var bucketSeq atomic.Int64

// bucketName derives a valid, unique S3 bucket name from a test name so
// that a leftover bucket says which test made it.
func bucketName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	prefix := "t" + strconv.FormatInt(bucketSeq.Add(1), 10) + "-"
	name := strings.Trim(b.String(), "-")
	for strings.Contains(name, "--") {
		name = strings.ReplaceAll(name, "--", "-")
	}
	if len(prefix)+len(name) > 63 {
		name = name[:63-len(prefix)]
	}
	return strings.TrimRight(prefix+name, "-")
}

func s3RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return hex.EncodeToString(b)
}

// sweepStaleS3Dirs removes data directories left by test binaries that
// ended without Main (killed, or a package without TestMain).
func sweepStaleS3Dirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "takedown-vgw-*-*"))
	for _, d := range dirs {
		fields := strings.SplitN(filepath.Base(d), "-", 4)
		if len(fields) < 4 {
			continue
		}
		pid, err := strconv.Atoi(fields[2])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		os.RemoveAll(d)
	}
}

// tailBuffer keeps the last max bytes written: enough of the server's output
// to explain a failed start.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
