package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/events"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/salesforce/sfsim"
	"takedown/pkg/testenv"
)

// TestChaos is `make chaos`: a seeded load of reports while services are
// killed, NATS and S3 restart and both remote APIs fail, then every report
// is checked everywhere it lives. It runs twice with the same seed: with
// one instance of each service, and with two replicas each of
// ncmec-reporter and case-writer sharing their consumers (a killed replica
// is one of the two). TAKEDOWN_CHAOS=1 runs it; TAKEDOWN_CHAOS_SEED
// repeats a run, TAKEDOWN_CHAOS_REPORTS sizes it.
func TestChaos(t *testing.T) {
	if os.Getenv("TAKEDOWN_CHAOS") == "" {
		t.Skip("set TAKEDOWN_CHAOS=1 (make chaos) to run the chaos suite")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TAKEDOWN_CHAOS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("TAKEDOWN_CHAOS_SEED: %v", err)
		}
	}
	n := testenv.EnvInt(t, "TAKEDOWN_CHAOS_REPORTS", 150)
	t.Logf("chaos seed %d (repeat with TAKEDOWN_CHAOS_SEED=%d), %d reports", seed, seed, n)
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) { chaos(t, seed, n, replicas) })
	}
}

// chaos is one run of the suite, with replicas instances each of
// ncmec-reporter and case-writer.
func chaos(t *testing.T, seed uint64, n, replicas int) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chaos FAILED with seed %d: repeat with TAKEDOWN_CHAOS=1 TAKEDOWN_CHAOS_SEED=%d make chaos (go test -run %s alone)", seed, seed, t.Name())
		}
	})

	s := stack.Start(t, stack.Options{Replicas: map[string]int{"ncmec-reporter": replicas, "case-writer": replicas}})
	// NCMEC answers each call after chaosLatency while the load flows, as the
	// real service does after a network round trip: a filing then lasts long
	// enough for a reporter kill to interrupt it (at 0 ms it takes ~100 ms
	// and no kill met one).
	s.NCMEC.SetLatency(chaosLatency)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()

	// The load: two submitters, reports of 1 to 5 files, one in ten with a
	// large file. Its own random source, so the load does not depend on
	// how the chaos schedule interleaves with it.
	plan := planLoad(seed, n)
	var (
		mu        sync.Mutex
		submitted []stack.Submitted
		retries   int
		loadErr   error
		wg        sync.WaitGroup
		next      = make(chan loadItem)
	)
	for range 2 {
		wg.Go(func() {
			for it := range next {
				rep, attempts, err := s.SubmitRetrying(ctx, stack.NewReport(it.key), it.files)
				mu.Lock()
				if err != nil && loadErr == nil {
					loadErr = fmt.Errorf("submit %s: %w", it.key, err)
				}
				submitted = append(submitted, stack.Submitted{Key: it.key, ID: rep.ID, Files: len(it.files), Attempts: attempts})
				retries += attempts - 1
				mu.Unlock()
			}
		})
	}
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		defer close(next)
		for _, it := range plan {
			select {
			case next <- it:
			case <-ctx.Done():
				return
			}
			time.Sleep(it.pause)
		}
	}()

	// A progress line every 20 s, so that a stall shows where it is.
	var phase atomic.Value
	phase.Store("load")
	progressDone := make(chan struct{})
	defer close(progressDone)
	go func() {
		for {
			select {
			case <-progressDone:
				return
			case <-time.After(20 * time.Second):
			}
			mu.Lock()
			n := len(submitted)
			mu.Unlock()
			t.Logf("progress %v: %s, %d/%d submitted", time.Since(start).Round(time.Second), phase.Load(), n, len(plan))
		}
	}()

	// The chaos schedule runs here, on the test goroutine, one action at a
	// time, until the load is submitted.
	rng := rand.New(rand.NewPCG(seed, 1))
	counts := map[string]int{}
	holds := &holder{rng: rand.New(rand.NewPCG(seed, 3))}
	resume := &resumeWatch{}
	for done := false; !done; {
		select {
		case <-loadDone:
			done = true
			continue
		case <-time.After(time.Duration(300+rng.IntN(1500)) * time.Millisecond):
		}
		actionStart := time.Now()
		mu.Lock()
		half := len(submitted) >= len(plan)/2
		mu.Unlock()
		var action string
		if half && counts[reporterKill] == 0 {
			// Every run kills a reporter mid-load at least once, so that
			// the resume goal is measured whatever the seed drew.
			action = reporterKill
			resume.restart(s, s.Instances("ncmec-reporter")[0])
		} else {
			action = chaosAction(t, s, rng, resume)
		}
		counts[action]++
		t.Logf("chaos %v: %s (%v)", actionStart.Sub(start).Round(100*time.Millisecond), action, time.Since(actionStart).Round(100*time.Millisecond))
		mu.Lock()
		subs := append([]stack.Submitted(nil), submitted...)
		mu.Unlock()
		if h := holds.step(t, ctx, s, subs); h != "" {
			counts[h]++
		}
	}
	phase.Store("waiting for the last submissions")
	wg.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	loadTime := time.Since(start)

	// Settle: faults off, everything up, every report at rest.
	s.NCMEC.ClearFaults()
	s.NCMEC.SetLatency(0)
	s.SF.ClearFaults()
	s.EnsureRunning()
	counts["lift legal hold"] += holds.liftAll(t, ctx, s)
	phase.Store("settling")
	t.Logf("load submitted in %v; settling", loadTime.Round(time.Second))
	settleStart := time.Now()
	pending := map[string]stack.Submitted{}
	for _, sub := range submitted {
		pending[sub.ID] = sub
	}
	// Polled with a deadline; on timeout every report still moving is shown
	// with all intake, both simulators and the services' logs know of it.
	for deadline, lastLog := time.Now().Add(4*time.Minute), time.Now(); len(pending) > 0; {
		for id := range pending {
			if r, err := s.Report(ctx, id); err == nil && stack.Settled(r) {
				delete(pending, id)
			}
		}
		if len(pending) == 0 {
			break
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			var few []string
			for id, sub := range pending {
				if len(few) == 5 {
					few = append(few, "…")
					break
				}
				r, _ := s.Report(ctx, id)
				few = append(few, fmt.Sprintf("%s (%s): %s, NCMEC %s, case %s", sub.Key, id, r.Status, r.NCMEC.State, r.Case.State))
			}
			t.Logf("settling %v: %d reports still moving: %s", time.Since(settleStart).Round(time.Second), len(pending), strings.Join(few, "; "))
		}
		if time.Now().After(deadline) {
			for _, sub := range pending {
				t.Errorf("did not settle: %s", s.Describe(ctx, sub))
			}
			s.LogTails(15)
			t.FailNow()
		}
		time.Sleep(time.Second)
	}
	settle := time.Since(settleStart)

	// The audit log trails the other consumers (it handles one event at a
	// time, and was killed too): the check is repeated for up to a minute
	// before what it finds counts.
	// Besides each report's own check: every event of the stream is in the
	// audit log, and every hold placed and lifted is there too.
	check := func() stack.Result {
		res := s.Check(ctx, submitted)
		res.Problems = append(res.Problems, checkStreamAudited(s, ctx)...)
		res.Problems = append(res.Problems, holds.check(s, ctx)...)
		return res
	}
	res := check()
	for deadline := time.Now().Add(time.Minute); len(res.Problems) > 0 && time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
		res = check()
	}
	for _, p := range res.Problems {
		t.Error(p)
	}
	if len(res.Problems) > 0 {
		// Each report named in a problem, everywhere it lives.
		for _, sub := range submitted {
			for _, p := range res.Problems {
				if strings.Contains(p, "("+sub.ID+")") {
					t.Log(s.Describe(ctx, sub))
					break
				}
			}
		}
	}
	// The shipped NATS users: a permission a service lacks is refused in
	// its log and the server's, even when a retry hid it from the checks.
	for _, l := range s.PermissionViolations() {
		t.Errorf("permission refused: %s", l)
	}
	for name, c := range s.Crashes() {
		if c != 0 {
			t.Errorf("%s exited on its own %d times", name, c)
		}
	}
	switch p99, n := resume.p99(); {
	case n == 0:
		t.Logf("no filing was in flight at any of %d reporter kills: the resume goal went unmeasured", counts[reporterKill])
	case p99 > resumeGoal:
		t.Errorf("after reporter kills, %d filings resumed at NCMEC with p99 %v, over the goal of %v", n, p99, resumeGoal)
	}
	t.Log("\n" + summary(seed, replicas, submitted, retries, counts, s, res, loadTime, settle, resume))
}

// reporterKill names a kill of a reporter instance in the counts: chaosAction
// names the instance it kills, which for one instance is the service's name.
const reporterKill = "kill -9 ncmec-reporter"

// chaosLatency is the NCMEC simulator's answer time while the load flows.
const chaosLatency = 100 * time.Millisecond

// holder places legal holds on reports already submitted and lifts them
// while the load flows (intake's evidence-admin API): their events go
// through intake's outbox and its NATS user like every other, and a
// refused one would stall the reports behind it. Its own random source
// keeps the chaos schedule of a seed as it was.
type holder struct {
	rng    *rand.Rand
	open   []heldReport // placed, not lifted yet
	placed map[string]int
	lifted map[string]int
}

type heldReport struct{ reportID, holdID string }

// step places a hold on a random submitted report, or lifts the oldest
// hold, or does nothing; it names what it did.
func (h *holder) step(t *testing.T, ctx context.Context, s *stack.Stack, subs []stack.Submitted) string {
	switch k := h.rng.IntN(4); {
	case k == 0 && len(subs) > 0:
		id := subs[h.rng.IntN(len(subs))].ID
		if id == "" {
			return ""
		}
		h.retry(t, "place a legal hold on "+id, func() error {
			hold, err := s.PlaceHold(ctx, id, "chaos: litigation hold")
			if err == nil {
				h.open = append(h.open, heldReport{id, hold.ID})
			}
			return err
		})
		h.count(&h.placed, id)
		return "place legal hold"
	case k == 1 && len(h.open) > 0:
		h.lift(t, ctx, s)
		return "lift legal hold"
	}
	return ""
}

func (h *holder) lift(t *testing.T, ctx context.Context, s *stack.Stack) {
	r := h.open[0]
	h.retry(t, "lift legal hold "+r.holdID, func() error { return s.LiftHold(ctx, r.reportID, r.holdID, "chaos: litigation over") })
	h.open = h.open[1:]
	h.count(&h.lifted, r.reportID)
}

// liftAll lifts every hold still standing, so that each placed is
// lifted, and counts them.
func (h *holder) liftAll(t *testing.T, ctx context.Context, s *stack.Stack) int {
	n := len(h.open)
	for len(h.open) > 0 {
		h.lift(t, ctx, s)
	}
	return n
}

func (h *holder) count(m *map[string]int, id string) {
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[id]++
}

// retry repeats a call to intake for up to a minute: every process is up
// between chaos actions, but a restarted intake may still be reconnecting.
func (h *holder) retry(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// check finds each hold's placing and lifting in the audit log.
func (h *holder) check(s *stack.Stack, ctx context.Context) []string {
	var problems []string
	for id, placed := range h.placed {
		entries, err := s.Audit(ctx, id)
		if err != nil {
			return []string{fmt.Sprintf("audit of %s: %v", id, err)}
		}
		got := map[string]int{}
		for _, e := range entries {
			got[e.Type]++
		}
		if got[events.EvidenceHoldPlaced] != placed || got[events.EvidenceHoldLifted] != h.lifted[id] {
			problems = append(problems, fmt.Sprintf("report %s: %d holds placed and %d lifted, the audit log holds %d and %d",
				id, placed, h.lifted[id], got[events.EvidenceHoldPlaced], got[events.EvidenceHoldLifted]))
		}
	}
	return problems
}

type loadItem struct {
	key   string
	files []stack.File
	pause time.Duration
}

func planLoad(seed uint64, n int) []loadItem {
	rng := rand.New(rand.NewPCG(seed, 2))
	items := make([]loadItem, n)
	for i := range items {
		files := make([]stack.File, 1+rng.IntN(5))
		for j := range files {
			size := int64(1024 + rng.IntN(64<<10))
			if j == 0 && rng.IntN(10) == 0 {
				size = int64(8<<20 + rng.IntN(24<<20)) // some large
			}
			files[j] = stack.RandomFile(fmt.Sprintf("f%d.bin", j+1), size, rng.Uint64())
		}
		items[i] = loadItem{key: fmt.Sprintf("c%d-%d", seed%100000, i), files: files,
			pause: time.Duration(rng.IntN(600)) * time.Millisecond}
	}
	return items
}

var (
	ncmecEndpoints = []string{"submit", "upload", "fileinfo", "finish", "retract"}
	// Permanent refusals end a filing; never at retract, where one would
	// leave an NCMEC report open for a person to deal with.
	permanentAt = []string{"submit", "upload", "fileinfo", "finish"}
	sfEndpoints = []string{"composite", "token"}
)

// chaosAction does one seeded random thing to the stack and names it.
func chaosAction(t *testing.T, s *stack.Stack, rng *rand.Rand, resume *resumeWatch) string {
	switch k := rng.IntN(10); {
	case k < 3:
		name := stack.Services[rng.IntN(len(stack.Services))]
		if inst := s.Instances(name); len(inst) > 1 {
			name = inst[rng.IntN(len(inst))]
		}
		if strings.HasPrefix(name, "ncmec-reporter") {
			resume.restart(s, name)
		} else {
			s.RestartService(name)
		}
		return "kill -9 " + name
	case k == 3:
		s.KillNATS()
		s.StartNATS()
		return "kill -9 nats"
	case k == 4:
		s.StopS3()
		time.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
		s.StartS3()
		return "stop s3"
	case k < 7:
		ep := ncmecEndpoints[rng.IntN(len(ncmecEndpoints))]
		f := ncmecsim.Fault{Endpoint: ep, Times: 1 + rng.IntN(3)}
		switch rng.IntN(5) {
		case 0:
			f.Kind, f.Code = ncmecsim.FaultCode, 1000
		case 1:
			f.Kind, f.Status = ncmecsim.FaultHTTP, 503
		case 2:
			f.Kind = ncmecsim.FaultDrop
		case 3:
			f.Kind = ncmecsim.FaultRateLimit
		case 4:
			f.Kind = ncmecsim.FaultLostResponse
		}
		if err := s.NCMEC.Inject(f); err != nil {
			t.Fatal(err)
		}
		return "ncmec transient " + f.Kind + "@" + ep
	case k == 7:
		ep := permanentAt[rng.IntN(len(permanentAt))]
		if err := s.NCMEC.Inject(ncmecsim.Fault{Endpoint: ep, Kind: ncmecsim.FaultCode, Code: 4000}); err != nil {
			t.Fatal(err)
		}
		return "ncmec permanent 4000@" + ep
	default:
		kinds := []string{sfsim.KindExpireToken, sfsim.KindRateLimit, sfsim.KindHTTP, sfsim.KindLostResponse}
		f := sfsim.Fault{Endpoint: sfEndpoints[0], Kind: kinds[rng.IntN(len(kinds))], Times: 1 + rng.IntN(2)}
		if f.Kind == sfsim.KindRateLimit && rng.IntN(2) == 0 {
			f.Endpoint = "token"
		}
		if _, err := s.SF.Inject(f); err != nil {
			t.Fatal(err)
		}
		return "salesforce " + f.Kind + "@" + f.Endpoint
	}
}

func summary(seed uint64, replicas int, subs []stack.Submitted, retries int, counts map[string]int, s *stack.Stack, res stack.Result, load, settle time.Duration, resume *resumeWatch) string {
	var b strings.Builder
	files := 0
	for _, sub := range subs {
		files += sub.Files
	}
	fmt.Fprintf(&b, "chaos summary (seed %d, %d instance(s) each of ncmec-reporter and case-writer)\n", seed, replicas)
	fmt.Fprintf(&b, "  %-44s %d (%d files), load %v, settled in %v\n", "reports", len(subs), files, load.Round(time.Second), settle.Round(time.Second))
	fmt.Fprintf(&b, "  %-44s %d\n", "submissions retried (intake or S3 away)", retries)
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-44s %d\n", k, counts[k])
	}
	fired := 0
	for _, f := range s.NCMEC.Faults() {
		fired += f.Fired
	}
	fmt.Fprintf(&b, "  %-44s %v\n", "NCMEC calls", s.NCMEC.State().Calls)
	outcomes := map[string]int{}
	for _, o := range res.Outcomes {
		outcomes[o]++
	}
	for _, o := range []string{stack.OutcomeFinished, stack.OutcomeRetracted, stack.OutcomeNotFiled} {
		fmt.Fprintf(&b, "  %-44s %d\n", "outcome "+o, outcomes[o])
	}
	fmt.Fprintf(&b, "  %-44s %d\n", "duplicate NCMEC reports absorbed (retracted)", res.Duplicates)
	fmt.Fprintf(&b, "  %-44s %d\n", "ambiguous /submit (a fresh report opened)", res.AmbiguousSubmits)
	fmt.Fprintf(&b, "  %-44s %d\n", "reports failed by ambiguous /submit", res.AmbiguousFailed)
	fmt.Fprintf(&b, "  %-44s %s\n", "resume after a reporter kill (restart→NCMEC)", resume)
	fmt.Fprintf(&b, "  %-44s %d\n", "NCMEC reports left to expire (lost /submit)", res.LeftToExpire)
	fmt.Fprintf(&b, "  %-44s %d\n", "finishes learnt from 5102 (receipt lost)", res.FinishedBy5102)
	fmt.Fprintf(&b, "  %-44s %d\n", "NCMEC file copies (lost /upload answers)", res.DuplicateFiles)
	fmt.Fprintf(&b, "  %-44s %d\n", "Salesforce tokens issued", s.SF.TokenCount())
	fmt.Fprintf(&b, "  %-44s %d\n", "invariant violations", len(res.Problems))
	return b.String()
}
