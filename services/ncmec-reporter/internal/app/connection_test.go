package app_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"takedown/pkg/events"
	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/testenv"
	"takedown/services/ncmec-reporter/internal/app"
)

// The reporter checks each environment's /status at start and every
// NCMEC_STATUS_INTERVAL: a refused credential and an environment that does
// not answer show in the metrics and are announced once each as
// ncmec.connection, readiness stays green, and the recovery is announced
// too.
func TestNCMECConnectionChecked(t *testing.T) {
	h := newHarness(t, harnessOpts{tune: func(cfg *app.Config) {
		cfg.StatusInterval = 100 * time.Millisecond
		cfg.NCMEC.CallTimeout = 2 * time.Second
	}})
	for sim, f := range map[*ncmecsim.Server]ncmecsim.Fault{
		h.sim:     {Endpoint: ncmec.EndpointStatus, Kind: ncmecsim.FaultCode, Code: ncmec.CodeAuthRequired, Times: -1},
		h.testSim: {Endpoint: ncmec.EndpointStatus, Kind: ncmecsim.FaultHTTP, Status: 503, Times: -1},
	} {
		if err := sim.Inject(f); err != nil {
			t.Fatal(err)
		}
	}
	r := h.start(app.Options{})

	want := map[string]string{"production": ncmec.ConnectionRefused, "test": ncmec.ConnectionUnreachable}
	announced := h.waitConnections(want)
	for env, c := range announced {
		if c.Detail == "" || c.CheckedAt == nil || strings.Contains(c.Detail, ncmecsim.TestPassword) || strings.Contains(c.Detail, "exttest-password") {
			t.Errorf("%s: %+v: want a detail without the password and a time", env, c)
		}
	}
	if !strings.Contains(announced["production"].Detail, "2000") || !strings.Contains(announced["test"].Detail, "503") {
		t.Errorf("details do not say what NCMEC answered: %q, %q", announced["production"].Detail, announced["test"].Detail)
	}

	// Many more checks fail the same way: the state did not change, so
	// nothing more is announced, and the metrics count every check.
	testenv.Eventually(t, 20*time.Second, "5 refused and 5 unreachable checks counted", func() bool {
		m := r.metrics(t)
		return counterAtLeast(m, `takedown_ncmec_reporter_ncmec_status_checks_total{environment="production",result="refused"}`, 5) &&
			counterAtLeast(m, `takedown_ncmec_reporter_ncmec_status_checks_total{environment="test",result="unreachable"}`, 5)
	})
	m := r.metrics(t)
	for _, line := range []string{
		`takedown_ncmec_reporter_ncmec_up{environment="production"} 0`,
		`takedown_ncmec_reporter_ncmec_up{environment="test"} 0`,
		`takedown_ncmec_reporter_ncmec_status_checks_total{environment="production",result="ok"} 0`,
	} {
		if !strings.Contains(m, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if n := len(h.connectionEvents()); n != 2 {
		t.Errorf("%d ncmec.connection events while nothing changed, want 2", n)
	}
	// Readiness is about what the reporter needs to record and resume
	// filings, not about NCMEC: a restart would not bring NCMEC back.
	if resp, err := http.Get(r.url + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz while NCMEC refuses: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	h.sim.ClearFaults()
	h.testSim.ClearFaults()
	h.waitConnections(map[string]string{"production": ncmec.ConnectionOK, "test": ncmec.ConnectionOK})
	testenv.Eventually(t, 10*time.Second, "both environments up", func() bool {
		m := r.metrics(t)
		return strings.Contains(m, `takedown_ncmec_reporter_ncmec_up{environment="production"} 1`+"\n") &&
			strings.Contains(m, `takedown_ncmec_reporter_ncmec_up{environment="test"} 1`+"\n")
	})
}

// connectionEvents returns the ncmec.connection events in stream order.
func (h *harness) connectionEvents() []*pb.NcmecConnection {
	h.t.Helper()
	var out []*pb.NcmecConnection
	for _, env := range h.eventsUnder("", events.Subject(events.NcmecConnection)) {
		out = append(out, env.GetNcmecConnection())
	}
	return out
}

// waitConnections waits until the latest ncmec.connection event of each
// environment says the wanted state, and returns those events.
func (h *harness) waitConnections(want map[string]string) map[string]*pb.NcmecConnection {
	h.t.Helper()
	latest := map[string]*pb.NcmecConnection{}
	testenv.Eventually(h.t, 20*time.Second, fmt.Sprintf("ncmec.connection %v", want), func() bool {
		for _, c := range h.connectionEvents() {
			latest[c.Environment] = c
		}
		for env, state := range want {
			if latest[env].GetState() != state {
				return false
			}
		}
		return true
	})
	return latest
}

func (r *running) metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// counterAtLeast reports whether the exposition text m has series at n or more.
func counterAtLeast(m, series string, n float64) bool {
	for _, line := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return err == nil && f >= n
		}
	}
	return false
}
