package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// reportGauges computes, at scrape time from the reports table, the
// reports by status and the age of the oldest unfinished report: the
// pipeline's end-to-end view, since intake learns every step's outcome from
// the events (alert TakedownReportStuck).
type reportGauges struct {
	store          *store.Store
	attention      store.AttentionPolicy
	byStatus, aged *prometheus.Desc
	// The attention queue (store/attention.go) by reason: how many reports
	// and the age of the oldest (alert TakedownReportNeedsAttention).
	owed, owedAge *prometheus.Desc
}

func newReportGauges(service string, st *store.Store, attention store.AttentionPolicy) *reportGauges {
	return &reportGauges{
		store:     st,
		attention: attention,
		owed: prometheus.NewDesc("takedown_"+service+"_reports_needing_attention",
			"Reports owed something (the attention queue) by reason.", []string{"reason"}, nil),
		owedAge: prometheus.NewDesc("takedown_"+service+"_oldest_report_needing_attention_age_seconds",
			"Age since submission of the oldest report needing attention, by reason (0 when none).", []string{"reason"}, nil),
		byStatus: prometheus.NewDesc("takedown_"+service+"_reports", "Reports by overall status.",
			[]string{"status"}, nil),
		aged: prometheus.NewDesc("takedown_"+service+"_oldest_unfinished_report_age_seconds",
			"Age of the oldest report being filed or needing attention (failed, retracted and not filed again, case failed...; 0 when none).", nil, nil),
	}
}

func (g *reportGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.byStatus
	ch <- g.aged
	ch <- g.owed
	ch <- g.owedAge
}

func (g *reportGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := g.store.Stats(ctx)
	if err != nil {
		// No sample rather than a false zero, and no failed scrape either
		// (that would hide every other metric): /readyz reports the
		// database.
		return
	}
	// Every status is exported, zeros included, so that a dashboard shows
	// a flat line rather than no data.
	for _, s := range report.Statuses() {
		ch <- prometheus.MustNewConstMetric(g.byStatus, prometheus.GaugeValue, float64(st.ByStatus[string(s)]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(g.aged, prometheus.GaugeValue, st.OldestUnfinished.Seconds())
	owed, err := g.store.AttentionCounts(ctx, g.attention)
	if err != nil {
		return // no sample, as above
	}
	for _, r := range store.Reasons {
		ch <- prometheus.MustNewConstMetric(g.owed, prometheus.GaugeValue, float64(owed[r].Reports), string(r))
		ch <- prometheus.MustNewConstMetric(g.owedAge, prometheus.GaugeValue, owed[r].Oldest.Seconds(), string(r))
	}
}
