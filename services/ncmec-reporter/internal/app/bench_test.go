package app_test

import (
	"bufio"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"takedown/pkg/events"
	"takedown/services/ncmec-reporter/internal/app"
)

// fileReports files n reports of 3 small files with the given worker
// concurrency and 50 ms of simulated latency per NCMEC call, and returns
// reports per second from the start of the service to the last finish.
func fileReports(b *testing.B, n, concurrency int) float64 {
	h := newHarness(b, harnessOpts{latency: 50 * time.Millisecond, tune: func(c *app.Config) {
		c.Worker.Concurrency = concurrency
		c.Worker.UploadParallel = 3 // the default
		c.Worker.Poll = time.Second // the default; notifications wake the workers
	}})
	for range n {
		h.submit(false, testFile{"a.jpg", random(4 << 10)}, testFile{"b.jpg", random(4 << 10)}, testFile{"c.jpg", random(4 << 10)})
	}
	start := time.Now()
	h.start(app.Options{})
	testEventuallyWithin(b, 10*time.Minute, func() bool {
		var done int
		_ = h.query(`SELECT count(*) FROM ncmec.filings WHERE state = 'finished'`).Scan(&done)
		return done == n
	})
	elapsed := time.Since(start)
	if st := h.sim.State(); len(st.Reports) != n {
		b.Fatalf("%d NCMEC reports, want %d", len(st.Reports), n)
	}
	return float64(n) / elapsed.Seconds()
}

// BenchmarkThroughput: 100 reports × 3 files, 50 ms per NCMEC call, filed
// one at a time and with the default concurrency (goal: ≥ 8× faster).
func BenchmarkThroughput(b *testing.B) {
	const reports = 100
	for range b.N {
		one := fileReports(b, reports, 1)
		many := fileReports(b, reports, 16)
		b.ReportMetric(one, "reports/s-c1")
		b.ReportMetric(many, "reports/s-c16")
		b.ReportMetric(many/one, "speedup")
	}
}

// vmRSS reads the resident set size of this process in bytes.
func vmRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkUploadRSS files one 1 GiB file to the simulator and reports the
// peak growth of the process's RSS over idle while it streams (goal: flat,
// ≤ 64 MiB). The simulator runs in this process too, hashing as it reads.
func BenchmarkUploadRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc")
	}
	size := int64(1 << 30)
	if s := os.Getenv("RSS_BENCH_MIB"); s != "" {
		n, _ := strconv.Atoi(s)
		size = int64(n) << 20
	}
	for range b.N {
		h := newHarness(b, harnessOpts{})
		id := events.NewID()
		src := io.LimitReader(rand.NewChaCha8([32]byte{1}), size)
		pfs := h.submitReader(id, "big.mp4", src)
		if pfs[0].Size != size {
			b.Fatalf("stored %d bytes", pfs[0].Size)
		}
		h.start(app.Options{})
		runtime.GC()
		debug.FreeOSMemory()
		time.Sleep(200 * time.Millisecond) // let the service settle before measuring idle
		idle := vmRSS()
		var peak atomic.Int64
		stop := make(chan struct{})
		go func() {
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if r := vmRSS(); r > peak.Load() {
						peak.Store(r)
					}
				}
			}
		}()
		start := time.Now()
		h.publishSubmitted(id, false, pfs, h.lastKey)
		evs := h.waitEnd(id, 10*time.Minute)
		close(stop)
		if last := evs[len(evs)-1]; last.Type != events.NcmecFinished {
			b.Fatalf("ended with %s %v", last.Type, last.GetNcmecFailed())
		}
		if f := h.sim.State().Reports[0].Files[0]; f.Size != size || f.MD5 != pfs[0].Md5 {
			b.Fatalf("NCMEC got %d bytes, md5 %s", f.Size, f.MD5)
		}
		growth := float64(peak.Load()-idle) / (1 << 20)
		b.ReportMetric(growth, "MiB-rss-peak-growth")
		b.ReportMetric(float64(size)/(1<<20)/time.Since(start).Seconds(), "MiB/s")
	}
}

func testEventuallyWithin(tb testing.TB, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
