package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/testenv"
)

// BenchmarkScaleOut measures the filing throughput of one replica of
// ncmec-reporter and case-writer against two (issue 9: two reach ≥ 1.8×
// one) at 100 ms per NCMEC call. Both are measured in one stack, in
// alternating rounds 1, 2, 1, 2, so that a neighbour's load or the
// database's growth weighs on both alike; each figure is the mean of its
// rounds and "ratio" is two replicas' over one's.
//
// A round stops every reporter, submits its reports (3 small files each),
// then starts the round's reporter replicas on that backlog: the rate is
// the reports NCMEC saw finished after the last replica was ready, over
// the time from then to the last finish. So the figure is the reporters'
// alone, not intake's or the submitters'.
//
// Each replica runs FILING_CONCURRENCY=2 workers (default 16). A filing is
// about 8 NCMEC calls of 100 ms, four rounds of them one after the other
// (submit, 3 uploads at once, 3 fileinfos at once, finish), so one replica's
// throughput is bounded by its workers at about 2 / 0.45 s: 4.5 reports/s,
// two replicas' at 9. That leaves this machine's two cores, which run the
// whole stack, mostly idle while the reporters file, so the ratio measures
// the replicas. With more workers it measures the machine: at 4 each, one
// replica files 8.7 reports/s and two 14.6, where the whole stack saturates
// two cores (ratio 1.68).
//
// TAKEDOWN_SCALEOUT_REPORTS sets the reports per round (default 150) and
// TAKEDOWN_SCALEOUT_CONCURRENCY the workers per replica (default 2).
func BenchmarkScaleOut(b *testing.B) {
	n := testenv.EnvInt(b, "TAKEDOWN_SCALEOUT_REPORTS", 150)
	workers := testenv.EnvInt(b, "TAKEDOWN_SCALEOUT_CONCURRENCY", 2)
	s := stack.Start(b, stack.Options{
		NCMECLatency: 100 * time.Millisecond,
		Replicas:     map[string]int{reporter: 2, caseWriter: 2},
		ServiceEnv:   map[string][]string{reporter: {fmt.Sprintf("FILING_CONCURRENCY=%d", workers)}},
	})
	rates := map[int][]float64{}
	round := 0
	for b.Loop() {
		for _, replicas := range []int{1, 2, 1, 2} {
			round++
			t0 := time.Now()
			r := scaleOutRound(b, s, fmt.Sprintf("s%d-", round), n, replicas)
			b.Logf("round %d: %d replica(s): %.2f reports/s (round took %v)", round, replicas, r, time.Since(t0).Round(100*time.Millisecond))
			rates[replicas] = append(rates[replicas], r)
		}
	}
	one, two := mean(rates[1]), mean(rates[2])
	b.ReportMetric(one, "1-replica-reports/s")
	b.ReportMetric(two, "2-replicas-reports/s")
	b.ReportMetric(two/one, "ratio")
	b.Logf("%d reports per round, %d workers per replica: 1 replica %.2f reports/s %v, 2 replicas %.2f reports/s %v, ratio %.2f",
		n, workers, one, rates[1], two, rates[2], two/one)
	if two/one < 1.8 {
		b.Logf("ratio %.2f is below issue 9's 1.8; on a busy machine, run it again", two/one)
	}
}

// scaleOutRound files n reports with the given number of reporter and
// case-writer replicas and returns the reports finished per second.
func scaleOutRound(b *testing.B, s *stack.Stack, prefix string, n, replicas int) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	reporters, writers := s.Instances(reporter), s.Instances(caseWriter)
	for _, inst := range reporters {
		s.StopService(inst)
	}
	for k, inst := range writers {
		if k < replicas {
			s.StartService(inst) // a no-op when it runs
		} else {
			s.StopService(inst)
		}
	}
	subs := submitReports(b, s, ctx, prefix, n, 0)

	for _, inst := range reporters[:replicas] {
		s.StartService(inst)
	}
	ready := time.Now()
	var finished map[string]time.Time
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if finished = finishedAtNCMEC(s, prefix); len(finished) >= n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d reports finished", len(finished), n)
		}
	}
	var last time.Time
	after := 0
	for _, t := range finished {
		if t.After(ready) {
			after++
		}
		if t.After(last) {
			last = t
		}
	}
	// Every case written too, before the next round measures.
	for _, sub := range subs {
		testenv.Eventually(b, 2*time.Minute, "report "+sub.id+" settled", func() bool {
			r, err := s.Report(ctx, sub.id)
			return err == nil && stack.Settled(r)
		})
	}
	return float64(after) / last.Sub(ready).Seconds()
}

func mean(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}
