package testenv

import (
	"testing"
	"time"
)

// Eventually calls cond until it returns true, failing the test with msg
// when it has not within timeout. Tests wait on conditions, never on sleeps.
func Eventually(tb testing.TB, timeout time.Duration, msg string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %s", timeout, msg)
		}
		time.Sleep(wait)
	}
}
