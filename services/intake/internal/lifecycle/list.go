package lifecycle

// What the evidence-admin pages list: the expiry schedule, the open
// destruction requests and one report's evidence with its holds and
// requests. Reads only; every change goes through the steps in
// lifecycle.go and destroy.go.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"takedown/services/intake/internal/store"
)

// Expiry is one report's live evidence as the expiry job will treat it.
type Expiry struct {
	ReportID    string    `json:"report_id"`
	Status      string    `json:"status"`
	RetainUntil time.Time `json:"retain_until"`
	Files       int       `json:"files"`
	Bytes       int64     `json:"bytes"`
	// Holds counts the holds standing: while any does, nothing is deleted
	// whatever RetainUntil says.
	Holds int `json:"holds"`
}

// Due reports whether the retention has ended at now: the next run of the
// job deletes the evidence unless a hold keeps it.
func (e Expiry) Due(now time.Time) bool { return !e.RetainUntil.After(now) }

// Schedule lists the reports whose evidence expiry will delete, soonest
// first, at most limit of them, held or not (a hold shows in Holds). A
// report not yet filed, or failed, has no end of retention and is not
// listed: it is kept.
func (m *Manager) Schedule(ctx context.Context, limit int) ([]Expiry, error) {
	rows, err := m.store.ExpirySchedule(ctx, limit)
	if err != nil {
		return nil, err
	}
	s := make([]Expiry, len(rows))
	for i, r := range rows {
		s[i] = Expiry{ReportID: r.ReportID, Status: r.Status, RetainUntil: r.RetainUntil, Files: r.Files, Bytes: r.Bytes, Holds: r.Holds}
	}
	return s, nil
}

// requestColumns are a DestructionRequest's columns, in scanRequest's order.
const requestColumns = `id::text, report_id::text, agency, reference, requested_on, requested_by, recorded_at,
	coalesce(approved_by, ''), approved_at`

func scanRequest(r pgx.CollectableRow) (DestructionRequest, error) {
	var d DestructionRequest
	var day time.Time
	err := r.Scan(&d.ID, &d.ReportID, &d.Agency, &d.Reference, &day, &d.RequestedBy, &d.RecordedAt, &d.ApprovedBy, &d.ApprovedAt)
	d.RequestedOn = day.Format(time.DateOnly)
	return d, err
}

// OpenRequests lists the destruction requests waiting for a second
// person's approval, oldest first.
func (m *Manager) OpenRequests(ctx context.Context) ([]DestructionRequest, error) {
	rows, err := m.pool.Query(ctx, `SELECT `+requestColumns+` FROM destruction_requests
		WHERE approved_at IS NULL ORDER BY recorded_at, id LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("open destruction requests: %w", err)
	}
	d, err := pgx.CollectRows(rows, scanRequest)
	if err != nil {
		return nil, fmt.Errorf("open destruction requests: %w", err)
	}
	return d, nil
}

// ReportEvidence is one report's evidence as the evidence-admin sees it.
type ReportEvidence struct {
	ReportID    string     `json:"report_id"`
	Status      string     `json:"status"`
	RetainUntil *time.Time `json:"retain_until,omitempty"` // nil: kept until filed
	Files       int        `json:"files"`
	LiveFiles   int        `json:"live_files"` // not yet destroyed
	// KeyDestroyedAt is when the report's data key was destroyed: from
	// then on nothing of its evidence can be read, held or destroyed.
	KeyDestroyedAt *time.Time           `json:"key_destroyed_at,omitempty"`
	Holds          []Hold               `json:"holds"`    // every hold, standing or lifted, oldest first
	Requests       []DestructionRequest `json:"requests"` // every destruction request, oldest first
}

// Destroyed reports whether the evidence is gone (ErrDestroyed's rule).
func (e *ReportEvidence) Destroyed() bool { return e.KeyDestroyedAt != nil }

// Held reports whether a hold stands.
func (e *ReportEvidence) Held() bool {
	for _, h := range e.Holds {
		if h.LiftedAt == nil {
			return true
		}
	}
	return false
}

// Report returns one report's evidence, holds and destruction requests, or
// ErrNotFound.
func (m *Manager) Report(ctx context.Context, reportID string) (*ReportEvidence, error) {
	st, err := m.store.EvidenceOf(ctx, reportID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	e := &ReportEvidence{ReportID: reportID, Status: st.Status, RetainUntil: st.RetainUntil,
		KeyDestroyedAt: st.KeyDestroyedAt, Files: st.Files, LiveFiles: st.LiveFiles}
	rows, err := m.pool.Query(ctx, `SELECT id::text, report_id::text, reason, placed_by, placed_at,
			coalesce(lifted_by, ''), lifted_at, coalesce(lift_reason, '')
		FROM holds WHERE report_id = $1 ORDER BY placed_at, id`, reportID)
	if err != nil {
		return nil, fmt.Errorf("holds of report %s: %w", reportID, err)
	}
	if e.Holds, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Hold]); err != nil {
		return nil, fmt.Errorf("holds of report %s: %w", reportID, err)
	}
	rows, err = m.pool.Query(ctx, `SELECT `+requestColumns+` FROM destruction_requests
		WHERE report_id = $1 ORDER BY recorded_at, id`, reportID)
	if err != nil {
		return nil, fmt.Errorf("destruction requests of report %s: %w", reportID, err)
	}
	if e.Requests, err = pgx.CollectRows(rows, scanRequest); err != nil {
		return nil, fmt.Errorf("destruction requests of report %s: %w", reportID, err)
	}
	return e, nil
}
