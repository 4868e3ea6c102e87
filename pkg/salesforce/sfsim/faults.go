package sfsim

import (
	"fmt"
	"net/http"
	"slices"

	"takedown/pkg/simfault"
)

// Fault kinds.
const (
	// KindExpireToken revokes every access token issued so far, so this
	// call and later ones get 401 INVALID_SESSION_ID until the client
	// authenticates again.
	KindExpireToken = "expire_token"
	// KindRateLimit answers 403 REQUEST_LIMIT_EXCEEDED (token endpoint:
	// 400 rate_limit_exceeded).
	KindRateLimit = "rate_limit"
	// KindLock fails the call (inside a composite: its first write) with
	// 400 UNABLE_TO_LOCK_ROW; nothing is written.
	KindLock = "lock"
	// KindHTTP answers Status (default 503) without doing anything.
	KindHTTP = "http"
	// KindSlow waits DelayMS, then serves the call normally.
	KindSlow = "slow"
	// KindDrop closes the connection without doing anything or answering.
	KindDrop = "drop"
	// KindLostResponse does the work (commits), then closes the connection
	// without answering: "done but the answer was lost".
	KindLostResponse = "lost_response"
)

// Endpoints a fault can target ("*" matches all of them).
var faultEndpoints = []string{"*", "token", "composite", "upsert", "create", "update", "delete", "get", "describe", "query", "limits", "sobjects", "resources"}

var faultKinds = []string{KindExpireToken, KindRateLimit, KindLock, KindHTTP, KindSlow, KindDrop, KindLostResponse}

// Fault is one failure to inject, as JSON at POST /_sim/faults or through
// Server.Inject. It lets After matching calls through, then hits the next
// Times calls (default 1; -1 for every call).
type Fault struct {
	ID       int    `json:"id"`
	Endpoint string `json:"endpoint"`
	Kind     string `json:"kind"`
	Status   int    `json:"status,omitempty"`
	Times    int    `json:"times,omitempty"`
	After    int    `json:"after,omitempty"`
	DelayMS  int    `json:"delay_ms,omitempty"`
	// Seen counts the calls the fault matched, Fired those it hit.
	Seen  int `json:"seen"`
	Fired int `json:"fired"`
}

func (f *Fault) normalize() error {
	if !slices.Contains(faultEndpoints, f.Endpoint) {
		return fmt.Errorf("endpoint %q is not one of %v", f.Endpoint, faultEndpoints)
	}
	if !slices.Contains(faultKinds, f.Kind) {
		return fmt.Errorf("kind %q is not one of %v", f.Kind, faultKinds)
	}
	if f.Endpoint == "token" && (f.Kind == KindExpireToken || f.Kind == KindLock) {
		return fmt.Errorf("kind %s does not apply to the token endpoint", f.Kind)
	}
	if f.Kind == KindHTTP {
		if f.Status == 0 {
			f.Status = http.StatusServiceUnavailable
		}
		if f.Status < 400 || f.Status > 599 {
			return fmt.Errorf("status %d is not an HTTP error status", f.Status)
		}
	}
	if f.Kind == KindSlow && f.DelayMS <= 0 {
		f.DelayMS = 1000
	}
	if f.Times == 0 {
		f.Times = 1
	}
	if f.Times < -1 || f.After < 0 {
		return fmt.Errorf("times must be positive or -1 and after not negative")
	}
	f.Seen, f.Fired = 0, 0
	return nil
}

// Applies reports whether the fault targets this endpoint; "*" skips the
// kinds that mean nothing at the token endpoint.
func (f Fault) Applies(endpoint string) bool {
	if f.Endpoint == "*" {
		return endpoint != "token" || (f.Kind != KindExpireToken && f.Kind != KindLock)
	}
	return f.Endpoint == endpoint
}

// Schedule is when the fault fires: after After calls, Times of them.
func (f Fault) Schedule() (times, after int) { return f.Times, f.After }

var _ simfault.Fault = Fault{}

// Inject adds a fault and returns it with its id.
func (s *Server) Inject(f Fault) (Fault, error) {
	if err := f.normalize(); err != nil {
		return Fault{}, fmt.Errorf("sfsim: inject fault: %w", err)
	}
	f.ID = s.faults.Add(f)
	return f, nil
}

// Faults lists the injected faults with their counters.
func (s *Server) Faults() []Fault {
	list := s.faults.List()
	out := make([]Fault, 0, len(list))
	for _, e := range list {
		out = append(out, counted(e))
	}
	return out
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() { s.faults.Clear() }

// takeFault counts a call to endpoint against every fault that targets it
// and returns the first one that fires, if any.
func (s *Server) takeFault(endpoint string) *Fault {
	e, ok := s.faults.Take(endpoint)
	if !ok {
		return nil
	}
	f := counted(e)
	return &f
}

// counted is the fault as it is listed: its id and counters are the
// engine's.
func counted(e simfault.Entry[Fault]) Fault {
	f := e.Fault
	f.ID, f.Seen, f.Fired = e.ID, e.Seen, e.Fired
	return f
}
