package report

import (
	"slices"
	"testing"

	"takedown/pkg/filing"
)

// Every filing state has its own API status, and the API's existing values
// stay what they were.
func TestStatusOfEveryState(t *testing.T) {
	want := map[filing.State]Status{
		filing.Pending:   "submitted",
		filing.Opened:    "ncmec_opened",
		filing.Uploading: "uploading",
		filing.Failed:    "failed",
		filing.Closed:    "closed",
		filing.Retracted: "retracted",
		filing.Finished:  "finished",
	}
	seen := map[Status]bool{}
	for _, s := range filing.States {
		got := StatusOf(s)
		if w, ok := want[s]; !ok || got != w {
			t.Errorf("StatusOf(%s) = %q, want %q", s, got, w)
		}
		if seen[got] {
			t.Errorf("two states map to %q", got)
		}
		seen[got] = true
	}
	if len(Statuses()) != len(filing.States) || !slices.Contains(Statuses(), StatusClosed) {
		t.Errorf("Statuses() = %v", Statuses())
	}
}
