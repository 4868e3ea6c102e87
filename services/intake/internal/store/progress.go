package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The statements the progress consumer applies events with, inside the
// consumer's transaction.

// Event is one line of a report's history.
type Event struct {
	ID, ReportID, Type string
	OccurredAt         time.Time
	Actor, Summary     string
}

// RecordEvents adds evs to their reports' histories, each once, in one
// statement however many there are: the progress consumer records a batch
// of events at a time.
func RecordEvents(ctx context.Context, tx pgx.Tx, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	var ids, reports, types, actors, summaries []string
	var at []time.Time
	for _, ev := range evs {
		ids, reports, types = append(ids, ev.ID), append(reports, ev.ReportID), append(types, ev.Type)
		at, actors, summaries = append(at, ev.OccurredAt), append(actors, ev.Actor), append(summaries, ev.Summary)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO report_events (event_id, report_id, type, occurred_at, actor, summary)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
		ON CONFLICT (event_id) DO NOTHING`,
		ids, reports, types, at, actors, summaries); err != nil {
		return fmt.Errorf("record %d event(s) from %s: %w", len(evs), evs[0].ID, err)
	}
	return nil
}

// RecordNCMECFile records the id and MD5 NCMEC gave a file it received.
func RecordNCMECFile(ctx context.Context, tx pgx.Tx, reportID, fileID, ncmecFileID, md5 string) error {
	_, err := tx.Exec(ctx, `UPDATE files SET ncmec_file_id = $3, ncmec_md5 = $4 WHERE report_id = $1 AND id = $2`,
		reportID, fileID, ncmecFileID, md5)
	return err
}

// ExtendRetention keeps the report's evidence until at least until;
// retention is only ever extended.
func ExtendRetention(ctx context.Context, tx pgx.Tx, reportID string, until time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE reports SET retain_until = greatest(retain_until, $2) WHERE id = $1`, reportID, until)
	if err != nil {
		return fmt.Errorf("retention of %s: %w", reportID, err)
	}
	return nil
}

// CaseShown is the filing and state of the Salesforce case the report
// shows (0 and "" before any).
func CaseShown(ctx context.Context, tx pgx.Tx, reportID string) (filing int, state string, err error) {
	err = tx.QueryRow(ctx, `SELECT coalesce(case_filing, 0), coalesce(case_state, '') FROM reports WHERE id = $1`,
		reportID).Scan(&filing, &state)
	return filing, state, err
}

// SetCaseID records the report's case id, leaving the state shown.
func SetCaseID(ctx context.Context, tx pgx.Tx, reportID, caseID string) error {
	_, err := tx.Exec(ctx, `UPDATE reports SET case_id = $2 WHERE id = $1`, reportID, caseID)
	return err
}

// SetCase records the report's case as written for filing, clearing the
// error of an earlier attempt.
func SetCase(ctx context.Context, tx pgx.Tx, reportID, caseID, state string, filing int) error {
	_, err := tx.Exec(ctx, `UPDATE reports SET case_id = $2, case_state = $3, case_filing = $4, case_error = NULL WHERE id = $1`,
		reportID, caseID, state, filing)
	return err
}

// SetCaseError records why the report's case could not be written.
func SetCaseError(ctx context.Context, tx pgx.Tx, reportID, msg string) error {
	_, err := tx.Exec(ctx, `UPDATE reports SET case_error = $2 WHERE id = $1`, reportID, msg)
	return err
}
