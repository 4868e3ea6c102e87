package e2e

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/testenv"
)

// BenchmarkPipeline files reports of 3 small files through the whole stack
// and reports finished reports per second and submit→finished latency:
// with the NCMEC simulator answering at once, and after 100 ms per call with
// the reporter's FILING_CONCURRENCY at 4, 8 and 16, so that its throughput
// can be compared with the concurrency it was given (a serial step would
// show as throughput that does not grow with it).
// Three last cases submit at a steady rate, to show the latency of a
// pipeline that keeps up rather than of a queue that grows: 10 and 20
// reports/s (2-core machines here have finished 15 to 26 reports/s), and
// 80 % of what the first case finished in the same run, the issue's
// measure of latency while it keeps up (it needs the first case to run:
// it is skipped when a -bench pattern leaves that out). Each case also
// reports the machine's CPU time per report and logs each process's share.
// TAKEDOWN_BENCH_REPORTS sets how many reports each case files (default
// 1000, as the issue asks).
func BenchmarkPipeline(b *testing.B) {
	n := testenv.EnvInt(b, "TAKEDOWN_BENCH_REPORTS", 1000)
	cases := []struct {
		latency     time.Duration
		concurrency int
		rate        float64 // reports submitted per second; 0: as fast as intake takes them
		share       float64 // or this share of the first case's finished reports/s
	}{
		{0, 16, 0, 0},
		{100 * time.Millisecond, 4, 0, 0}, {100 * time.Millisecond, 8, 0, 0}, {100 * time.Millisecond, 16, 0, 0},
		{0, 16, 10, 0}, {0, 16, 20, 0}, {0, 16, 0, 0.8},
	}
	var saturated float64 // the first case's finished reports/s
	for i, c := range cases {
		name := fmt.Sprintf("ncmec=%v/concurrency=%d", c.latency, c.concurrency)
		switch {
		case c.rate > 0:
			name += fmt.Sprintf("/rate=%g", c.rate)
		case c.share > 0:
			name += fmt.Sprintf("/rate=%g%%", c.share*100)
		}
		b.Run(name, func(b *testing.B) {
			rate := c.rate
			if c.share > 0 {
				if saturated == 0 {
					b.Skip("needs the rate of the first case (ncmec=0s/concurrency=16) of the same run")
				}
				rate = c.share * saturated
				b.Logf("submitting at %.2f reports/s: %g %% of the %.2f the first case finished", rate, c.share*100, saturated)
			}
			s := stack.Start(b, stack.Options{
				NCMECLatency: c.latency,
				ServiceEnv:   map[string][]string{"ncmec-reporter": {"FILING_CONCURRENCY=" + strconv.Itoa(c.concurrency)}},
			})
			for b.Loop() {
				if r := benchLoad(b, s, n, rate); i == 0 {
					saturated = r
				}
			}
		})
	}
}

// benchLoad submits n reports (at rate per second when rate > 0) and waits
// until NCMEC holds every one finished, then reports throughput and
// submit→finished latency. At the end every report must read "finished" in
// intake too. It returns the finished reports per second.
func benchLoad(b *testing.B, s *stack.Stack, n int, rate float64) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cpu0, measureCPU := readCPU()
	db0, dbErr := readDBWork(ctx, s.DBURL)
	start := time.Now()
	subs := submitReports(b, s, ctx, "b", n, rate)
	submitDone := time.Since(start)

	var finished map[string]time.Time
	for {
		if finished = finishedAtNCMEC(s, "b"); len(finished) >= n {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("%d of %d reports finished at NCMEC", len(finished), n)
		}
		time.Sleep(time.Second) // the simulator's clock times each finish, not this loop
	}
	if cpu1, ok := readCPU(); measureCPU && ok {
		reportCPU(b, cpu0, cpu1, n)
	}
	var last time.Time
	lat := make([]time.Duration, 0, n)
	for key, t := range finished {
		lat = append(lat, t.Sub(subs[key].began))
		if t.After(last) {
			last = t
		}
	}
	slices.Sort(lat)
	for _, sub := range subs {
		for {
			r, err := s.Report(ctx, sub.id)
			if err == nil && r.Status == "finished" {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("report %s finished at NCMEC but intake says %q (%v)", sub.id, r.Status, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if db1, err := readDBWork(ctx, s.DBURL); err == nil && dbErr == nil {
		reportDBWork(b, db0, db1, n)
	} else {
		b.Logf("database work not counted: %v", errors.Join(dbErr, err))
	}
	finishedRate := float64(n) / last.Sub(start).Seconds()
	b.ReportMetric(finishedRate, "reports/s")
	b.ReportMetric(float64(n)/submitDone.Seconds(), "submitted/s")
	b.ReportMetric(lat[len(lat)/2].Seconds(), "p50-s")
	b.ReportMetric(lat[len(lat)*99/100].Seconds(), "p99-s")
	return finishedRate
}

// submission is one report a benchmark submitted.
type submission struct {
	id    string    // intake's
	began time.Time // when its submission started
}

// submitReports submits n reports of 3 small files, keyed prefix0 to
// prefix<n-1>, from four concurrent clients (enough to keep intake busy on
// two cores), at rate per second when rate > 0. A refused submission fails
// the benchmark.
func submitReports(b *testing.B, s *stack.Stack, ctx context.Context, prefix string, n int, rate float64) map[string]submission {
	var (
		mu   sync.Mutex
		subs = map[string]submission{}
		wg   sync.WaitGroup
		jobs = make(chan int)
	)
	for range 4 {
		wg.Go(func() {
			for i := range jobs {
				key := fmt.Sprintf("%s%d", prefix, i)
				began := time.Now()
				rep, err := s.Submit(ctx, stack.NewReport(key), stack.SmallFiles(3, uint64(i)))
				if err != nil {
					b.Error(err)
					continue
				}
				mu.Lock()
				subs[key] = submission{id: rep.ID, began: began}
				mu.Unlock()
			}
		})
	}
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		tick = t.C
	}
	for i := range n {
		if tick != nil {
			<-tick
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return subs
}

// finishedAtNCMEC returns when NCMEC received the /finish of each report it
// holds finished whose marker key starts with prefix: the simulator's own
// record, so watching costs the services nothing and times are exact.
func finishedAtNCMEC(s *stack.Stack, prefix string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, r := range s.NCMEC.State().Reports {
		m := markerKey.FindStringSubmatch(r.XML)
		if m != nil && r.Status == ncmecsim.StatusFinished && strings.HasPrefix(m[1], prefix) {
			out[m[1]] = r.LastModified
		}
	}
	return out
}

// markerKey finds the key of stack.Marker in a report's XML.
var markerKey = regexp.MustCompile(`e2e-key:([^;]*);`)
