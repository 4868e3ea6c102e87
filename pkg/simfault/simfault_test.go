package simfault

import (
	"slices"
	"testing"
	"time"
)

type fault struct {
	name, endpoint string
	times, after   int
}

func (f fault) Applies(ep string) bool       { return f.endpoint == "" || f.endpoint == ep }
func (f fault) Schedule() (times, after int) { return f.times, f.after }

func TestTake(t *testing.T) {
	tests := []struct {
		name   string
		faults []fault
		calls  []string
		want   []string // the fault fired by each call, "" for none
		seen   []int    // each fault's Seen at the end
	}{
		{"once by default", []fault{{name: "a", times: 1}}, []string{"x", "x"}, []string{"a", ""}, []int{1}},
		{"after lets calls through", []fault{{name: "a", times: 2, after: 1}}, []string{"x", "x", "x", "x"}, []string{"", "a", "a", ""}, []int{3}},
		{"negative times is every call", []fault{{name: "a", times: -1}}, []string{"x", "x", "x"}, []string{"a", "a", "a"}, []int{3}},
		{"other endpoints pass", []fault{{name: "a", endpoint: "up", times: 1}}, []string{"down", "up", "down"}, []string{"", "a", ""}, []int{1}},
		{"first due fires, every live one counts", []fault{{name: "a", times: 1}, {name: "b", times: 1}}, []string{"x", "x", "x"}, []string{"a", "b", ""}, []int{1, 2}},
		{"a fault waiting for its turn lets a later one fire", []fault{{name: "a", times: 1, after: 1}, {name: "b", times: 1}}, []string{"x", "x"}, []string{"b", "a"}, []int{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Set[fault]
			for i, f := range tt.faults {
				if id := s.Add(f); id != i+1 {
					t.Fatalf("id %d, want %d", id, i+1)
				}
			}
			var got []string
			for _, ep := range tt.calls {
				e, ok := s.Take(ep)
				if ok != (e.Fault.name != "") {
					t.Fatalf("fired %v with %+v", ok, e)
				}
				got = append(got, e.Fault.name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("fired %q, want %q", got, tt.want)
			}
			var seen []int
			for _, e := range s.List() {
				seen = append(seen, e.Seen)
			}
			if !slices.Equal(seen, tt.seen) {
				t.Errorf("seen %v, want %v", seen, tt.seen)
			}
		})
	}
}

func TestClearAndLatency(t *testing.T) {
	var s Set[fault]
	s.Add(fault{name: "a", times: -1})
	s.Clear()
	if _, ok := s.Take("x"); ok || len(s.List()) != 0 {
		t.Error("a cleared fault fired or is listed")
	}
	if s.Add(fault{}) != 2 {
		t.Error("ids are reused after Clear")
	}
	s.SetLatency(time.Second)
	if s.Latency() != time.Second {
		t.Errorf("latency %v", s.Latency())
	}
}
