package e2e

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"takedown/e2e/stack"
	"takedown/pkg/ncmec/ncmecsim"
)

// resumeWatch measures how soon the NCMEC reports a killed reporter was
// filing move again after its restart (issue 20: within 15 s at p99): from
// the restart to the report's next change at NCMEC (a file, its details,
// the finish or a retraction).
type resumeWatch struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	took    []time.Duration
	stalled int // open reports that did not move within a minute
}

// restart kills and restarts a reporter instance through restart, and
// watches the NCMEC reports that were being filed when it died: open, with a
// file, and changed within the 30 s before. (An open report without files may
// be one whose /submit answer the kill lost: nobody files it again, and
// NCMEC deletes it.)
func (w *resumeWatch) restart(s *stack.Stack, restart func()) {
	open := map[int64]bool{}
	for _, r := range s.NCMEC.State().Reports {
		if r.Status == ncmecsim.StatusOpen && len(r.Files) > 0 && time.Since(r.LastModified) < 30*time.Second {
			open[r.ID] = true
		}
	}
	restart()
	at := time.Now()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for deadline := at.Add(time.Minute); len(open) > 0 && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			for _, r := range s.NCMEC.State().Reports {
				if open[r.ID] && (r.LastModified.After(at) || r.Status != ncmecsim.StatusOpen) {
					delete(open, r.ID)
					w.mu.Lock()
					w.took = append(w.took, time.Since(at))
					w.mu.Unlock()
				}
			}
		}
		w.mu.Lock()
		w.stalled += len(open)
		w.mu.Unlock()
	}()
}

// String waits for every watch to end and gives the figures.
func (w *resumeWatch) String() string {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.took) == 0 {
		return fmt.Sprintf("none in flight at a kill (%d did not move)", w.stalled)
	}
	t := slices.Clone(w.took)
	slices.Sort(t)
	at := func(p float64) time.Duration {
		return t[max(0, int(p*float64(len(t))+0.999999)-1)].Round(100 * time.Millisecond)
	}
	return fmt.Sprintf("%d filings: p50 %v, p99 %v, max %v (%d did not move within a minute)", len(t), at(0.5), at(0.99), at(1), w.stalled)
}
