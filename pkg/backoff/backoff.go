// Package backoff spaces the retries of work that failed for a reason that
// may pass: exponential in the failures, capped, and jittered so that many
// jobs failing together (an outage) do not retry together.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay is the wait before the retry that follows failures failed attempts:
// base doubled once per failure up to max, then drawn uniformly from
// [d/2, d] so that retries spread out. Zero failures (or fewer) wait about
// base; a max below base caps base too.
func Delay(failures int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < failures && d < max; i++ {
		if d > max/2 { // doubling would pass max, or overflow
			d = max
			break
		}
		d *= 2
	}
	d = min(d, max)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
