package reports

import (
	"context"

	"takedown/pkg/auth"
	"takedown/pkg/events"
	"takedown/pkg/logging"
	pb "takedown/pkg/proto/takedown/v1"
)

// RecordAction publishes a staff action for the audit log (the adapters
// describe it with staffaction.Of: the request's method, path and query,
// bounded). A failure to record is logged, not returned: the action itself
// already happened.
func (s *Service) RecordAction(ctx context.Context, reportID string, staff auth.Staff, act *pb.StaffAction) {
	ev, err := events.New(reportID, staff.Actor(), act)
	if err == nil {
		// The answer may be sent already; the record must not depend on
		// the client staying connected.
		err = s.store.RecordAction(context.WithoutCancel(ctx), ev)
	}
	if err != nil {
		logging.FromContext(ctx).Error("record staff action", "action", act.GetAction(), logging.KeyErr, err)
	}
}
