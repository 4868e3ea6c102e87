package worker

import (
	"errors"
	"fmt"
	"slices"

	"takedown/pkg/ncmec"
)

// A verdict is what follows a failed NCMEC call.
type verdict int

const (
	// fail ends the filing with takedown.ncmec.failed.
	fail verdict = iota
	// retry tries the step again after a backoff, inside the retry window.
	// /upload may have added a file although it failed (ambiguous):
	// uploading again may leave an identical duplicate at NCMEC, which is
	// better than abandoning the report (README, "duplicates").
	retry
	// ambiguous: /submit may have opened a report whose id we never learnt;
	// a fresh one is opened after a backoff (DESIGN.md §5).
	ambiguous
	// retracted: the report was retracted, which is our retraction
	// service taking over if it began one, and a failure otherwise.
	retracted
	// finished: an earlier /finish whose answer was lost reached the goal.
	finished
)

// afterOpen are the steps on a report NCMEC has opened.
var afterOpen = []string{StepUpload, StepFileInfo, StepFinish}

// A rule gives the verdict on the failures it matches.
type rule struct {
	steps []string         // the steps it applies to; nil: every step
	code  int              // NCMEC's response code; 0: any
	is    func(error) bool // a further test; nil: any
	then  verdict
	desc  string // for a failure: what its description says before the error
}

func (r rule) matches(step string, err error) bool {
	return (r.steps == nil || slices.Contains(r.steps, step)) &&
		(r.code == 0 || ncmec.CodeOf(err) == r.code) &&
		(r.is == nil || r.is(err))
}

// rules decide, first match wins, what follows a failed NCMEC call. The
// last matches everything.
var rules = []rule{
	{steps: []string{StepSubmit}, is: ncmec.IsAmbiguous, then: ambiguous},
	{steps: []string{StepFinish}, code: ncmec.CodeAlreadyFinished, then: finished},
	{is: ncmec.IsRetryable, then: retry},
	{steps: afterOpen, code: ncmec.CodeAlreadyRetracted, then: retracted,
		desc: "NCMEC says the report was retracted, though not by our retraction service: "},
	{steps: afterOpen, code: ncmec.CodeReportNotFound, then: fail,
		desc: "NCMEC no longer has the report (it expired or was deleted); it must be filed again: "},
	{is: ncmec.IsAuth, then: fail,
		desc: "NCMEC refused our credentials or permissions; check NCMEC_USERNAME/NCMEC_PASSWORD (or the test ones): "},
	{then: fail},
}

// judge returns the rule that decides what follows err at step.
func judge(step string, err error) rule {
	for _, r := range rules {
		if r.matches(step, err) {
			return r
		}
	}
	panic("unreachable: the last rule matches everything")
}

// transient is a failure worth retrying later.
type transient struct {
	step string
	err  error
}

func (t *transient) Error() string { return t.step + ": " + t.err.Error() }
func (t *transient) Unwrap() error { return t.err }

// fatal ends the filing with takedown.ncmec.failed.
type fatal struct {
	step   string
	code   int
	desc   string
	fileID string // ours, when about one file
}

func (f *fatal) Error() string { return fmt.Sprintf("%s: %s", f.step, f.desc) }

// failure is the fatal error judge's rule r makes of err at step.
func failure(r rule, step, fileID string, err error) *fatal {
	return &fatal{step: step, code: ncmec.CodeOf(err), fileID: fileID, desc: r.desc + err.Error()}
}

var (
	// errRetracted means the retraction service holds the report now.
	errRetracted = errors.New("retraction took over")
	// errCrashed unwinds a worker at a test's crash point without writing.
	errCrashed = errors.New("crashed (test hook)")
)
