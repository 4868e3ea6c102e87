package store_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"takedown/pkg/database"
	"takedown/pkg/filing"
	"takedown/pkg/testenv"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// attentionDB is a fresh intake schema with its store.
func attentionDB(t *testing.T) (context.Context, *pgxpool.Pool, *store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	pool, err := database.Open(ctx, testenv.Postgres(t), "intake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := database.Migrate(ctx, pool, "intake", store.Migrations); err != nil {
		t.Fatal(err)
	}
	return ctx, pool, store.New(pool)
}

// fileReport stores a report submitted age ago and folds evs into its
// filing as the progress consumer does (filing.Status.Apply, SaveFiling).
func fileReport(t *testing.T, ctx context.Context, pool *pgxpool.Pool, age time.Duration, evs ...filing.Event) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	details, _ := json.Marshal(report.Details{Platform: "wiki"})
	at := time.Now().Add(-age)
	if _, err := pool.Exec(ctx, `INSERT INTO reports (id, submitted_at, submitted_by, incident_time, details, data_key_id, data_key)
		VALUES ($1, $2, 'staff', $2, $3, 'k', '\x00')`, id, at, details); err != nil {
		t.Fatal(err)
	}
	err := database.InTx(ctx, pool, func(tx pgx.Tx) error {
		sts, err := store.LoadFilings(ctx, tx, []string{id})
		if err != nil {
			return err
		}
		st := sts[id]
		for i, ev := range append([]filing.Event{{Filing: 1, State: filing.Pending}}, evs...) {
			ev.At = at.Add(time.Duration(i) * time.Second)
			st.Apply(ev)
		}
		return store.SaveFiling(ctx, tx, id, st)
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var (
	opened = func(n int64) filing.Event {
		return filing.Event{Filing: 1, State: filing.Opened, NCMECReportID: n, Environment: "production"}
	}
	failed = filing.Event{Filing: 1, State: filing.Failed,
		Error: "Filing with NCMEC failed at submit: the incident type is missing (NCMEC code 1000)"}
	finished = filing.Event{Filing: 1, State: filing.Finished, LearnedFrom: filing.FromReceipt}
)

// Each reason's report is listed with that reason and none other; healthy
// reports (finished, filing now, closed by staff, filed again after a
// retraction, finished after an ambiguous /submit) are not.
func TestAttentionListsOneReportPerReasonAndNoHealthyOne(t *testing.T) {
	t.Parallel()
	ctx, pool, s := attentionDB(t)
	policy := store.AttentionPolicy{Stall: 15 * time.Minute}

	want := map[string]store.Reason{
		fileReport(t, ctx, pool, 10*time.Minute, failed):              store.ReasonFailedUnopened,
		fileReport(t, ctx, pool, 20*time.Minute, opened(101), failed): store.ReasonRetractionOwed,
		fileReport(t, ctx, pool, 30*time.Minute, opened(102), failed,
			filing.Event{Filing: 1, NCMECReportID: 102, Error: "Retracting NCMEC report 102 failed: NCMEC answered 500"}): store.ReasonRetractionFailed,
		fileReport(t, ctx, pool, 40*time.Minute, opened(103), failed,
			filing.Event{Filing: 1, State: filing.Retracted, NCMECReportID: 103}): store.ReasonRetracted,
		fileReport(t, ctx, pool, 50*time.Minute, filing.Event{Filing: 1, Ambiguous: 1}): store.ReasonAmbiguousSubmit,
	}
	stalled := fileReport(t, ctx, pool, 60*time.Minute, opened(105))
	want[stalled] = store.ReasonStalled
	// Its last event 20 minutes ago: the only thing the test makes up is
	// the passing of time.
	if _, err := pool.Exec(ctx, `UPDATE reports SET updated_at = now() - interval '20 minutes' WHERE id = $1`, stalled); err != nil {
		t.Fatal(err)
	}
	caseFailed := fileReport(t, ctx, pool, 70*time.Minute, opened(106), finished)
	want[caseFailed] = store.ReasonCaseFailed
	// As the progress consumer records case.failed.
	if _, err := pool.Exec(ctx, `UPDATE reports SET case_error = 'Salesforce case could not be written: REQUIRED_FIELD_MISSING Platform__c' WHERE id = $1`, caseFailed); err != nil {
		t.Fatal(err)
	}

	// The legal gate (migration 0015): a report past ATTENTION_LEGAL_WAIT
	// (default 4h) is owed; one within it, or rejected, is not, and
	// neither counts as stalled, since no filing has started.
	legal := func(age time.Duration, state report.LegalState) string {
		id := fileReport(t, ctx, pool, age)
		if _, err := pool.Exec(ctx, `UPDATE reports SET legal_state = $2, updated_at = now() - interval '1 hour' WHERE id = $1`, id, state); err != nil {
			t.Fatal(err)
		}
		return id
	}
	want[legal(5*time.Hour, report.LegalAwaiting)] = store.ReasonAwaitingLegal
	healthy := map[string]string{
		legal(time.Hour, report.LegalAwaiting):                          "awaiting legal within the wait",
		legal(10*time.Hour, report.LegalRejected):                       "rejected by legal",
		fileReport(t, ctx, pool, 80*time.Minute, opened(107), finished): "finished",
		fileReport(t, ctx, pool, 90*time.Minute, opened(108)):           "being filed, moved just now",
		fileReport(t, ctx, pool, 95*time.Minute, failed, filing.Event{Filing: 1, State: filing.Closed, Error: "Closed by staff: filed by phone"}): "closed by staff",
		fileReport(t, ctx, pool, 100*time.Minute, opened(109), failed, filing.Event{Filing: 1, State: filing.Retracted, NCMECReportID: 109},
			filing.Event{Filing: 2, State: filing.Pending}): "filed again after its retraction",
		fileReport(t, ctx, pool, 110*time.Minute, filing.Event{Filing: 1, Ambiguous: 1}, opened(110), finished): "finished after an ambiguous /submit",
	}

	got, err := s.Attention(ctx, policy, 100)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]store.Reason{}
	for _, o := range got {
		listed[o.ReportID] = o.Reason
		if why, ok := healthy[o.ReportID]; ok {
			t.Errorf("healthy report (%s) listed as %s", why, o.Reason)
		}
	}
	for id, r := range want {
		if listed[id] != r {
			t.Errorf("report that should be %s listed as %q", r, listed[id])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d reports listed, want %d", len(got), len(want))
	}
	// One report's entry (its status page) agrees with the queue.
	for id, r := range want {
		if o, ok, err := s.AttentionOf(ctx, policy, id); err != nil || !ok || o.Reason != r {
			t.Errorf("AttentionOf a %s report: %v %v %v", r, o.Reason, ok, err)
		}
	}
	for id, why := range healthy {
		if o, ok, err := s.AttentionOf(ctx, policy, id); err != nil || ok {
			t.Errorf("AttentionOf a healthy report (%s): %v %v %v", why, o.Reason, ok, err)
		}
	}
	if !slices.IsSortedFunc(got, func(a, b store.Owed) int { return a.SubmittedAt.Compare(b.SubmittedAt) }) {
		t.Error("the queue is not oldest first")
	}
	for _, o := range got {
		if o.Reason == store.ReasonStalled && (o.Idle < 19*time.Minute || o.Idle > 21*time.Minute) {
			t.Errorf("stalled report idle for %s, want about 20m", o.Idle)
		}
		if o.Reason == store.ReasonRetractionOwed && o.Filing.NCMECReportID != 101 {
			t.Errorf("retraction owed of NCMEC report %d, want 101", o.Filing.NCMECReportID)
		}
	}
	if reasons := slices.Collect(maps.Values(listed)); len(reasons) != len(store.Reasons) {
		t.Errorf("reasons listed %v, want every one of %v", reasons, store.Reasons)
	}

	counts, err := s.AttentionCounts(ctx, policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range store.Reasons {
		c := counts[r]
		if c.Reports != 1 {
			t.Errorf("%s: %d reports counted, want 1", r, c.Reports)
		}
	}
	// The oldest of each reason is the one report's age.
	if c := counts[store.ReasonCaseFailed]; c.Oldest < 69*time.Minute || c.Oldest > 72*time.Minute {
		t.Errorf("case_failed oldest %s, want about 70m", c.Oldest)
	}

	// A longer ATTENTION_STALL leaves the 20-minute pause alone.
	counts, err = s.AttentionCounts(ctx, store.AttentionPolicy{Stall: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if n := counts[store.ReasonStalled].Reports; n != 0 {
		t.Errorf("with a 30m stall, %d stalled reports, want 0", n)
	}
}

// The unfinished-report age counts every report in the attention queue: a
// filing that failed before NCMEC opened anything, or a report retracted
// and not filed again, is as unfinished as one being filed. (It read 0 with
// either present, issue 16.)
func TestOldestUnfinishedCountsFailedAndRetractedReports(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		evs  []filing.Event
		want bool
	}{
		{"failed before NCMEC opened anything", []filing.Event{failed}, true},
		{"retracted and not filed again", []filing.Event{opened(201), failed,
			{Filing: 1, State: filing.Retracted, NCMECReportID: 201}}, true},
		{"finished", []filing.Event{opened(202), finished}, false},
		{"closed by staff", []filing.Event{failed, {Filing: 1, State: filing.Closed, Error: "Closed by staff: filed by phone"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, pool, s := attentionDB(t)
			fileReport(t, ctx, pool, time.Hour, tc.evs...)
			st, err := s.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.OldestUnfinished > 59*time.Minute; got != tc.want {
				t.Errorf("oldest unfinished %s; counted: %v, want %v", st.OldestUnfinished, got, tc.want)
			}
		})
	}
}

// The queue's queries read the partial index reports_attention: its
// predicate and the queries' agree (with sequential scans off, so that the
// planner shows whether it can use the index at all on a small table).
func TestAttentionQueriesCanUseTheirIndex(t *testing.T) {
	t.Parallel()
	ctx, pool, _ := attentionDB(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for _, q := range store.AttentionQueries {
		rows, err := conn.Query(ctx, "EXPLAIN "+q.SQL, q.Args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if plan := strings.Join(lines, "\n"); !strings.Contains(plan, "reports_attention") {
			t.Errorf("%s does not use reports_attention:\n%s", q.Name, plan)
		}
	}
}
