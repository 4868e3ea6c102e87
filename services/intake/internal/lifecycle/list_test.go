package lifecycle_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/auth"
	"takedown/pkg/outbox"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/lifecycle"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	ann = auth.Staff{Subject: "ann", Name: "Ann", Roles: []string{auth.RoleEvidenceAdmin}}
	bob = auth.Staff{Subject: "bob", Name: "Bob", Roles: []string{auth.RoleEvidenceAdmin}}
)

// listDB is a fresh intake schema and a Manager over it: the listings and
// the holds and requests need only PostgreSQL.
func listDB(t *testing.T) (*pgxpool.Pool, *lifecycle.Manager) {
	t.Helper()
	pool := testenv.Schema(t, "intake", outbox.Migrations, store.Migrations)
	m, err := lifecycle.New(pool, nil, nil, nil, lifecycle.Policy{Retention: time.Hour}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return pool, m
}

// addReport stores a report in status with retention until retain (nil:
// not yet filed) and files of the given sizes.
func addReport(t *testing.T, pool *pgxpool.Pool, status string, retain *time.Time, sizes ...int64) string {
	t.Helper()
	ctx := t.Context()
	id := uuid.Must(uuid.NewV7()).String()
	details, _ := json.Marshal(report.Details{Platform: "wiki"})
	if _, err := pool.Exec(ctx, `INSERT INTO reports (id, submitted_at, submitted_by, incident_time, details, data_key_id, data_key, status, retain_until)
		VALUES ($1, now(), 'staff', now(), $2, 'k', '\x00', $3, $4)`, id, details, status, retain); err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		if _, err := pool.Exec(ctx, `INSERT INTO files (id, report_id, idx, name, object_key, size, content_type, md5, sha1, sha256, meta)
			VALUES ($1, $2, $3, 'a.jpg', $4, $5, 'image/jpeg', 'm', 's', 'h', '{}')`,
			uuid.NewString(), id, i, fmt.Sprintf("%s/%d", id, i), n); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// The preview lists what expiry will delete, soonest first, with the holds
// that keep it; a held report is in the preview but not among what the job
// would delete now, and a report not yet filed is kept and not listed.
func TestScheduleShowsHoldsThatBlockExpiry(t *testing.T) {
	t.Parallel()
	pool, m := listDB(t)
	ctx := t.Context()
	now := time.Now()
	past, later := now.Add(-time.Hour), now.Add(24*time.Hour)
	due := addReport(t, pool, "finished", &past, 10, 20)
	held := addReport(t, pool, "retracted", &past, 5)
	future := addReport(t, pool, "finished", &later, 7)
	addReport(t, pool, "submitted", nil, 9) // not filed: kept
	if _, err := m.PlaceHold(ctx, ann, held, "subpoena 12"); err != nil {
		t.Fatal(err)
	}

	s, err := m.Schedule(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]lifecycle.Expiry{}
	var order []string
	for _, e := range s {
		got[e.ReportID] = e
		order = append(order, e.ReportID)
	}
	if len(s) != 3 || order[2] != future {
		t.Fatalf("schedule = %+v, want the due, the held and then the future report", s)
	}
	if e := got[due]; e.Files != 2 || e.Bytes != 30 || e.Holds != 0 || !e.Due(now) || e.Status != "finished" {
		t.Errorf("due report: %+v", e)
	}
	if e := got[held]; e.Holds != 1 || !e.Due(now) {
		t.Errorf("held report: %+v, want one hold, due", e)
	}
	if e := got[future]; e.Due(now) {
		t.Errorf("future report is due: %+v", e)
	}
	c, err := m.Expire(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range c {
		if f.ReportID != due {
			t.Errorf("the job would delete %s; only %s is due and unheld", f.ReportID, due)
		}
	}
	if len(c) != 2 {
		t.Errorf("the job would delete %d files, want 2", len(c))
	}
}

// One report's evidence lists its holds, lifted or standing, and its
// destruction requests; the open requests are every report's unapproved
// ones.
func TestReportEvidenceAndOpenRequests(t *testing.T) {
	t.Parallel()
	pool, m := listDB(t)
	ctx := t.Context()
	id := addReport(t, pool, "finished", nil, 10)
	other := addReport(t, pool, "finished", nil, 10)

	h1, err := m.PlaceHold(ctx, ann, id, "litigation")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.PlaceHold(ctx, ann, id, "second"); err != nil {
		t.Fatal(err)
	}
	if err := m.LiftHold(ctx, bob, id, h1.ID, "settled"); err != nil {
		t.Fatal(err)
	}
	d, err := m.RequestDestruction(ctx, ann, id, "FBI", "LE-1", "2026-03-01")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RequestDestruction(ctx, bob, other, "HSI", "LE-2", "2026-03-02"); err != nil {
		t.Fatal(err)
	}

	e, err := m.Report(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if e.Files != 1 || e.LiveFiles != 1 || e.Destroyed() || !e.Held() || e.Status != "finished" || e.RetainUntil != nil {
		t.Errorf("evidence = %+v", e)
	}
	if len(e.Holds) != 2 || e.Holds[0].LiftedAt == nil || e.Holds[0].LiftReason != "settled" || e.Holds[0].LiftedBy != "bob (Bob)" ||
		e.Holds[1].LiftedAt != nil || e.Holds[1].Reason != "second" {
		t.Errorf("holds = %+v", e.Holds)
	}
	if len(e.Requests) != 1 || e.Requests[0].ID != d.ID || e.Requests[0].RequestedOn != "2026-03-01" || e.Requests[0].RequestedBy != "ann" || e.Requests[0].ApprovedAt != nil {
		t.Errorf("requests = %+v", e.Requests)
	}
	open, err := m.OpenRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 || open[0].ID != d.ID || open[1].ReportID != other || open[1].Agency != "HSI" {
		t.Errorf("open requests = %+v", open)
	}
	if _, err := m.Report(ctx, uuid.NewString()); !errors.Is(err, lifecycle.ErrNotFound) {
		t.Errorf("unknown report: %v, want ErrNotFound", err)
	}
}

// Once a report's evidence is destroyed, a hold or a destruction request
// on it is refused in plain words and records nothing.
func TestDestroyedReportRefusesHoldsAndRequests(t *testing.T) {
	t.Parallel()
	pool, m := listDB(t)
	ctx := t.Context()
	id := addReport(t, pool, "finished", nil, 10)
	if _, err := pool.Exec(ctx, `UPDATE reports SET data_key = NULL, data_key_destroyed_at = now() WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PlaceHold(ctx, ann, id, "too late"); !errors.Is(err, lifecycle.ErrDestroyed) {
		t.Errorf("hold on a destroyed report: %v, want ErrDestroyed", err)
	}
	if _, err := m.RequestDestruction(ctx, ann, id, "FBI", "LE-1", "2026-03-01"); !errors.Is(err, lifecycle.ErrDestroyed) {
		t.Errorf("request on a destroyed report: %v, want ErrDestroyed", err)
	}
	e, err := m.Report(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Destroyed() || len(e.Holds) != 0 || len(e.Requests) != 0 {
		t.Errorf("evidence = %+v, want destroyed with nothing recorded", e)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d events written for refused steps", n)
	}
}
