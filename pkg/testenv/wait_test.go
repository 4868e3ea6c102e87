package testenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fatalTB records the failure that WaitFor reports and stops it there.
type fatalTB struct {
	testing.TB
	msg string
}

type fatal struct{}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatal{})
}

func TestWaitForReportsTheLastError(t *testing.T) {
	tb := &fatalTB{TB: t}
	calls := 0
	func() {
		defer func() {
			if r := recover(); r != nil && r != (fatal{}) {
				panic(r)
			}
		}()
		WaitFor(tb, 20*time.Millisecond, func() error {
			calls++
			return fmt.Errorf("attempt %d: %w", calls, errors.New("not yet"))
		})
	}()
	if want := fmt.Sprintf("attempt %d: not yet", calls); !strings.HasSuffix(tb.msg, want) {
		t.Errorf("WaitFor failed with %q; want the last error, %q", tb.msg, want)
	}
	if calls < 2 {
		t.Errorf("check called %d times; want it retried until the timeout", calls)
	}
}

func TestWaitForReturnsOnSuccess(t *testing.T) {
	calls := 0
	WaitFor(t, 10*time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("check called %d times, want 3", calls)
	}
}
