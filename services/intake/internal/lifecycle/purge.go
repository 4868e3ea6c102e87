package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"takedown/pkg/events"
	"takedown/pkg/logging"
)

// PurgeStream deletes from the event stream the published copies of every
// destroyed data key: the report.submitted event of each filing of a report
// whose key was dropped (expiry of all its files, or a law-enforcement
// request). Until then anyone who can read the stream holds the wrapped
// key, and under compliance retention the ciphertext outlives any request
// to destroy it. intake's outbox loses its published copies too. Messages
// are found by the stream sequence intake's own progress consumer recorded
// in its inbox, checked against the event id before deletion, and erased
// with a secure delete. A report is done once
// every filing's event is deleted or already gone (aged out); one whose
// events the consumer has not recorded yet is tried again at the next run.
// It returns how many reports it finished.
func (m *Manager) PurgeStream(ctx context.Context) (int, error) {
	reports, err := m.store.StreamPurgeOwed(ctx, 1000)
	if err != nil {
		return 0, fmt.Errorf("stream purge: %w", err)
	}
	if len(reports) == 0 {
		return 0, nil
	}
	st, err := m.js.Stream(ctx, events.Stream)
	if err != nil {
		return 0, fmt.Errorf("stream purge: %w", err)
	}
	done := 0
	for _, r := range reports {
		ok, err := m.purgeReport(ctx, st, r.ID, r.Filing)
		if err != nil {
			return done, fmt.Errorf("stream purge of report %s: %w", r.ID, err)
		}
		if ok {
			done++
		}
	}
	return done, nil
}

// purgeReport deletes one report's submitted events from st; it reports
// false when not all of them are known yet.
func (m *Manager) purgeReport(ctx context.Context, st jetstream.Stream, reportID string, filings int) (bool, error) {
	rows, err := m.pool.Query(ctx, `SELECT e.event_id::text, i.stream_seq FROM report_events e JOIN inbox i ON i.event_id = e.event_id
		WHERE e.report_id = $1 AND e.type = $2`, reportID, events.ReportSubmitted)
	if err != nil {
		return false, err
	}
	type published struct {
		EventID string
		Seq     uint64
	}
	copies, err := pgx.CollectRows(rows, pgx.RowToStructByPos[published])
	if err != nil {
		return false, err
	}
	if len(copies) < filings {
		m.log.Info("stream purge: not every submitted event of the report is recorded yet; will retry",
			logging.KeyReportID, reportID, "filings", filings, "recorded", len(copies))
		return false, nil
	}
	for _, c := range copies {
		msg, err := st.GetMsg(ctx, c.Seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			continue // aged out or deleted before
		case err != nil:
			return false, err
		case msg.Header.Get(jetstream.MsgIDHeader) != c.EventID:
			// The sequence now holds another event: the stream was
			// recreated since, and this copy went with the old one.
			continue
		}
		if err := st.SecureDeleteMsg(ctx, c.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, err
		}
		m.log.Info("stream purge: submitted event erased", logging.KeyReportID, reportID, logging.KeyEventID, c.EventID, logging.KeyStreamSeq, c.Seq)
	}
	// intake's outbox keeps published events for a while too.
	err = m.store.StreamPurged(ctx, reportID)
	return err == nil, err
}
