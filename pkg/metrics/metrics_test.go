package metrics_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"takedown/pkg/metrics"
)

func TestQueryGauge(t *testing.T) {
	f := metrics.New("test")
	down := errors.New("database down")
	f.QueryGauge("up_rows", "Rows of a database that answers.", nil, func(ctx context.Context) (float64, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the query has no deadline: a hung database would hang the scrape")
		}
		return 7, nil
	})
	f.QueryGauge("down_rows", "Rows of a database that does not answer.", nil, func(context.Context) (float64, error) {
		return 0, down
	})
	f.QueryGauge("pending", "One gauge of a name per consumer.", prometheus.Labels{"consumer": "a"}, func(context.Context) (float64, error) {
		return 3, nil
	})

	// A failing query must not fail the scrape: that would hide every
	// other metric.
	families, err := f.Registry.Gather()
	if err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	got := map[string][]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = append(got[mf.GetName()], m.GetGauge().GetValue())
		}
	}
	if v := got["takedown_test_up_rows"]; len(v) != 1 || v[0] != 7 {
		t.Errorf("up_rows = %v, want [7]", v)
	}
	if v, ok := got["takedown_test_down_rows"]; ok {
		t.Errorf("a failing query emitted %v; want no sample rather than a false value", v)
	}
	if v := got["takedown_test_pending"]; len(v) != 1 || v[0] != 3 {
		t.Errorf("pending = %v, want [3]", v)
	}
}
