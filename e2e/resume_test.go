package e2e

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/ncmec/ncmecsim"
)

// resumeGoal is issue 20's bound: after a SIGKILL of the reporter, every
// filing it had in flight moves again at NCMEC within 15 s of the restart
// (at p99).
const resumeGoal = 15 * time.Second

// resumeWatch measures how soon the NCMEC reports a killed reporter was
// filing move again after its restart: from the start of the new process
// to the report's next change at NCMEC (a file, its details, the
// finish or a retraction).
type resumeWatch struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	took []time.Duration // a filing that did not move within a minute counts as a minute
}

// inFlight is the NCMEC reports being filed: open, with a file, changed
// within the last 5 s, with the time of their last change. (An open report
// without files may be one whose /submit answer a kill lost: nobody files
// it again, and NCMEC deletes it.)
func inFlight(s *stack.Stack) map[int64]time.Time {
	open := map[int64]time.Time{}
	for _, r := range s.NCMEC.State().Reports {
		if r.Status == ncmecsim.StatusOpen && len(r.Files) > 0 && time.Since(r.LastModified) < 5*time.Second {
			open[r.ID] = r.LastModified
		}
	}
	return open
}

// restart kills reporter instance name with SIGKILL while it has filings in
// flight (it waits up to 5 s for one), starts it again and watches those
// filings. A filing that moved while the instance was down belongs to
// another replica and is not this kill's to resume.
func (w *resumeWatch) restart(s *stack.Stack, name string) {
	for deadline := time.Now().Add(5 * time.Second); len(inFlight(s)) == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	s.KillService(name)
	open := inFlight(s)
	// A second down (ten NCMEC calls): a filing that moves meanwhile is
	// another replica's. The restarted instance may resume its own before
	// it answers as ready, so this is looked at before it starts.
	time.Sleep(time.Second)
	for _, r := range s.NCMEC.State().Reports {
		if last, ok := open[r.ID]; ok && !r.LastModified.Equal(last) {
			delete(open, r.ID)
		}
	}
	at := time.Now()
	s.StartService(name)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for deadline := at.Add(time.Minute); len(open) > 0 && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			for _, r := range s.NCMEC.State().Reports {
				if _, ok := open[r.ID]; ok && (r.LastModified.After(at) || r.Status != ncmecsim.StatusOpen) {
					delete(open, r.ID)
					w.add(time.Since(at))
				}
			}
		}
		for range open {
			w.add(time.Minute)
		}
	}()
}

func (w *resumeWatch) add(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.took = append(w.took, d)
}

// p99 waits for every watch to end and gives the 99th percentile and the
// number of filings measured.
func (w *resumeWatch) p99() (time.Duration, int) {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return percentile(w.took, 0.99), len(w.took)
}

// String waits for every watch to end and gives the figures.
func (w *resumeWatch) String() string {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.took) == 0 {
		return "no filing in flight at a reporter kill"
	}
	at := func(p float64) time.Duration { return percentile(w.took, p).Round(100 * time.Millisecond) }
	return fmt.Sprintf("%d filings: p50 %v, p99 %v, max %v (goal p99 ≤ %v)", len(w.took), at(0.5), at(0.99), at(1), resumeGoal)
}

// percentile is the nearest-rank percentile p of d (0 when d is empty).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	t := slices.Clone(d)
	slices.Sort(t)
	return t[max(0, int(p*float64(len(t))+0.999999)-1)]
}
