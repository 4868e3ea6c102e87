package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"takedown/e2e/stack"
)

// BenchmarkPipeline files reports of 3 small files through the whole stack
// and reports finished reports per second and submit→finished latency, with
// the NCMEC simulator answering at once and after 100 ms per call.
// TAKEDOWN_BENCH_REPORTS sets how many (the issue asks for 1000).
func BenchmarkPipeline(b *testing.B) {
	n := 1000
	if v := os.Getenv("TAKEDOWN_BENCH_REPORTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	for _, latency := range []time.Duration{0, 100 * time.Millisecond} {
		b.Run(fmt.Sprintf("ncmec=%v", latency), func(b *testing.B) {
			s := stack.Start(b, stack.Options{NCMECLatency: latency})
			for b.Loop() {
				benchLoad(b, s, n)
			}
		})
	}
}

func benchLoad(b *testing.B, s *stack.Stack, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var (
		mu        sync.Mutex
		submitted = map[string]time.Time{}
		wg        sync.WaitGroup
		jobs      = make(chan int)
	)
	start := time.Now()
	// Four submitters: enough to keep intake busy on two cores.
	for range 4 {
		wg.Go(func() {
			for i := range jobs {
				t0 := time.Now()
				rep, err := s.Submit(ctx, stack.NewReport(fmt.Sprintf("b%d", i)), stack.SmallFiles(3, uint64(i)))
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				submitted[rep.ID] = t0
				mu.Unlock()
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	submitDone := time.Since(start)

	// Finish times are polled from intake every 100 ms, so latencies are
	// accurate to about that.
	var lat []time.Duration
	pending := maps.Clone(submitted)
	for len(pending) > 0 {
		if ctx.Err() != nil {
			b.Fatalf("%d reports not finished", len(pending))
		}
		for id, t0 := range pending {
			r, err := s.Report(ctx, id)
			if err == nil && r.Status == "finished" {
				lat = append(lat, time.Since(t0))
				delete(pending, id)
			} else if err == nil && r.Status != "submitted" && r.Status != "ncmec_opened" && r.Status != "uploading" {
				b.Fatalf("report %s: %s", id, r.Status)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	total := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(n)/total.Seconds(), "reports/s")
	b.ReportMetric(float64(n)/submitDone.Seconds(), "submitted/s")
	b.ReportMetric(lat[len(lat)/2].Seconds(), "p50-s")
	b.ReportMetric(lat[len(lat)*99/100].Seconds(), "p99-s")
}
