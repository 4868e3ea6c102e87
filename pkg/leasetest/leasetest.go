// Package leasetest is the contract every lease-based job table keeps (the
// reporter's filings, case-writer's cases, the retraction service's
// retractions): a due job is claimed by one worker at a time for a lease,
// settled for good or retried later, and taken over by another worker when
// its worker crashes and the lease runs out. Each store runs Run from its
// own tests through a small adapter, in the spirit of Watermill's pub/sub
// test suite, so that the guarantees are written down once and a store that
// breaks one is caught where it is.
package leasetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Table is a store's job table as the suite drives it.
type Table interface {
	// Add makes a new job due now and returns its key.
	Add(ctx context.Context) (string, error)
	// Claim takes one due job for lease on behalf of worker; nil when none
	// is due.
	Claim(ctx context.Context, worker string, lease time.Duration) (Job, error)
}

// Job is a claimed job.
type Job interface {
	Key() string
	// Settle ends the job for good: it is never due again.
	Settle(ctx context.Context) error
	// Retry gives the job back, due again after delay.
	Retry(ctx context.Context, delay time.Duration) error
}

// Renewer is a Job whose lease its worker can extend while it works.
type Renewer interface {
	Renew(ctx context.Context, lease time.Duration) error
}

// Features are the guarantees a table offers beyond the common contract.
type Features struct {
	// Fenced tables refuse the writes of a worker whose lease ran out and
	// was taken over, with LeaseLost; unfenced ones accept them, and
	// their callers must make such a write harmless by other means.
	Fenced    bool
	LeaseLost error
}

// Timing of the cases: a lease short enough to run out during a test, long
// enough that a claim made at once never sees it end.
const (
	shortLease = 300 * time.Millisecond
	longLease  = time.Minute
	waitFor    = 10 * time.Second
)

// Run runs the contract against tables made by newTable, a fresh empty one
// per case.
func Run(t *testing.T, features Features, newTable func(t *testing.T) Table) {
	cases := []struct {
		name string
		run  func(t *testing.T, tab Table)
	}{
		{"NothingDue", testNothingDue},
		{"ClaimIsExclusive", testClaimIsExclusive},
		{"ConcurrentWorkersClaimEachJobOnce", testConcurrentClaims},
		{"SettledIsNeverDueAgain", testSettled},
		{"RetryWaitsItsDelay", testRetry},
		{"CrashedWorkersJobIsTakenOver", testTakeOver},
		{"RenewKeepsTheJob", testRenew},
	}
	if features.Fenced {
		cases = append(cases, struct {
			name string
			run  func(t *testing.T, tab Table)
		}{"StaleWorkerIsFenced", func(t *testing.T, tab Table) { testFenced(t, tab, features.LeaseLost) }})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newTable(t)) })
	}
}

func testNothingDue(t *testing.T, tab Table) {
	ctx := t.Context()
	if j := claim(t, tab, "w1", longLease); j != nil {
		t.Fatalf("empty table: claimed %s", j.Key())
	}
	key := add(t, tab)
	j := claim(t, tab, "w1", longLease)
	if j == nil || j.Key() != key {
		t.Fatalf("claimed %v, want %s", keyOf(j), key)
	}
	must(t, j.Settle(ctx))
	if j := claim(t, tab, "w1", longLease); j != nil {
		t.Fatalf("all settled: claimed %s", j.Key())
	}
}

func testClaimIsExclusive(t *testing.T, tab Table) {
	add(t, tab)
	if claim(t, tab, "w1", longLease) == nil {
		t.Fatal("the due job was not claimed")
	}
	if j := claim(t, tab, "w2", longLease); j != nil {
		t.Fatalf("a second worker claimed %s while the lease holds", j.Key())
	}
}

// Workers claiming at the same time get each job once: none is missed, none
// is handed out twice (counted apart, as Watermill's tests count missing and
// duplicate messages).
func testConcurrentClaims(t *testing.T, tab Table) {
	const jobs, workers = 20, 6
	want := map[string]bool{}
	for range jobs {
		want[add(t, tab)] = true
	}
	var (
		mu   sync.Mutex
		got  = map[string]int{}
		errs []error
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for {
				j, err := tab.Claim(t.Context(), fmt.Sprintf("w%d", w), longLease)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if j != nil {
					got[j.Key()]++
				}
				mu.Unlock()
				if err != nil || j == nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var missing, twice []string
	for k := range want {
		if got[k] == 0 {
			missing = append(missing, k)
		}
	}
	for k, n := range got {
		if n > 1 || !want[k] {
			twice = append(twice, fmt.Sprintf("%s×%d", k, n))
		}
	}
	if len(missing) > 0 || len(twice) > 0 {
		t.Errorf("%d jobs: %d never claimed %v, %d claimed more than once or unknown %v", jobs, len(missing), missing, len(twice), twice)
	}
}

func testSettled(t *testing.T, tab Table) {
	key := add(t, tab)
	j := claim(t, tab, "w1", shortLease)
	if j == nil {
		t.Fatal("the due job was not claimed")
	}
	must(t, j.Settle(t.Context()))
	time.Sleep(2 * shortLease) // past the lease: a settled job stays settled
	if j := claim(t, tab, "w2", longLease); j != nil {
		t.Fatalf("settled %s claimed again as %s", key, j.Key())
	}
}

func testRetry(t *testing.T, tab Table) {
	key := add(t, tab)
	j := claim(t, tab, "w1", longLease)
	if j == nil {
		t.Fatal("the due job was not claimed")
	}
	const delay = 500 * time.Millisecond
	retried := time.Now()
	must(t, j.Retry(t.Context(), delay))
	again := eventually(t, tab, "w2", key)
	// A little slack for the clocks of the test and the database.
	if waited := again.Sub(retried); waited < delay-50*time.Millisecond {
		t.Errorf("retried job due again after %v, before its delay %v", waited, delay)
	}
}

func testTakeOver(t *testing.T, tab Table) {
	key := add(t, tab)
	leased := time.Now()
	if claim(t, tab, "crashed", shortLease) == nil {
		t.Fatal("the due job was not claimed")
	}
	// The worker crashes: it neither settles nor renews.
	again := eventually(t, tab, "w2", key)
	if waited := again.Sub(leased); waited < shortLease-50*time.Millisecond {
		t.Errorf("taken over after %v, before the lease of %v ran out", waited, shortLease)
	}
	if j := claim(t, tab, "w3", longLease); j != nil {
		t.Errorf("taken-over job claimed a third time as %s", j.Key())
	}
}

func testRenew(t *testing.T, tab Table) {
	add(t, tab)
	j := claim(t, tab, "w1", shortLease)
	if j == nil {
		t.Fatal("the due job was not claimed")
	}
	r, ok := j.(Renewer)
	if !ok {
		t.Skip("the table's leases cannot be renewed: a job must be done within one lease")
	}
	for end := time.Now().Add(4 * shortLease); time.Now().Before(end); time.Sleep(shortLease / 3) {
		must(t, r.Renew(t.Context(), shortLease))
		if other := claim(t, tab, "w2", longLease); other != nil {
			t.Fatalf("a renewed job was taken over as %s", other.Key())
		}
	}
	must(t, j.Settle(t.Context()))
}

// A worker that stalls past its lease while another takes the job over can
// no longer write: the job's outcome is the new worker's.
func testFenced(t *testing.T, tab Table, leaseLost error) {
	ctx := t.Context()
	key := add(t, tab)
	stale := claim(t, tab, "stalled", shortLease)
	if stale == nil {
		t.Fatal("the due job was not claimed")
	}
	fresh := eventuallyJob(t, tab, "w2", key)
	if err := stale.Settle(ctx); !errors.Is(err, leaseLost) {
		t.Errorf("stale worker's settle: %v, want %v", err, leaseLost)
	}
	if err := stale.Retry(ctx, time.Millisecond); !errors.Is(err, leaseLost) {
		t.Errorf("stale worker's retry: %v, want %v", err, leaseLost)
	}
	if r, ok := stale.(Renewer); ok {
		if err := r.Renew(ctx, longLease); !errors.Is(err, leaseLost) {
			t.Errorf("stale worker's renew: %v, want %v", err, leaseLost)
		}
	}
	must(t, fresh.Settle(ctx))
	if j := claim(t, tab, "w3", longLease); j != nil {
		t.Errorf("settled job claimed again as %s", j.Key())
	}
}

func add(t *testing.T, tab Table) string {
	t.Helper()
	key, err := tab.Add(t.Context())
	if err != nil {
		t.Fatalf("add a job: %v", err)
	}
	return key
}

func claim(t *testing.T, tab Table, worker string, lease time.Duration) Job {
	t.Helper()
	j, err := tab.Claim(t.Context(), worker, lease)
	if err != nil {
		t.Fatalf("claim as %s: %v", worker, err)
	}
	return j
}

// eventually claims until key is claimed, and returns when; it fails with
// what it last saw, as nats-server's checkFor does.
func eventually(t *testing.T, tab Table, worker, key string) time.Time {
	t.Helper()
	eventuallyJob(t, tab, worker, key)
	return time.Now()
}

func eventuallyJob(t *testing.T, tab Table, worker, key string) Job {
	t.Helper()
	var last error
	for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		j, err := tab.Claim(t.Context(), worker, longLease)
		switch {
		case err != nil:
			last = err
		case j == nil:
			last = errors.New("nothing due")
		case j.Key() != key:
			t.Fatalf("claimed %s, want %s", j.Key(), key)
		default:
			return j
		}
	}
	t.Fatalf("%s not claimed within %v: last %v", key, waitFor, last)
	return nil
}

func keyOf(j Job) string {
	if j == nil {
		return "nothing"
	}
	return j.Key()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
