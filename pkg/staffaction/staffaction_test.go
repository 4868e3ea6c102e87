package staffaction

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"takedown/pkg/events"
	pb "takedown/pkg/proto/takedown/v1"
)

func TestOfBoundsWhatAnonymousClientsSend(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	r := httptest.NewRequest("GET", "/api/v1/reports/"+long+"?secret="+long+"&next=/"+long, nil)
	r.Method = strings.Repeat("M", 1000)

	a := Of(r, Anonymous(), ActionDenied, strings.Repeat("why ", 1000))
	if len(a.Method) > MaxMethod || len(a.Detail) > MaxDetail || len(a.Path) > 2*MaxPath+1 {
		t.Errorf("entry not bounded: method %d, path %d, detail %d bytes", len(a.Method), len(a.Path), len(a.Detail))
	}
	if strings.Contains(a.Path, "xxxx?") || !strings.Contains(a.Path, "?secret=&next=") {
		t.Errorf("anonymous query kept values or lost names: %q", a.Path)
	}

	staff := Of(httptest.NewRequest("GET", "/reports?before=abc&limit=5", nil), events.Staff("alice", "Alice"), "view", "")
	if staff.Path != "/reports?before=abc&limit=5" {
		t.Errorf("staff path = %q, want the query whole", staff.Path)
	}
	if got := cut("ab€€", 6); got != "ab…" {
		t.Errorf("cut on a rune boundary = %q", got)
	}
}

type sink struct {
	mu  sync.Mutex
	got []*pb.Envelope
}

func (s *sink) add(_ context.Context, env *pb.Envelope) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, env)
	return nil
}

func (s *sink) details() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.got {
		out = append(out, e.GetStaffAction().GetDetail())
	}
	return out
}

func TestDenialsAreRateLimitedPerClientAndAggregated(t *testing.T) {
	var s sink
	d := NewDenials(s.add, slog.New(slog.DiscardHandler))
	now := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	d.now = func() time.Time { return now }
	deny := func(addr string, actor *pb.Actor) {
		r := httptest.NewRequest("GET", "/api/v1/audit", nil)
		r.RemoteAddr = addr
		d.Record(r, actor, "401 Unauthorized")
	}

	for range 50 {
		deny("192.0.2.1:1000", nil)
	}
	// Another client is counted on its own, and an IPv6 client by its /64.
	for i := range 50 {
		deny(fmt.Sprintf("[2001:db8::%x]:443", i), nil)
	}
	deny("192.0.2.2:1000", nil)
	if got, want := len(s.got), 2*PerClient+1; got != want {
		t.Fatalf("%d entries after 101 refusals from 3 clients; want %d one by one", got, want)
	}

	d.Flush(t.Context(), false)
	if len(s.got) != 2*PerClient+1 {
		t.Fatalf("aggregates written before the window closed: %q", s.details())
	}
	now = now.Add(Window)
	d.Flush(t.Context(), false)
	agg := s.details()[2*PerClient+1:]
	want := map[string]bool{
		"45 more denied requests from 192.0.2.1 in the minute from 2026-01-02T03:04:00Z, not recorded one by one":     true,
		"45 more denied requests from 2001:db8::/64 in the minute from 2026-01-02T03:04:00Z, not recorded one by one": true,
	}
	if len(agg) != len(want) || !want[agg[0]] || !want[agg[1]] {
		t.Errorf("aggregates = %q; want one per client that had refusals left unrecorded", agg)
	}

	// A new window records again.
	deny("192.0.2.1:1000", nil)
	if n := len(s.got); n != 2*PerClient+1+2+1 {
		t.Errorf("%d entries; the new window's first refusal was not recorded", n)
	}
}

func TestDenialsFromManyClientsStayBounded(t *testing.T) {
	var s sink
	d := NewDenials(s.add, slog.New(slog.DiscardHandler))
	for i := range MaxClients + 500 {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = fmt.Sprintf("10.%d.%d.1:1", i/256, i%256)
		d.Record(r, nil, "no credentials")
	}
	if len(d.clients) > MaxClients+1 {
		t.Errorf("%d clients tracked; want at most %d and the overflow", len(d.clients), MaxClients)
	}
	if len(s.got) != MaxClients {
		t.Errorf("%d entries; want one per tracked client", len(s.got))
	}
	d.Flush(t.Context(), true)
	last := s.details()[len(s.got)-1]
	if !strings.HasPrefix(last, "500 more denied requests from clients beyond those tracked") {
		t.Errorf("last entry %q; want the overflow's aggregate", last)
	}
}
