// Package simfault is the fault engine the API simulators share (ncmecsim,
// sfsim): the faults injected into a simulator, matched against each call
// and counted, and the delay every call gets. What a fault does to a call,
// and which faults and endpoints exist, is each simulator's own.
package simfault

import (
	"sync"
	"time"
)

// Fault is what the engine needs of a simulator's fault.
type Fault interface {
	// Applies reports whether calls to endpoint count against the fault.
	Applies(endpoint string) bool
	// Schedule is when it fires: it lets after matching calls through,
	// then hits the next times (negative: every call until cleared).
	Schedule() (times, after int)
}

// Entry is an injected fault with its id and counters.
type Entry[F Fault] struct {
	ID    int
	Fault F
	Seen  int // matching calls while it was not spent
	Fired int // calls it hit
}

// Set is a simulator's injected faults and latency; the zero value is
// empty and ready. Faults are consulted in the order injected: every
// matching fault that is not spent counts every call, and the first one due
// fires. A spent fault counts nothing more, as if cleared.
type Set[F Fault] struct {
	mu      sync.Mutex
	entries []*Entry[F]
	lastID  int
	latency time.Duration
}

// Add injects f and returns its id, counting from 1.
func (s *Set[F]) Add(f F) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastID++
	s.entries = append(s.entries, &Entry[F]{ID: s.lastID, Fault: f})
	return s.lastID
}

// List returns the injected faults with their counters.
func (s *Set[F]) List() []Entry[F] {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry[F], len(s.entries))
	for i, e := range s.entries {
		out[i] = *e
	}
	return out
}

// Clear removes every fault.
func (s *Set[F]) Clear() {
	s.mu.Lock()
	s.entries = nil
	s.mu.Unlock()
}

// Take counts a call to endpoint against the faults and returns the one
// that fires, if any.
func (s *Set[F]) Take(endpoint string) (Entry[F], bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fire *Entry[F]
	for _, e := range s.entries {
		if !e.Fault.Applies(endpoint) {
			continue
		}
		times, after := e.Fault.Schedule()
		if times > 0 && e.Fired >= times {
			continue
		}
		e.Seen++
		if e.Seen <= after || fire != nil {
			continue
		}
		e.Fired++
		c := *e
		fire = &c
	}
	if fire == nil {
		return Entry[F]{}, false
	}
	return *fire, true
}

// SetLatency changes the delay every call gets.
func (s *Set[F]) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// Latency is the delay every call gets.
func (s *Set[F]) Latency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency
}
