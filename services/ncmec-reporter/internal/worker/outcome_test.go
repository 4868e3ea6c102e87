package worker

import (
	"errors"
	"strings"
	"testing"

	"takedown/pkg/ncmec"
)

// Every rule of the outcome table is matched by at least one case, and the
// order of the rules decides where a failure matches two.
func TestJudge(t *testing.T) {
	answered := func(code int, kind ncmec.Kind) error {
		return &ncmec.Error{Endpoint: "x", Code: code, Kind: kind}
	}
	lost := &ncmec.Error{Endpoint: "x", Kind: ncmec.KindRetryable, Ambiguous: true, Err: errors.New("connection reset")}
	auth := &ncmec.Error{Endpoint: "x", Code: ncmec.CodeNotAuthorized, Kind: ncmec.KindPermanent, Auth: true}
	cases := []struct {
		name string
		step string
		err  error
		then verdict
		desc string // the failure's description begins so
	}{
		{"a lost /submit answer is ambiguous", StepSubmit, lost, ambiguous, ""},
		{"a lost answer elsewhere is retried", StepUpload, lost, retry, ""},
		{"5102 on /finish is the goal reached", StepFinish, answered(ncmec.CodeAlreadyFinished, ncmec.KindState), finished, ""},
		{"5102 elsewhere fails", StepFileInfo, answered(ncmec.CodeAlreadyFinished, ncmec.KindState), fail, "ncmec x: code 5102"},
		{"a server error on /submit is retried", StepSubmit, answered(ncmec.CodeServerError, ncmec.KindRetryable), retry, ""},
		{"a server error on /fileinfo is retried", StepFileInfo, answered(ncmec.CodeSaveFailed, ncmec.KindRetryable), retry, ""},
		{"5101 on an open report is a retraction", StepUpload, answered(ncmec.CodeAlreadyRetracted, ncmec.KindState), retracted, "NCMEC says the report was retracted"},
		{"5101 on /submit fails plainly", StepSubmit, answered(ncmec.CodeAlreadyRetracted, ncmec.KindState), fail, "ncmec x: code 5101"},
		{"5001 on an open report must be filed again", StepFinish, answered(ncmec.CodeReportNotFound, ncmec.KindState), fail, "NCMEC no longer has the report"},
		{"5001 with an auth mark is still 5001", StepFileInfo, &ncmec.Error{Endpoint: "x", Code: ncmec.CodeReportNotFound, Kind: ncmec.KindState, Auth: true}, fail, "NCMEC no longer has the report"},
		{"5001 on /submit fails plainly", StepSubmit, answered(ncmec.CodeReportNotFound, ncmec.KindState), fail, "ncmec x: code 5001"},
		{"refused credentials say so", StepSubmit, auth, fail, "NCMEC refused our credentials"},
		{"refused credentials after /submit say so", StepUpload, auth, fail, "NCMEC refused our credentials"},
		{"a validation failure fails", StepSubmit, answered(ncmec.CodeValidationFailed, ncmec.KindPermanent), fail, "ncmec x: code 4100"},
		{"an unknown code fails", StepFinish, answered(9999, ncmec.KindPermanent), fail, "ncmec x: code 9999"},
		{"an error not from the client fails", StepFileInfo, errors.New("boom"), fail, "boom"},
	}
	matched := make([]bool, len(rules))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := judge(c.step, c.err)
			for i := range rules {
				if rules[i].matches(c.step, c.err) {
					matched[i] = true
					break
				}
			}
			if r.then != c.then {
				t.Fatalf("verdict %d, want %d", r.then, c.then)
			}
			if c.then != fail && c.then != retracted {
				return
			}
			ft := failure(r, c.step, "file-1", c.err)
			if !strings.HasPrefix(ft.desc, c.desc) || !strings.HasSuffix(ft.desc, c.err.Error()) {
				t.Errorf("description %q, want it to begin with %q and end with the error", ft.desc, c.desc)
			}
			if ft.step != c.step || ft.code != ncmec.CodeOf(c.err) || ft.fileID != "file-1" {
				t.Errorf("failure %+v", ft)
			}
		})
	}
	for i, m := range matched {
		if !m {
			t.Errorf("rule %d (%+v) is matched by no case", i, rules[i])
		}
	}
}
