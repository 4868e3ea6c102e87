package httpapi

import (
	"context"
	"net/http"

	"takedown/pkg/auth"
	"takedown/pkg/events"
	"takedown/pkg/logging"
	"takedown/pkg/staffaction"
)

// RecordAction publishes a staff action for the audit log (package
// staffaction: the request's method, path and query, bounded). A failure to
// record is logged, not answered: the action itself already happened.
func (a *API) RecordAction(r *http.Request, reportID string, s auth.Staff, action, detail string) {
	ev, err := events.New(reportID, s.Actor(), staffaction.Of(r, s.Actor(), action, detail))
	if err == nil {
		// The answer may be sent already; the record must not depend on
		// the client staying connected.
		err = a.store.RecordAction(context.WithoutCancel(r.Context()), ev)
	}
	if err != nil {
		logging.FromContext(r.Context()).Error("record staff action", "action", action, logging.KeyErr, err)
	}
}
