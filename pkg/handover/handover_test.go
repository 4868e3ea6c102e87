package handover_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"takedown/pkg/handover"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T) (*handover.Store, *testenv.NATS) {
	t.Helper()
	n := testenv.StartNATS(t)
	nc, js, err := stream.Connect(n.URL(), "handover-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return handover.New(js, handover.Config{}), n
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	id := "0198c7c0-0000-7000-8000-000000000001"

	if st, err := s.Get(ctx, id); err != nil || st != handover.None {
		t.Fatalf("unknown report: %q, %v", st, err)
	}
	steps := []struct {
		from []handover.State
		to   handover.State
		ok   bool
		cur  handover.State
	}{
		{[]handover.State{handover.None}, handover.Filing, true, handover.Filing},
		{[]handover.State{handover.None}, handover.Filing, false, handover.Filing}, // already there
		{[]handover.State{handover.Filing}, handover.Finishing, true, handover.Finishing},
		{[]handover.State{handover.Filing}, handover.Retracting, false, handover.Finishing}, // 409 for the retraction service
		{[]handover.State{handover.Finishing}, handover.Finished, true, handover.Finished},
	}
	for i, st := range steps {
		ok, cur, err := s.Claim(ctx, id, st.from, st.to)
		if err != nil || ok != st.ok || cur != st.cur {
			t.Fatalf("step %d: %v→%s: ok=%v cur=%q err=%v; want ok=%v cur=%q", i, st.from, st.to, ok, cur, err, st.ok, st.cur)
		}
	}
	if _, _, err := s.Claim(ctx, id, []handover.State{handover.Finished}, "bogus"); err == nil {
		t.Fatal("an unknown state was accepted")
	}
}

// Finishing and retracting race from "filing" many times: exactly one wins
// each race, and the loser sees the winner's state.
func TestFinishAndRetractRace(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	for i := range 20 {
		id := "race-" + string(rune('a'+i))
		if ok, _, err := s.Claim(ctx, id, []handover.State{handover.None}, handover.Filing); !ok || err != nil {
			t.Fatalf("filing: %v %v", ok, err)
		}
		var wg sync.WaitGroup
		type result struct {
			ok  bool
			cur handover.State
			err error
		}
		var fin, ret result
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			fin.ok, fin.cur, fin.err = s.Claim(ctx, id, []handover.State{handover.Filing}, handover.Finishing)
		}()
		go func() {
			defer wg.Done()
			<-start
			ret.ok, ret.cur, ret.err = s.Claim(ctx, id, []handover.State{handover.Filing}, handover.Retracting)
		}()
		close(start)
		wg.Wait()
		if fin.err != nil || ret.err != nil {
			t.Fatalf("errors: %v %v", fin.err, ret.err)
		}
		if fin.ok == ret.ok {
			t.Fatalf("race %d: finishing ok=%v, retracting ok=%v; want exactly one winner", i, fin.ok, ret.ok)
		}
		if fin.ok && ret.cur != handover.Finishing || ret.ok && fin.cur != handover.Retracting {
			t.Fatalf("race %d: loser saw %q / %q", i, fin.cur, ret.cur)
		}
		final, err := s.Get(ctx, id)
		if err != nil || (final != handover.Finishing && final != handover.Retracting) {
			t.Fatalf("race %d: final %q %v", i, final, err)
		}
	}
}

// With NATS down Claim fails (nobody may act), and works again once NATS is
// back, the state intact.
func TestOutage(t *testing.T) {
	t.Parallel()
	s, n := open(t)
	ctx := context.Background()
	id := "outage"
	if ok, _, err := s.Claim(ctx, id, []handover.State{handover.None}, handover.Filing); !ok || err != nil {
		t.Fatalf("filing: %v %v", ok, err)
	}
	n.Stop()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	ok, _, err := s.Claim(short, id, []handover.State{handover.Filing}, handover.Finishing)
	cancel()
	if err == nil || ok {
		t.Fatalf("claim with NATS down: ok=%v err=%v; want an error", ok, err)
	}
	n.Start()
	testenv.Eventually(t, 10*time.Second, "claim after NATS is back", func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		ok, _, err := s.Claim(c, id, []handover.State{handover.Filing}, handover.Finishing)
		return ok && err == nil
	})
}
