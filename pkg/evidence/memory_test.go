package evidence_test

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"takedown/pkg/evidence"
	"takedown/pkg/testenv"
)

// patternBlock is 1 MiB (and a few bytes, so that the stream's repeats do
// not line up with parts or DARE packages) of deterministic noise.
var patternBlock = func() []byte {
	b := make([]byte, 1<<20+13)
	r := rand.NewChaCha8([32]byte{'t', 'a', 'k', 'e', 'd', 'o', 'w', 'n'})
	_, _ = r.Read(b)
	return b
}()

// patternReader yields n bytes cycling through patternBlock: a large stream
// at memcpy speed without a buffer of its size.
type patternReader struct {
	left int64
	off  int
}

func newPatternReader(n int64) *patternReader { return &patternReader{left: n} }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := 0
	for n < len(b) {
		c := copy(b[n:], patternBlock[p.off:])
		n += c
		p.off = (p.off + c) % len(patternBlock)
	}
	p.left -= int64(n)
	return n, nil
}

// memSampler records the peak of live heap and of RSS while it runs.
type memSampler struct {
	stop     chan struct{}
	done     sync.WaitGroup
	baseHeap uint64
	peakHeap uint64
	baseRSS  int64
}

var heapMetric = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func heapBytes() uint64 {
	s := append([]metrics.Sample(nil), heapMetric...)
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// procStatusKB reads a "VmXxx:  N kB" field of /proc/self/status; -1 where
// there is none (not Linux).
func procStatusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

func startMemSampler() *memSampler {
	runtime.GC()
	// Writing 5 to clear_refs resets VmHWM (peak RSS) to the current RSS.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	m := &memSampler{stop: make(chan struct{}), baseHeap: heapBytes(), baseRSS: procStatusKB("VmRSS")}
	m.peakHeap = m.baseHeap
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.peakHeap = max(m.peakHeap, heapBytes())
			}
		}
	}()
	return m
}

// finish returns the growth of the live heap and of RSS over the baseline,
// in MiB (RSS -1 where unknown).
func (m *memSampler) finish() (heapMiB, rssMiB float64) {
	close(m.stop)
	m.done.Wait()
	heapMiB = float64(m.peakHeap-m.baseHeap) / (1 << 20)
	rssMiB = -1
	if hwm := procStatusKB("VmHWM"); hwm >= 0 && m.baseRSS >= 0 {
		rssMiB = float64(hwm-m.baseRSS) / 1024
	}
	return heapMiB, rssMiB
}

// TestPutMemoryBounded streams 256 MiB through Put and checks that memory
// grows by about one part, not by the file.
func TestPutMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MiB")
	}
	// Not parallel: the other tests' buffers would count against this one.
	env := testenv.S3(t)
	s := newStore(t, env)
	const size = 256 << 20
	m := startMemSampler()
	obj, err := s.Put(ctxT(t), "big", newPatternReader(size), randomBytes(t, 32))
	heap, rss := m.finish()
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != size {
		t.Fatalf("stored %d bytes, want %d", obj.Size, size)
	}
	t.Logf("Put of %d MiB: peak live heap +%.1f MiB, peak RSS +%.1f MiB", size>>20, heap, rss)
	if heap > 48 {
		t.Errorf("peak live heap grew by %.1f MiB during Put, want < 48 (one %d MiB part and change)", heap, evidence.PartSize>>20)
	}
	if rss > 64 {
		t.Errorf("peak RSS grew by %.1f MiB during Put, want < 64", rss)
	}
	if err := s.Delete(ctxT(t), "big"); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPut1GiB compares Put (hash + encrypt + upload) with a bare
// minio-go PutObject of the same 1 GiB stream, same part size, same server.
// Each iteration runs both, one after the other, so that load from other
// processes hits both alike; it reports both throughputs, their ratio and
// the peak memory growth of each. Run with:
//
//	go test ./evidence/ -run '^$' -bench Put1GiB -benchtime 3x
func BenchmarkPut1GiB(b *testing.B) {
	const size = 1 << 30
	env := testenv.S3(b)
	s := newStore(b, env)
	dataKey := randomBytes(b, 32)
	client := env.Client(b)
	ctx := context.Background()

	type stats struct {
		d         time.Duration
		heap, rss float64
	}
	measure := func(st *stats, put func() error) {
		m := startMemSampler()
		start := time.Now()
		err := put()
		st.d += time.Since(start)
		h, r := m.finish()
		st.heap, st.rss = max(st.heap, h), max(st.rss, r)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Delete(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	var ev, direct stats
	b.SetBytes(size)
	for b.Loop() {
		measure(&ev, func() error {
			_, err := s.Put(ctx, "bench", newPatternReader(size), dataKey)
			return err
		})
		measure(&direct, func() error {
			_, err := client.PutObject(ctx, env.Bucket, "bench", newPatternReader(size), -1,
				minio.PutObjectOptions{PartSize: evidence.PartSize, NumThreads: 1})
			return err
		})
	}
	mbps := func(st stats) float64 { return float64(b.N) * size / st.d.Seconds() / 1e6 }
	b.ReportMetric(mbps(ev), "put-MB/s")
	b.ReportMetric(mbps(direct), "minio-MB/s")
	b.ReportMetric(mbps(ev)/mbps(direct), "ratio")
	b.ReportMetric(ev.heap, "put-peak-heap-MiB")
	b.ReportMetric(ev.rss, "put-peak-rss-MiB")
	b.ReportMetric(direct.heap, "minio-peak-heap-MiB")
}
