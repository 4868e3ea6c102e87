package filing_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"takedown/pkg/filing"
	"takedown/pkg/stream"
	"takedown/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func openHandover(t *testing.T) (*filing.Handover, *testenv.NATS) {
	t.Helper()
	n := testenv.StartNATS(t)
	nc, js, err := stream.Connect(n.URL(), "handover-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return filing.NewHandover(js, filing.HandoverConfig{}), n
}

func TestHandoverFinish(t *testing.T) {
	t.Parallel()
	h, _ := openHandover(t)
	ctx := context.Background()
	id := "0198c7c0-0000-7000-8000-000000000001"
	if err := h.Opened(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if begun, err := h.RetractionBegun(ctx, id, 1); begun || err != nil {
		t.Fatalf("RetractionBegun = %v, %v", begun, err)
	}
	if err := h.ClaimFinish(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	// A reporter resuming after a crash holds its claim still.
	if err := h.ClaimFinish(ctx, id, 1); err != nil {
		t.Fatalf("claim again: %v", err)
	}
	if got, err := h.ClaimRetract(ctx, id, 1, false); got != filing.FinishInProgress || err != nil {
		t.Fatalf("ClaimRetract while finishing = %v, %v", got, err)
	}
	if err := h.Finished(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if got, err := h.ClaimRetract(ctx, id, 1, true); got != filing.FinishedFirst || err != nil {
		t.Fatalf("ClaimRetract after finish = %v, %v", got, err)
	}
	// The next filing of the same report has a claim of its own.
	if got, err := h.ClaimRetract(ctx, id, 2, false); got != filing.RetractNow || err != nil {
		t.Fatalf("ClaimRetract of filing 2 = %v, %v", got, err)
	}
}

func TestHandoverRetract(t *testing.T) {
	t.Parallel()
	h, _ := openHandover(t)
	ctx := context.Background()
	id := "r"
	if err := h.Opened(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if got, err := h.ClaimRetract(ctx, id, 1, false); got != filing.RetractNow || err != nil {
		t.Fatalf("ClaimRetract = %v, %v", got, err)
	}
	if begun, err := h.RetractionBegun(ctx, id, 1); !begun || err != nil {
		t.Fatalf("RetractionBegun = %v, %v", begun, err)
	}
	if err := h.ClaimFinish(ctx, id, 1); !errors.Is(err, filing.ErrRetracting) {
		t.Fatalf("ClaimFinish while retracting = %v", err)
	}
	if err := h.Retracted(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if got, err := h.ClaimRetract(ctx, id, 1, false); got != filing.RetractedBefore || err != nil {
		t.Fatalf("ClaimRetract again = %v, %v", got, err)
	}

	// A finish refused by NCMEC leaves "finishing"; once the failure is
	// published the retraction takes it over, and a 5102 settles it finished.
	if err := h.ClaimFinish(ctx, "f", 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.ClaimRetract(ctx, "f", 1, true); got != filing.RetractNow {
		t.Fatalf("ClaimRetract after a failed finish = %v", got)
	}
	if err := h.FinishedAtNCMEC(ctx, "f", 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.ClaimRetract(ctx, "f", 1, true); got != filing.FinishedFirst {
		t.Fatalf("after 5102 = %v", got)
	}
}

// Finishing and retracting race many times: exactly one wins each race.
func TestHandoverRace(t *testing.T) {
	t.Parallel()
	h, _ := openHandover(t)
	ctx := context.Background()
	for i := range 20 {
		id := fmt.Sprintf("race-%d", i)
		if err := h.Opened(ctx, id, 1); err != nil {
			t.Fatal(err)
		}
		var (
			wg      sync.WaitGroup
			finErr  error
			ret     filing.Retraction
			retErr  error
			started = make(chan struct{})
		)
		wg.Add(2)
		go func() { defer wg.Done(); <-started; finErr = h.ClaimFinish(ctx, id, 1) }()
		go func() { defer wg.Done(); <-started; ret, retErr = h.ClaimRetract(ctx, id, 1, false) }()
		close(started)
		wg.Wait()
		if retErr != nil || (finErr != nil && !errors.Is(finErr, filing.ErrRetracting)) {
			t.Fatalf("errors: %v %v", finErr, retErr)
		}
		finWon, retWon := finErr == nil, ret == filing.RetractNow
		if finWon == retWon {
			t.Fatalf("race %d: finish won=%v, retraction won=%v; want exactly one", i, finWon, retWon)
		}
		if finWon && ret != filing.FinishInProgress {
			t.Fatalf("race %d: the retraction saw %v", i, ret)
		}
	}
}

// With NATS down a claim fails (nobody may act), and works again once NATS
// is back, the claim intact.
func TestHandoverOutage(t *testing.T) {
	t.Parallel()
	h, n := openHandover(t)
	ctx := context.Background()
	if err := h.Opened(ctx, "outage", 1); err != nil {
		t.Fatal(err)
	}
	n.Stop()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err := h.ClaimFinish(short, "outage", 1)
	cancel()
	if err == nil {
		t.Fatal("claim with NATS down succeeded")
	}
	n.Start()
	testenv.Eventually(t, 10*time.Second, "claim after NATS is back", func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return h.ClaimFinish(c, "outage", 1) == nil
	})
	if got, _ := h.ClaimRetract(ctx, "outage", 1, false); got != filing.FinishInProgress {
		t.Fatalf("after the outage: %v", got)
	}
}
