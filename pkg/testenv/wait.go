package testenv

import (
	"errors"
	"testing"
	"time"
)

// WaitFor calls check until it returns nil, failing the test with check's
// last error when it has not within timeout: a wait that times out says
// what it was still waiting for, as nats-server's checkFor does. Tests wait
// on conditions, never on sleeps.
func WaitFor(tb testing.TB, timeout time.Duration, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(wait)
	}
}

// Eventually is WaitFor for a condition without an error to tell: msg says
// what was awaited.
func Eventually(tb testing.TB, timeout time.Duration, msg string, cond func() bool) {
	tb.Helper()
	WaitFor(tb, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New(msg)
	})
}
