package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"takedown/pkg/filing"
	"takedown/services/intake/internal/report"
)

// The attention queue: every report that is owed something — to NCMEC
// first of all, since the law asks for a report "as soon as reasonably
// possible" — and that no service will settle by itself. This file is the
// one definition of it: the reports list's ?attention=true, the count in the
// page header, the metrics (takedown_intake_reports_needing_attention and
// the unfinished-report age) and so the alert TakedownReportNeedsAttention
// all read it through Attention and AttentionCounts.

// Reason says why a report needs attention: the first of these that holds,
// in this order.
type Reason string

// Reasons, in the order they are tested: a report has one reason, the
// most pressing.
const (
	// ReasonRetractionFailed: retracting the filing's NCMEC report failed
	// and it is still open there.
	ReasonRetractionFailed Reason = "retraction_failed"
	// ReasonRetractionOwed: the filing failed after NCMEC opened a report,
	// which stays open until it is retracted; the report is not filed.
	ReasonRetractionOwed Reason = "retraction_owed"
	// ReasonFailedUnopened: the filing failed before NCMEC opened anything:
	// NCMEC holds nothing of the report.
	ReasonFailedUnopened Reason = "failed_unopened"
	// ReasonRetracted: the filing was retracted (by staff or after a
	// failure) and the report was not filed again.
	ReasonRetracted Reason = "retracted"
	// ReasonAwaitingLegal: the report has waited for a legal decision
	// (LEGAL_APPROVAL=required) longer than AttentionPolicy.LegalWait.
	ReasonAwaitingLegal Reason = "awaiting_legal"
	// ReasonAmbiguousSubmit: the filing goes on, but NCMEC's answer to an
	// /submit was lost: NCMEC may hold a report we never learnt the id of.
	ReasonAmbiguousSubmit Reason = "ambiguous_submit"
	// ReasonStalled: the filing goes on but no event has moved it for
	// longer than AttentionPolicy.Stall.
	ReasonStalled Reason = "stalled"
	// ReasonCaseFailed: Salesforce refused the report's case; the filing
	// with NCMEC is not affected.
	ReasonCaseFailed Reason = "case_failed"
)

// Reasons lists every reason, in the order they are tested.
var Reasons = []Reason{ReasonRetractionFailed, ReasonRetractionOwed, ReasonFailedUnopened, ReasonRetracted,
	ReasonAwaitingLegal, ReasonAmbiguousSubmit, ReasonStalled, ReasonCaseFailed}

// AttentionPolicy holds the queue's settings.
type AttentionPolicy struct {
	// Stall is how long a filing may go without an event before it counts
	// as stalled (ATTENTION_STALL).
	Stall time.Duration
	// LegalWait is how long a report may wait for a legal decision before
	// it counts as owed (ATTENTION_LEGAL_WAIT).
	LegalWait time.Duration
}

// legalWaitSeconds is LegalWait in seconds, DefaultLegalWait when unset.
func (p AttentionPolicy) legalWaitSeconds() float64 {
	if p.LegalWait <= 0 {
		return DefaultLegalWait.Seconds()
	}
	return p.LegalWait.Seconds()
}

// DefaultLegalWait is ATTENTION_LEGAL_WAIT's default: a working day's
// morning; the law asks for a report "as soon as reasonably possible".
const DefaultLegalWait = 4 * time.Hour

// stallSeconds is Stall in seconds, DefaultStall when unset.
func (p AttentionPolicy) stallSeconds() float64 {
	if p.Stall <= 0 {
		return DefaultStall.Seconds()
	}
	return p.Stall.Seconds()
}

// DefaultStall is ATTENTION_STALL's default: the reporter's retries of a
// step that NCMEC does not answer take minutes, not a quarter of an hour,
// and NCMEC deletes an unfinished report an hour after its last change.
const DefaultStall = 15 * time.Minute

// activeStates are the filing.State values in which the reporter may still
// be working on the filing (filing.State.Active).
const activeStates = `('pending', 'opened', 'uploading')`

// mayNeedAttention holds for every report that is in the queue or may enter
// it by itself (an active filing can stall): the reports whose filing has
// not settled, and those whose case failed. It is also the predicate of
// the partial index reports_attention (migration 0012), which the queries
// here name verbatim so the planner can use it.
//
// These are the reports the unfinished-report age counts (Stats).
// A report awaiting legal is one (its filing stays pending until approval
// starts it); a rejected report never is (migration 0015 made the index so).
const mayNeedAttention = `((ncmec_state IN ('pending', 'opened', 'uploading', 'failed', 'retracted') OR case_error IS NOT NULL) AND legal_state <> 'rejected')`

// attentionReason is the reason of a report, NULL for one that needs no
// attention; $1 is AttentionPolicy.Stall, $2 LegalWait, in seconds. The
// order is Reasons'. A report awaiting legal has no filing going on, so it
// is owed only once it has waited LegalWait, never stalled.
const attentionReason = `CASE
		WHEN legal_state = 'awaiting' THEN CASE WHEN submitted_at < now() - $2::float8 * interval '1 second' THEN 'awaiting_legal' END
		WHEN retraction_error IS NOT NULL AND ncmec_state IN ('failed', 'pending', 'opened', 'uploading') THEN 'retraction_failed'
		WHEN ncmec_state = 'failed' AND ncmec_report_id IS NOT NULL THEN 'retraction_owed'
		WHEN ncmec_state = 'failed' THEN 'failed_unopened'
		WHEN ncmec_state = 'retracted' THEN 'retracted'
		WHEN ncmec_state IN ` + activeStates + ` AND ambiguous_submits > 0 THEN 'ambiguous_submit'
		WHEN ncmec_state IN ` + activeStates + ` AND updated_at < now() - $1::float8 * interval '1 second' THEN 'stalled'
		WHEN case_error IS NOT NULL THEN 'case_failed'
	END`

// attentionRows are the reports in the queue with their reason.
const attentionRows = `SELECT *, ` + attentionReason + ` AS reason FROM reports WHERE ` + mayNeedAttention

// attentionListSQL lists the queue oldest first ($1 and $2 as in
// attentionReason, $3 the limit); attentionCountSQL counts it by reason.
// attentionOneSQL is one report's entry ($3 its id), no row when it needs
// no attention.
const (
	owedColumns = `id::text, reason, submitted_at, submitted_by,
			coalesce((details ->> 'test')::boolean, false), extract(epoch FROM now() - updated_at)::float8,
			coalesce(case_error, ''), ` + filingColumns
	attentionListSQL = `SELECT ` + owedColumns + `
		FROM (` + attentionRows + `) q WHERE reason IS NOT NULL
		ORDER BY submitted_at, id LIMIT $3`
	attentionOneSQL = `SELECT ` + owedColumns + `
		FROM (` + attentionRows + ` AND id = $3) q WHERE reason IS NOT NULL`
	attentionCountSQL = `SELECT reason, count(*), extract(epoch FROM now() - min(submitted_at))::float8
		FROM (` + attentionRows + `) q WHERE reason IS NOT NULL GROUP BY reason`
)

// Owed is one report in the attention queue.
type Owed struct {
	ReportID    string
	Reason      Reason
	SubmittedAt time.Time
	SubmittedBy string
	Test        bool
	// Idle is how long ago the last event moved the filing.
	Idle      time.Duration
	Filing    filing.Status
	CaseError string
}

// Attention returns up to limit reports of the queue, oldest submission
// first: the longest owed first.
func (s *Store) Attention(ctx context.Context, p AttentionPolicy, limit int) ([]Owed, error) {
	rows, err := s.pool.Query(ctx, attentionListSQL, p.stallSeconds(), p.legalWaitSeconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("attention queue: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanOwed)
	if err != nil {
		return nil, fmt.Errorf("attention queue: %w", err)
	}
	return out, nil
}

// AttentionOf returns report id's entry in the queue, and false when it
// needs no attention: what its page says happened and what to do (Explain).
func (s *Store) AttentionOf(ctx context.Context, p AttentionPolicy, id string) (Owed, bool, error) {
	rows, err := s.pool.Query(ctx, attentionOneSQL, p.stallSeconds(), p.legalWaitSeconds(), id)
	if err != nil {
		return Owed{}, false, fmt.Errorf("attention of %s: %w", id, err)
	}
	o, err := pgx.CollectExactlyOneRow(rows, scanOwed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Owed{}, false, nil
	}
	if err != nil {
		return Owed{}, false, fmt.Errorf("attention of %s: %w", id, err)
	}
	return o, true, nil
}

func scanOwed(row pgx.CollectableRow) (Owed, error) {
	var o Owed
	var idle float64
	fd, done := filingDest(&o.Filing)
	if err := row.Scan(append([]any{&o.ReportID, &o.Reason, &o.SubmittedAt, &o.SubmittedBy, &o.Test, &idle, &o.CaseError}, fd...)...); err != nil {
		return o, err
	}
	done()
	o.SubmittedAt = o.SubmittedAt.UTC()
	o.Idle = time.Duration(idle * float64(time.Second)).Round(time.Second)
	return o, nil
}

// ReasonCount is how many reports need attention for one reason, and how
// long ago the oldest of them was submitted.
type ReasonCount struct {
	Reports int
	Oldest  time.Duration
}

// AttentionCounts counts the queue by reason; a reason without reports is
// absent.
func (s *Store) AttentionCounts(ctx context.Context, p AttentionPolicy) (map[Reason]ReasonCount, error) {
	rows, err := s.pool.Query(ctx, attentionCountSQL, p.stallSeconds(), p.legalWaitSeconds())
	if err != nil {
		return nil, fmt.Errorf("count attention queue: %w", err)
	}
	defer rows.Close()
	out := map[Reason]ReasonCount{}
	for rows.Next() {
		var (
			r      Reason
			n      int
			oldest float64
		)
		if err := rows.Scan(&r, &n, &oldest); err != nil {
			return nil, fmt.Errorf("count attention queue: %w", err)
		}
		out[r] = ReasonCount{Reports: n, Oldest: time.Duration(oldest * float64(time.Second))}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count attention queue: %w", err)
	}
	return out, nil
}

// Advice is what staff read about a report in the queue: what happened,
// what to do, and the actions that do it (those the filing allows now, in
// the order a page offers them).
type Advice struct {
	What    string
	Do      string
	Actions []filing.Action
}

// Explain says in plain words what happened to a report in the queue and
// what to do about it.
func Explain(o Owed) Advice {
	st := o.Filing
	var a Advice
	switch o.Reason {
	case ReasonRetractionFailed:
		a = Advice{
			What: fmt.Sprintf("%s. NCMEC report %d is still open at NCMEC, and the report is not filed.",
				trimDot(st.RetractionError), st.NCMECReportID),
			Do: fmt.Sprintf("Retract it again. If NCMEC keeps refusing, ask NCMEC about report %d, then close this report with what they said.",
				st.NCMECReportID),
			Actions: []filing.Action{filing.Retract, filing.Close},
		}
	case ReasonRetractionOwed:
		a = Advice{
			What: fmt.Sprintf("%s. NCMEC report %d stays open until it is retracted, and the report is not filed.",
				trimDot(st.Error), st.NCMECReportID),
			Do: "The retraction service withdraws it by itself; once the report shows retracted, correct it and file it again. " +
				"If no retraction shows in its history, retract it now.",
			Actions: []filing.Action{filing.Retract},
		}
	case ReasonFailedUnopened:
		a = Advice{
			What: trimDot(st.Error) + ". NCMEC opened nothing: the report is not filed.",
			Do: "Correct what the failure names and file the report again. " +
				"If it was reported to NCMEC another way, close it with that reason.",
			// Retract lost is offered (Allows) only after an ambiguous /submit.
			Actions: []filing.Action{filing.FileAgain, filing.RetractLost, filing.Close},
		}
		if st.Ambiguous > 0 {
			a.What += fmt.Sprintf(" NCMEC's answer to opening it was lost %d time(s): %s.", st.Ambiguous, report.AmbiguousNote)
			a.Do += " " + retractLostAdvice
		}
	case ReasonRetracted:
		a = Advice{
			What: "The report was withdrawn before NCMEC opened anything and was not filed again: NCMEC holds nothing of it.",
			Do:   "Correct the report and file it again.",
		}
		if st.NCMECReportID != 0 {
			a.What = fmt.Sprintf("NCMEC report %d was retracted and the report was not filed again: NCMEC holds nothing of it.", st.NCMECReportID)
		}
		a.Actions = []filing.Action{filing.FileAgain}
	case ReasonAwaitingLegal:
		a = Advice{
			What: fmt.Sprintf("The report has waited %s for a legal decision; nothing goes to NCMEC until legal approves it.",
				o.Idle.Round(time.Minute)),
			Do: "A person with the legal role who did not submit it approves or rejects it on the report's page.",
		}
	case ReasonAmbiguousSubmit:
		a = Advice{
			What: fmt.Sprintf("NCMEC's answer to opening the report was lost %d time(s): %s. The filing goes on (%s).",
				st.Ambiguous, report.AmbiguousNote, st.State),
			Do:      "Watch the filing finish; the reporter opens a new report by itself. " + retractLostAdvice,
			Actions: []filing.Action{filing.RetractLost},
		}
	case ReasonStalled:
		a = Advice{
			What: fmt.Sprintf("Nothing has moved the filing for %s; it stands at %s.", o.Idle.Round(time.Minute), st.State),
			Do: "Check that the ncmec-reporter runs and NATS delivers its events (runbook TakedownReportStuck). " +
				"If the filing cannot go on, retract it and file it again.",
			Actions: []filing.Action{filing.Retract},
		}
	case ReasonCaseFailed:
		a = Advice{
			What: trimDot(o.CaseError) + ". The filing with NCMEC is not affected.",
			Do: "Fix what Salesforce refused (the message names it: a field mapping in case-writer's configuration, " +
				"or a validation rule in Salesforce); the case is written again with the report's next event.",
		}
	default:
		return Advice{What: fmt.Sprintf("The report needs attention (%s).", o.Reason),
			Do: "Open the report and follow its next steps.", Actions: st.NextSteps()}
	}
	a.Actions = slices.DeleteFunc(a.Actions, func(x filing.Action) bool { return st.Allows(x) != nil })
	if len(a.Actions) == 0 {
		a.Actions = nil
	}
	return a
}

const retractLostAdvice = "If NCMEC tells you of a report of ours that this one does not name, retract that report by its NCMEC id."

func trimDot(s string) string {
	for len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
