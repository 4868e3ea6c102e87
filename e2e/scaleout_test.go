package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/events"
	"takedown/pkg/filing"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/salesforce/sfsim"
)

// Issue 9, scale-out: replicas of ncmec-reporter and case-writer share
// their durable consumers and leases, and a 3-node NATS cluster loses a
// node under load; in both, every report is filed once, its case written
// once per change, and the audit log holds every event once.

const (
	reporter   = "ncmec-reporter"
	caseWriter = "case-writer"
	// Log messages of one unit of work done, by the replica that did it.
	msgFiled       = `"msg":"NCMEC report finished"`
	msgCaseWritten = `"msg":"case written to Salesforce"`
)

// TestReplicasShareConsumers runs two replicas each of ncmec-reporter and
// case-writer. With both up, 60 reports are filed exactly once between
// them, and both did some of the work (or the test would prove nothing).
// Then one reporter replica is killed with filings in hand: the other takes
// them over once their leases end, and nothing is filed twice.
func TestReplicasShareConsumers(t *testing.T) {
	s := stack.Start(t, stack.Options{
		// A little NCMEC latency and few workers per reporter replica, so
		// that the filings are spread over both replicas rather than all
		// taken by whichever woke first.
		NCMECLatency: 20 * time.Millisecond,
		Replicas:     map[string]int{reporter: 2, caseWriter: 2},
		ServiceEnv:   map[string][]string{reporter: {"FILING_CONCURRENCY=4"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	reporters, writers := s.Instances(reporter), s.Instances(caseWriter)

	// Both replicas up: everything exactly once.
	start := time.Now()
	subs := submitLoad(t, s, ctx, "r", 60, 4, 0, nil)
	waitSettled(t, s, ctx, subs, 2*time.Minute)
	t.Logf("%d reports submitted and settled in %v", len(subs), time.Since(start).Round(100*time.Millisecond))
	checkExactlyOnce(t, s, ctx, subs)

	// Each replica filed some, wrote some cases, and took report.submitted
	// events from the shared durable consumer.
	// work returns how often inst logged done, failing unless it did so at
	// least once and took events from its share of the durable consumer.
	work := func(inst, done, metric, consumer string) int {
		n := s.LogCount(inst, done)
		took, err := s.Metric(ctx, inst, metric, `consumer="`+consumer+`"`, `result="ok"`)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %q %d times, handled %v events", inst, done, n, took)
		if n == 0 || took == 0 {
			t.Errorf("%s did no work: %q %d times, consumed %v events", inst, done, n, took)
		}
		return n
	}
	filed, written := map[string]int{}, map[string]int{}
	for _, inst := range reporters {
		filed[inst] = work(inst, msgFiled, "takedown_ncmec_reporter_events_handled_total", "ncmec-reporter")
	}
	for _, inst := range writers {
		written[inst] = work(inst, msgCaseWritten, "takedown_case_writer_events_handled_total", "case-writer")
	}
	if n := filed[reporters[0]] + filed[reporters[1]]; n != len(subs) {
		t.Errorf("the replicas filed %d reports between them, want %d", n, len(subs))
	}
	if t.Failed() {
		t.FailNow()
	}

	// One reporter replica killed with work in hand: its leased filings and
	// its unacknowledged events wait out FILING_LEASE (20 s) and the
	// consumer's AckWait (30 s), then the other replica finishes them. A
	// /submit the kill cut short is ambiguous by design (DESIGN.md §5) and
	// left to staff; the check accounts for it. The dead replica stays down.
	victim, survivor := reporters[0], reporters[1]
	before := s.LogCount(survivor, msgFiled)
	// From the 8th report on, the victim is killed as soon as its log shows
	// a filing half done: a report opened at NCMEC, not finished (its log is
	// read just before the kill, and a dead process logs nothing more). The
	// load goes on meanwhile.
	var submitted atomic.Int32
	killed := make(chan []string, 1) // the reports the victim had in hand
	// NCMEC's finished reports just after the kill: the victim may have
	// finished one between the read of its log and the kill, leaving the
	// survivor nothing to do for it.
	var finishedAtKill map[int64]bool
	more := submitLoad(t, s, ctx, "k", 20, 2, 50*time.Millisecond, func(n int) {
		submitted.Store(int32(n))
		if n != 8 {
			return
		}
		go func() {
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if inHand := halfDone(s, victim); len(inHand) > 0 {
					s.KillService(victim)
					finishedAtKill = finishedNCMECIDs(s)
					t.Logf("kill -9 %s at %v, %d of 20 reports submitted, %d opened at NCMEC and not finished",
						victim, time.Since(start).Round(100*time.Millisecond), submitted.Load(), len(inHand))
					killed <- inHand
					return
				}
			}
			killed <- nil
		}()
	})
	inHand := <-killed
	if len(inHand) == 0 {
		t.Fatalf("%s never had a filing half done to be killed with", victim)
	}
	waitSettled(t, s, ctx, more, 2*time.Minute)
	res := checkOnce(t, s, ctx, more)
	t.Logf("after the kill: %d reports settled at %v, outcomes %v, left for staff %d, NCMEC file copies %d, %s filed %d of them",
		len(more), time.Since(start).Round(100*time.Millisecond), countOutcomes(res), res.LeftToExpire, res.DuplicateFiles, survivor, s.LogCount(survivor, msgFiled)-before)
	for _, id := range inHand {
		if finishedAtKill[openedNCMECID(s, victim, id)] {
			t.Logf("report %s: %s finished it at NCMEC in the moment before it was killed", id, victim)
			continue
		}
		if s.LogCount(survivor, msgFiled, id) != 1 {
			t.Errorf("report %s, opened by %s before it was killed, was not finished by %s", id, victim, survivor)
		}
	}
	for name, n := range s.Crashes() {
		if n != 0 {
			t.Errorf("%s exited on its own %d times", name, n)
		}
	}
}

// TestNATSClusterNodeKilled runs the system on a 3-node NATS cluster with
// every stream and the handover bucket replicated 3 times, and kill -9s the
// node leading the TAKEDOWN stream in the middle of a load of 80 reports;
// the load goes on while it is down, and it is restarted (and catches up)
// before the load ends. Every report is filed once, every case written once
// per change, every event held once by the stream and by the audit log, and
// the three copies of the stream agree.
func TestNATSClusterNodeKilled(t *testing.T) {
	const (
		n       = 80
		killAt  = 25 // reports submitted when the leader is killed
		startAt = 55 // ... and when it is started again
	)
	s := stack.Start(t, stack.Options{NATSNodes: 3, NCMECLatency: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	seed := uint64(start.UnixNano())
	rng := rand.New(rand.NewPCG(seed, 9))

	victim := 0
	subs := submitLoad(t, s, ctx, "n", n, 2, 400*time.Millisecond, func(done int) {
		switch done {
		case killAt:
			leader, err := s.StreamLeader(ctx, events.Stream)
			victim = leader
			how := "the stream's leader"
			if err != nil || leader == 0 {
				// No node names a leader (an election in progress): any node.
				victim, how = 1+rng.IntN(s.NATSNodes()), fmt.Sprintf("a random node (seed %d; no leader known: %v)", seed, err)
			}
			s.KillNATSNode(victim)
			t.Logf("kill -9 %s, %s, at %v with %d of %d reports submitted", s.NATSNodeName(victim), how, time.Since(start).Round(100*time.Millisecond), done, n)
		case startAt:
			t0 := time.Now()
			s.StartNATSNode(victim)
			t.Logf("%s started again and current after %v, at %v with %d of %d reports submitted",
				s.NATSNodeName(victim), time.Since(t0).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond), done, n)
		}
	})
	if victim == 0 {
		t.Fatal("no node was killed")
	}
	submitted := time.Since(start)
	if leader, err := s.StreamLeader(ctx, events.Stream); err == nil {
		t.Logf("the stream's leader is now %s", s.NATSNodeName(leader))
	}
	waitSettled(t, s, ctx, subs, 2*time.Minute)
	t.Logf("%d reports submitted in %v, all settled at %v", len(subs), submitted.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	checkExactlyOnce(t, s, ctx, subs)

	// The three copies of the stream hold the same messages, the restarted
	// node's included; the stream and the handover bucket each have three.
	var copies []stack.StreamReplica
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		copies = copies[:0]
		agree := true
		for i := 1; i <= s.NATSNodes(); i++ {
			r, err := s.StreamReplica(ctx, i, events.Stream)
			if err != nil {
				t.Fatal(err)
			}
			copies = append(copies, r)
			agree = agree && r.Messages == copies[0].Messages && r.LastSeq == copies[0].LastSeq
		}
		if agree {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream's copies differ: %+v", copies)
		}
	}
	t.Logf("each node holds %d messages of the stream (last sequence %d)", copies[0].Messages, copies[0].LastSeq)
	for _, name := range []string{events.Stream, "KV_" + filing.Bucket} {
		if r, err := s.StreamReplica(ctx, 1, name); err != nil || len(r.Peers) != 2 {
			t.Errorf("stream %s: %+v, %v; want 3 replicas", name, r, err)
		}
	}
	for name, c := range s.Crashes() {
		if c != 0 {
			t.Errorf("%s exited on its own %d times", name, c)
		}
	}
	t.Logf("checked at %v", time.Since(start).Round(100*time.Millisecond))
}

// submitLoad submits n reports of 3 small files from workers submitters,
// each pausing pause after a submission, and calls after(k) on the calling
// goroutine each time k reports have been submitted; no submission starts
// while it runs. A refused submission fails the test: intake depends on
// neither NATS nor the other services to take a report.
func submitLoad(t *testing.T, s *stack.Stack, ctx context.Context, prefix string, n, workers int, pause time.Duration, after func(k int)) []stack.Submitted {
	t.Helper()
	var (
		mu   sync.Mutex
		subs []stack.Submitted
		errs []error
		wg   sync.WaitGroup
		jobs = make(chan int)
		done = make(chan int, n)
	)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				key := fmt.Sprintf("%s%d", prefix, i)
				rep, err := s.Submit(ctx, stack.NewReport(key), stack.SmallFiles(3, uint64(i)))
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("submit %s: %w", key, err))
				} else {
					subs = append(subs, stack.Submitted{Key: key, ID: rep.ID, Files: 3, Attempts: 1})
				}
				mu.Unlock()
				done <- 1
				time.Sleep(pause)
			}
		})
	}
	// Jobs are handed out one at a time and after() runs between them, so
	// that "k submitted" is exact when it runs.
	finished := 0
	for i := range n {
		jobs <- i
		if after != nil && i+1 >= workers {
			<-done
			finished++
			after(finished)
		}
	}
	close(jobs)
	wg.Wait()
	if after != nil {
		for finished < n {
			<-done
			finished++
			after(finished)
		}
	}
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return subs
}

// waitSettled waits until every report has come to rest (stack.Settled);
// on timeout, each one still moving is shown everywhere it lives.
func waitSettled(t *testing.T, s *stack.Stack, ctx context.Context, subs []stack.Submitted, timeout time.Duration) {
	t.Helper()
	pending := map[string]stack.Submitted{}
	for _, sub := range subs {
		pending[sub.ID] = sub
	}
	start := time.Now()
	deadline, lastLog := start.Add(timeout), start
	for len(pending) > 0 {
		var moving []string
		for id, sub := range maps.Clone(pending) {
			r, err := s.Report(ctx, id)
			if err == nil && stack.Settled(r) {
				delete(pending, id)
			} else if len(moving) < 5 {
				moving = append(moving, fmt.Sprintf("%s (%s): %s, NCMEC %s, case %s", sub.Key, id, r.Status, r.NCMEC.State, r.Case.State))
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			t.Logf("settling %v: %d reports still moving: %s", time.Since(start).Round(time.Second), len(pending), strings.Join(moving, "; "))
		}
		if time.Now().After(deadline) {
			for _, sub := range pending {
				t.Errorf("did not settle within %v: %s", timeout, s.Describe(ctx, sub))
			}
			t.FailNow()
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkOnce runs stack.Check and the counts of checkCounts until they
// hold or a minute has passed, and reports what still does not hold. The
// audit log trails the other consumers; after a NATS node died, by up to
// the consumer's AckWait (30 s): acknowledgements its consumer leader took
// but had not replicated are lost with it, and those events wait out the
// AckWait to be delivered again.
func checkOnce(t *testing.T, s *stack.Stack, ctx context.Context, subs []stack.Submitted) stack.Result {
	t.Helper()
	var (
		res      stack.Result
		problems []string
	)
	start := time.Now()
	lastLog := start
	for deadline := start.Add(time.Minute); ; time.Sleep(time.Second) {
		res = s.Check(ctx, subs)
		problems = append(res.Problems, checkCounts(s, ctx, subs)...)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			t.Logf("checking %v: %d problems yet, the first: %s", time.Since(start).Round(time.Second), len(problems), problems[0])
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) > 0 {
		for _, sub := range subs {
			for _, p := range problems {
				if strings.Contains(p, sub.ID) {
					t.Log(s.Describe(ctx, sub))
					break
				}
			}
		}
	}
	return res
}

// checkExactlyOnce is checkOnce for a run where nothing may fail: every
// report finished at NCMEC and each NCMEC step called once per report and
// file.
func checkExactlyOnce(t *testing.T, s *stack.Stack, ctx context.Context, subs []stack.Submitted) {
	t.Helper()
	res := checkOnce(t, s, ctx, subs)
	files := 0
	for _, sub := range subs {
		files += sub.Files
		if o := res.Outcomes[sub.ID]; o != stack.OutcomeFinished {
			t.Errorf("report %s (%s): outcome %q, want %s", sub.Key, sub.ID, o, stack.OutcomeFinished)
		}
	}
	if res.Duplicates != 0 || res.LeftToExpire != 0 || res.DuplicateFiles != 0 {
		t.Errorf("NCMEC holds %d duplicate reports, %d left open to expire, %d duplicate files; want none", res.Duplicates, res.LeftToExpire, res.DuplicateFiles)
	}
	calls := s.NCMEC.State().Calls
	for ep, want := range map[string]int{"submit": len(subs), "upload": files, "finish": len(subs), "retract": 0} {
		if calls[ep] != want {
			t.Errorf("NCMEC got %d %s calls, want %d (one per report or file)", calls[ep], ep, want)
		}
	}
	t.Logf("NCMEC calls %v; Salesforce: %d cases, %d file records, %d API calls", calls,
		len(s.SF.Records(sfsim.CaseObject)), len(s.SF.Records(sfsim.FileObject)), s.SF.APIUsage())
}

// checkCounts holds Salesforce's write counts to the case-writer's events
// and the stream to the audit log.
//
// Each write of a case (the case and its file records, in one composite) is
// followed by exactly one takedown.case.upserted, so a case whose record has
// had more writes than it has such events was written twice, e.g. by two
// replicas at once.
//
// Every event the outbox relays published is in the stream once, and every
// message of the stream is in the audit log once (which holds each event id
// once, stack.Check): an event published twice would leave one of its two
// messages unaudited. The stream is read before the audit log, since reading
// the audit log is a staff action, an event of its own.
func checkCounts(s *stack.Stack, ctx context.Context, subs []stack.Submitted) []string {
	problems := checkStreamAudited(s, ctx)
	audit, err := s.Audit(ctx, "")
	if err != nil {
		return append(problems, fmt.Sprintf("audit list: %v", err))
	}
	upserted := map[string]int{}
	for _, e := range audit {
		if e.Type == events.CaseUpserted {
			upserted[e.ReportID]++
		}
	}
	caseOf := map[string]string{}
	for _, c := range s.SF.Records(sfsim.CaseObject) {
		id, _ := c[sfsim.CaseReportID].(string)
		caseOf[id], _ = c["Id"].(string)
	}
	writes := map[string]int{} // case id → writes of each of its file records, summed
	for _, f := range s.SF.Records(sfsim.FileObject) {
		caseID, _ := f[sfsim.FileCase].(string)
		writes[caseID] += s.SF.Writes(f["Id"].(string))
	}
	for _, sub := range subs {
		caseID := caseOf[sub.ID]
		if caseID == "" {
			continue // stack.Check reports it
		}
		n := s.SF.Writes(caseID)
		if n != upserted[sub.ID] {
			problems = append(problems, fmt.Sprintf("report %s (%s): case %s written %d times, %d case.upserted events", sub.Key, sub.ID, caseID, n, upserted[sub.ID]))
		}
		if writes[caseID] != n*sub.Files {
			problems = append(problems, fmt.Sprintf("report %s (%s): its %d file records written %d times in all, want %d (each with every write of the case)", sub.Key, sub.ID, sub.Files, writes[caseID], n*sub.Files))
		}
	}
	return problems
}

// checkStreamAudited holds the stream to the audit log: every message of
// the stream is in the audit log once.
func checkStreamAudited(s *stack.Stack, ctx context.Context) []string {
	var (
		problems []string
		stream   stack.StreamReplica
		err      error
	)
	for i := 1; i <= s.NATSNodes(); i++ {
		if stream, err = s.StreamReplica(ctx, i, events.Stream); err == nil {
			break
		}
	}
	if err != nil {
		return []string{err.Error()}
	}
	if err := s.WaitAudited(ctx); err != nil {
		return []string{err.Error()}
	}
	audit, err := s.Audit(ctx, "")
	if err != nil {
		return []string{fmt.Sprintf("audit list: %v", err)}
	}
	audited := map[uint64]int{}
	for _, e := range audit {
		if e.StreamSeq >= stream.FirstSeq && e.StreamSeq <= stream.LastSeq {
			audited[e.StreamSeq]++
		}
	}
	if uint64(len(audited)) != stream.Messages {
		problems = append(problems, fmt.Sprintf("the stream holds %d events (sequences %d to %d), the audit log %d of them: an event was published twice or never audited",
			stream.Messages, stream.FirstSeq, stream.LastSeq, len(audited)))
	}
	for seq, n := range audited {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("stream message %d is in the audit log %d times", seq, n))
		}
	}
	return problems
}

// halfDone are the reports an instance's log shows opened at NCMEC and not
// finished.
func halfDone(s *stack.Stack, instance string) []string {
	finished := map[string]bool{}
	for _, l := range s.InstanceLog(instance, msgFiled) {
		finished[reportIDOf(l)] = true
	}
	var out []string
	for _, l := range s.InstanceLog(instance, `"msg":"NCMEC report opened"`) {
		if id := reportIDOf(l); id != "" && !finished[id] {
			out = append(out, id)
		}
	}
	return out
}

// finishedNCMECIDs are the ids of the reports NCMEC holds finished.
func finishedNCMECIDs(s *stack.Stack) map[int64]bool {
	out := map[int64]bool{}
	for _, r := range s.NCMEC.State().Reports {
		if r.Status == ncmecsim.StatusFinished {
			out[r.ID] = true
		}
	}
	return out
}

// openedNCMECID is the NCMEC report id instance's log gives report id when
// it opened it (0 when it did not).
func openedNCMECID(s *stack.Stack, instance, id string) int64 {
	for _, line := range s.InstanceLog(instance, `"msg":"NCMEC report opened"`) {
		var l struct {
			ReportID      string `json:"report_id"`
			NCMECReportID int64  `json:"ncmec_report_id"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.ReportID == id {
			return l.NCMECReportID
		}
	}
	return 0
}

// reportIDOf is the report id of a JSON log line.
func reportIDOf(line string) string {
	var l struct {
		ReportID string `json:"report_id"`
	}
	_ = json.Unmarshal([]byte(line), &l)
	return l.ReportID
}

func countOutcomes(res stack.Result) map[string]int {
	out := map[string]int{}
	for _, o := range res.Outcomes {
		out[o]++
	}
	return out
}
