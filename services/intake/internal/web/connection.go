package web

import (
	"context"
	"fmt"

	"takedown/pkg/logging"
	"takedown/pkg/ncmec"
	"takedown/services/intake/internal/store"
)

// warnsNCMEC are the pages that warn while an NCMEC environment refuses our
// credentials or does not answer: where staff file a report and where they
// look for its outcome.
var warnsNCMEC = map[string]bool{"form": true, "list": true}

// ncmecWarning is one environment that is not ok, in words for staff.
type ncmecWarning struct {
	store.Connection
	Headline string // what is wrong, in plain words
	Todo     string // what staff should do about it
}

// ncmecWarnings returns the warnings of every environment that is not ok.
// A failure to read them is logged, not shown: the page is still useful.
func (w *Web) ncmecWarnings(ctx context.Context) []ncmecWarning {
	cs, err := w.store.Connections(ctx)
	if err != nil {
		logging.FromContext(ctx).Warn("NCMEC connection warnings left out", logging.KeyErr, err)
		return nil
	}
	var out []ncmecWarning
	for _, c := range cs {
		if c.State == ncmec.ConnectionOK {
			continue
		}
		out = append(out, warningOf(c))
	}
	return out
}

func warningOf(c store.Connection) ncmecWarning {
	which := "NCMEC's " + c.Environment + " environment"
	reports := "Reports"
	if c.Environment == "test" {
		reports = "Reports marked test"
	}
	w := ncmecWarning{Connection: c}
	switch c.State {
	case ncmec.ConnectionRefused:
		w.Headline = which + " refuses our credentials."
		w.Todo = reports + " you submit are kept, but their filing with NCMEC fails until the credentials are fixed. " +
			"Tell the takedown operators (runbook TakedownNCMECConnectionFailing); once this warning is gone, open each failed report and file it again."
	default:
		w.Headline = which + " does not answer."
		w.Todo = reports + " you submit are kept and filed when NCMEC answers again; nothing to do unless it lasts for an hour. " +
			"Then tell the takedown operators (runbook TakedownNCMECConnectionFailing)."
	}
	if c.State != ncmec.ConnectionRefused && c.State != ncmec.ConnectionUnreachable {
		w.Headline = fmt.Sprintf("%s is in an unknown state (%q).", which, c.State)
	}
	return w
}
