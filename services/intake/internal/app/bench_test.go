package app_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"takedown/pkg/evidence"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/app"
	"takedown/services/intake/internal/reports"
)

// pattern is a stream of n pseudo-random bytes that repeats one 1 MiB block,
// so a 1 GiB upload needs no 1 GiB buffer and costs next to nothing to make.
type pattern struct {
	block []byte
	n, i  int64
}

func newPattern(n int64) *pattern {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return &pattern{block: b, n: n}
}

func (p *pattern) Read(out []byte) (int, error) {
	if p.i >= p.n {
		return 0, io.EOF
	}
	k := copy(out[:min(int64(len(out)), p.n-p.i)], p.block[p.i%int64(len(p.block)):])
	p.i += int64(k)
	return k, nil
}

// rss samples the process's resident set size until stopped and returns the
// peak. Intake runs in this process, so its growth is the growth measured.
func rss() (stop func() int64) {
	var mu sync.Mutex
	peak := readRSS()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := readRSS(); v > 0 {
					mu.Lock()
					peak = max(peak, v)
					mu.Unlock()
				}
			}
		}
	}()
	return func() int64 {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

func readRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkUpload1GiB uploads the same 1 GiB twice through intake
// (multipart over HTTP, hashing, encryption, S3) and twice directly with
// minio-go PutObject to the same S3 server, in the same run, and reports the
// throughput ratio (direct time / intake time; 1 means no cost) and intake's
// peak RSS growth while uploading.
func BenchmarkUpload1GiB(b *testing.B) {
	const size = 1 << 30
	s3 := testenv.S3(b)
	h := start(b, s3, func(c *app.Config) {
		c.Limits = reports.Limits{MaxFileSize: 2 << 30, MaxFiles: 1, MaxTotalSize: 2 << 30}
	})
	direct := s3.Client(b)
	var intakeDur, directDur time.Duration
	viaIntake := func() time.Duration {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			p, _ := mw.CreateFormField("report")
			p.Write([]byte(goodReport))
			f, _ := mw.CreateFormFile("file", "video.bin")
			if _, err := io.Copy(f, newPattern(size)); err != nil {
				pw.CloseWithError(err)
				return
			}
			pw.CloseWithError(mw.Close())
		}()
		req, _ := http.NewRequest(http.MethodPost, h.url+"/api/v1/reports", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("intake answered %d", resp.StatusCode)
		}
		return time.Since(start)
	}
	n := 0
	directly := func() time.Duration {
		// The same streaming shape intake uses: unknown size, 16 MiB parts.
		n++
		start := time.Now()
		if _, err := direct.PutObject(context.Background(), s3.Bucket, fmt.Sprintf("direct-%d", n), newPattern(size), -1,
			minio.PutObjectOptions{PartSize: evidence.PartSize, NumThreads: 1}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// Each round uploads in ABBA order (intake, direct, direct, intake), so
	// a drift of the machine, such as the page cache writing back earlier
	// uploads, weighs on both alike. The first intake upload's RSS growth is
	// measured from idle.
	base := readRSS()
	stop := rss()
	intakeDur += viaIntake()
	peakGrowth := stop() - base
	directDur += directly()
	directDur += directly()
	intakeDur += viaIntake()
	for i := 1; i < b.N; i++ {
		intakeDur += viaIntake()
		directDur += directly()
		directDur += directly()
		intakeDur += viaIntake()
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(2*b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(intakeDur), "intake_MB/s")
	b.ReportMetric(mbps(directDur), "direct_MB/s")
	b.ReportMetric(directDur.Seconds()/intakeDur.Seconds(), "ratio")
	b.ReportMetric(float64(peakGrowth)/(1<<20), "peak_rss_growth_MiB")
}

// BenchmarkConcurrentUploads sends TAKEDOWN_BENCH_UPLOADS (50) submissions
// of one TAKEDOWN_BENCH_UPLOAD_SIZE (256 MiB) file at once, each client
// honouring 503 busy's Retry-After, and reports intake's peak RSS growth
// over idle while they run, the throughput of the lot, and its ratio to
// one upload alone of the same size in the same run (1: as fast per byte).
func BenchmarkConcurrentUploads(b *testing.B) {
	size := int64(testenv.EnvInt(b, "TAKEDOWN_BENCH_UPLOAD_SIZE", 256<<20))
	n := testenv.EnvInt(b, "TAKEDOWN_BENCH_UPLOADS", 50)
	h := start(b, testenv.S3(b), func(c *app.Config) {
		c.Limits = reports.Limits{MaxFileSize: 2 * size, MaxFiles: 1, MaxTotalSize: 2 * size}
	})
	block := newPattern(1 << 20).block
	// Each client asks before sending its body (Expect: 100-continue) and
	// waits for the answer longer than intake may keep it waiting for
	// memory: a 503 then costs no body. A client that sends its body
	// anyway can see the connection reset instead of the 503.
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute, MaxIdleConnsPerHost: n}}
	var busy atomic.Int64
	upload := func() {
		for {
			pr, pw := io.Pipe()
			mw := multipart.NewWriter(pw)
			go func() {
				// After a 503 the pipe is closed unread: every step fails.
				p, err := mw.CreateFormField("report")
				if err != nil {
					return
				}
				p.Write([]byte(goodReport))
				f, err := mw.CreateFormFile("file", "video.bin")
				if err != nil {
					return
				}
				if _, err := io.Copy(f, &pattern{block: block, n: size}); err != nil {
					pw.CloseWithError(err)
					return
				}
				pw.CloseWithError(mw.Close())
			}()
			req, _ := http.NewRequest(http.MethodPost, h.url+"/api/v1/reports", pr)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Expect", "100-continue")
			resp, err := client.Do(req)
			pr.CloseWithError(io.ErrClosedPipe)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusCreated:
				return
			case http.StatusServiceUnavailable:
				busy.Add(1)
				secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				time.Sleep(time.Duration(max(1, secs)) * time.Second)
			default:
				b.Errorf("intake answered %d", resp.StatusCode)
				return
			}
		}
	}
	for range b.N {
		begin := time.Now()
		upload()
		alone := time.Since(begin)

		runtime.GC()
		debug.FreeOSMemory()
		base := readRSS()
		stop := rss()
		begin = time.Now()
		var wg sync.WaitGroup
		for range n {
			wg.Go(upload)
		}
		wg.Wait()
		all := time.Since(begin)
		growth := stop() - base

		perByteAlone := float64(size) / alone.Seconds()
		perByteAll := float64(size) * float64(n) / all.Seconds()
		b.ReportMetric(perByteAlone/1e6, "alone_MB/s")
		b.ReportMetric(perByteAll/1e6, "concurrent_MB/s")
		b.ReportMetric(perByteAll/perByteAlone, "ratio")
		b.ReportMetric(float64(growth)/(1<<20), "peak_rss_growth_MiB")
		b.ReportMetric(float64(busy.Load()), "busy_503s")
	}
	if got, want := h.count("reports"), b.N*(n+1); got != want {
		b.Errorf("%d reports stored, want %d", got, want)
	}
}
