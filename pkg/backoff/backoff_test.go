package backoff_test

import (
	"math"
	"testing"
	"time"

	"takedown/pkg/backoff"
)

func TestDelay(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failures  int
		base, max time.Duration
		want      time.Duration // the delay before jitter: results lie in [want/2, want]
	}{
		{"first retry waits base", 0, time.Second, time.Minute, time.Second},
		{"negative failures count as none", -3, time.Second, time.Minute, time.Second},
		{"doubles per failure", 1, time.Second, time.Minute, 2 * time.Second},
		{"doubles again", 3, time.Second, time.Minute, 8 * time.Second},
		{"capped at max", 6, time.Second, time.Minute, time.Minute},
		{"cap is not a power of two of base", 5, time.Second, 20 * time.Second, 20 * time.Second},
		{"many failures do not overflow", math.MaxInt, time.Second, time.Hour, time.Hour},
		{"huge max does not overflow", 100, time.Second, math.MaxInt64, math.MaxInt64},
		{"max below base caps base", 0, time.Minute, time.Second, time.Second},
		{"zero base waits nothing", 4, 0, time.Minute, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				got := backoff.Delay(tc.failures, tc.base, tc.max)
				if got < tc.want/2 || got > tc.want {
					t.Fatalf("Delay(%d, %v, %v) = %v, want within [%v, %v]", tc.failures, tc.base, tc.max, got, tc.want/2, tc.want)
				}
			}
		})
	}
}

// The jitter spreads retries over the whole range rather than a few values:
// jobs failing together must not retry together.
func TestDelayJitterSpreads(t *testing.T) {
	const n = 2000
	d := 10 * time.Second
	var below, above int
	seen := map[time.Duration]bool{}
	for range n {
		got := backoff.Delay(0, d, time.Minute)
		seen[got] = true
		if got < d*3/4 {
			below++
		} else {
			above++
		}
	}
	if len(seen) < n/2 {
		t.Errorf("%d distinct delays in %d draws; want them spread", len(seen), n)
	}
	// Uniform on [d/2, d]: about half on each side of 3d/4.
	if below < n/3 || above < n/3 {
		t.Errorf("%d below and %d above the middle of the range; want about half each", below, above)
	}
}

// For every failure count, the delay lies between half and all of base
// doubled per failure, capped at max.
func TestDelayBounds(t *testing.T) {
	base, max := 100*time.Millisecond, 10*time.Minute
	want := base
	for f := range 40 {
		for range 50 {
			if got := backoff.Delay(f, base, max); got < want/2 || got > want {
				t.Fatalf("Delay(%d, %v, %v) = %v, want within [%v, %v]", f, base, max, got, want/2, want)
			}
		}
		want = min(2*want, max)
	}
}
