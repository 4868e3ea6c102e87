// Package metrics names and registers a service's Prometheus metrics as
// takedown_<service>_<thing>_<unit> (DESIGN.md §7), so every package that
// measures something names it the same way.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Factory creates metrics for one service.
type Factory struct {
	Registry *prometheus.Registry
	service  string

	mu   sync.Mutex
	vecs map[string]prometheus.Collector // by name, so packages can share one metric
}

// New returns a factory with a fresh registry holding the Go and process
// collectors.
func New(service string) *Factory {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Factory{Registry: reg, service: service, vecs: map[string]prometheus.Collector{}}
}

// Service is the name metrics are prefixed with.
func (f *Factory) Service() string { return f.service }

func (f *Factory) name(thing string) string { return "takedown_" + f.service + "_" + thing }

// Counter registers a counter vector named takedown_<service>_<thing>.
// Asking twice for the same name returns the same vector.
func (f *Factory) Counter(thing, help string, labels ...string) *prometheus.CounterVec {
	return once(f, thing, func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: f.name(thing), Help: help}, labels)
	})
}

// once registers the collector made by mk under thing, or returns the one
// registered before.
func once[C prometheus.Collector](f *Factory, thing string, mk func() C) C {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.vecs[thing]; ok {
		return c.(C)
	}
	c := mk()
	f.Registry.MustRegister(c)
	f.vecs[thing] = c
	return c
}

// Gauge registers a gauge vector named takedown_<service>_<thing>.
func (f *Factory) Gauge(thing, help string, labels ...string) *prometheus.GaugeVec {
	return once(f, thing, func() *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: f.name(thing), Help: help}, labels)
	})
}

// queryTimeout bounds a QueryGauge's query, so that a database that hangs
// does not hang the scrape.
const queryTimeout = 2 * time.Second

// QueryGauge registers a gauge whose value query reads at scrape time
// (from a database or a broker), given two seconds. labels are as for
// GaugeFunc. When the query fails the gauge emits no sample: a false zero
// would tell a dashboard or an alert that all is well while the database is
// down, and a failed scrape would hide every other metric; /readyz reports
// the outage.
func (f *Factory) QueryGauge(thing, help string, labels prometheus.Labels, query func(context.Context) (float64, error)) {
	f.Registry.MustRegister(&queryGauge{desc: prometheus.NewDesc(f.name(thing), help, nil, labels), query: query})
}

type queryGauge struct {
	desc  *prometheus.Desc
	query func(context.Context) (float64, error)
}

func (g *queryGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *queryGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	v, err := g.query(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v)
}

// Histogram registers a latency histogram vector (seconds) named takedown_<service>_<thing>.
func (f *Factory) Histogram(thing, help string, labels ...string) *prometheus.HistogramVec {
	return once(f, thing, func() *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    f.name(thing),
			Help:    help,
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, labels)
	})
}

// Observer returns a function that records one external call's latency by
// endpoint and result, the shape the API clients in pkg accept as a hook.
func Observer(h *prometheus.HistogramVec) func(endpoint, result string, d time.Duration) {
	return func(endpoint, result string, d time.Duration) {
		h.WithLabelValues(endpoint, result).Observe(d.Seconds())
	}
}
