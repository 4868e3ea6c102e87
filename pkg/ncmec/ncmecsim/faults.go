package ncmecsim

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"takedown/pkg/ncmec"
	"takedown/pkg/simfault"
)

// Fault kinds.
const (
	FaultCode         = "code"          // answer HTTP 200 with responseCode Code; no effect
	FaultHTTP         = "http"          // answer HTTP Status (default 503); no effect
	FaultDrop         = "drop"          // close the connection before doing anything
	FaultSlow         = "slow"          // wait DelayMS, then handle the call normally
	FaultLostResponse = "lost_response" // handle the call (it takes effect), then close the connection
	FaultRateLimit    = "rate_limit"    // answer HTTP 429 with Retry-After; no effect
)

// defaultSlow is the delay of a slow fault without DelayMS: longer than any
// sensible per-call timeout of a test client.
const defaultSlow = 10 * time.Second

// Fault is one failure to inject, as posted to /_sim/faults.
type Fault struct {
	// Endpoint is "status", "xsd", "submit", "upload", "fileinfo",
	// "finish", "retract", or "" / "*" for every endpoint.
	Endpoint string `json:"endpoint"`
	Kind     string `json:"kind"`
	Code     int    `json:"code,omitempty"`   // for kind "code"
	Status   int    `json:"status,omitempty"` // for kind "http"
	// Times is how many calls fail: 0 means 1, negative means every call
	// until the faults are cleared.
	Times int `json:"times,omitempty"`
	// After lets that many matching calls pass before the fault fires.
	After   int `json:"after,omitempty"`
	DelayMS int `json:"delay_ms,omitempty"` // for kind "slow"
}

// FaultStatus is an injected fault with its counters.
type FaultStatus struct {
	Fault
	Seen  int `json:"seen"`  // matching calls so far
	Fired int `json:"fired"` // calls it failed
}

var endpoints = []string{
	ncmec.EndpointStatus, ncmec.EndpointXSD, ncmec.EndpointSubmit, ncmec.EndpointUpload,
	ncmec.EndpointFileInfo, ncmec.EndpointFinish, ncmec.EndpointRetract,
}

// Inject adds a fault. Faults are consulted in the order injected; every
// matching fault counts every call, and the first one due fires.
func (s *Server) Inject(f Fault) error {
	if f.Endpoint == "*" {
		f.Endpoint = ""
	}
	if f.Endpoint != "" && !slices.Contains(endpoints, f.Endpoint) {
		return fmt.Errorf("ncmecsim: unknown endpoint %q", f.Endpoint)
	}
	switch f.Kind {
	case FaultCode:
		if f.Code == 0 {
			return fmt.Errorf("ncmecsim: fault kind code needs a non-zero code")
		}
	case FaultHTTP:
		if f.Status == 0 {
			f.Status = http.StatusServiceUnavailable
		}
		if f.Status < 400 || f.Status > 599 {
			return fmt.Errorf("ncmecsim: fault status %d is not an HTTP error", f.Status)
		}
	case FaultSlow:
		if f.DelayMS <= 0 {
			f.DelayMS = int(defaultSlow / time.Millisecond)
		}
	case FaultDrop, FaultLostResponse, FaultRateLimit:
	default:
		return fmt.Errorf("ncmecsim: unknown fault kind %q (want code, http, drop, slow, lost_response or rate_limit)", f.Kind)
	}
	if f.Times == 0 {
		f.Times = 1
	}
	if f.After < 0 {
		return fmt.Errorf("ncmecsim: after must not be negative")
	}
	s.faults.Add(f)
	return nil
}

// Applies reports whether calls to endpoint ep count against the fault.
func (f Fault) Applies(ep string) bool { return f.Endpoint == "" || f.Endpoint == ep }

// Schedule is when the fault fires: after After calls, Times of them.
func (f Fault) Schedule() (times, after int) { return f.Times, f.After }

var _ simfault.Fault = Fault{}

// Faults lists the injected faults with their counters.
func (s *Server) Faults() []FaultStatus {
	list := s.faults.List()
	out := make([]FaultStatus, 0, len(list))
	for _, e := range list {
		out = append(out, FaultStatus{Fault: e.Fault, Seen: e.Seen, Fired: e.Fired})
	}
	return out
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() { s.faults.Clear() }

// SetLatency changes the delay applied to every API call.
func (s *Server) SetLatency(d time.Duration) { s.faults.SetLatency(d) }
