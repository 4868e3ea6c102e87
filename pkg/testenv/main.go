package testenv

import (
	"os"
	"sync"
	"testing"
)

var (
	exitMu    sync.Mutex
	exitHooks []func()
)

// atExit registers f to run when Main returns from the tests: stopping the
// servers the harness started for the whole test binary and removing their
// directories. go test has no global teardown, so without Main they are only
// killed with the test binary (see S3) and their temporary directories stay.
func atExit(f func()) {
	exitMu.Lock()
	defer exitMu.Unlock()
	exitHooks = append(exitHooks, f)
}

// Main runs the tests and then stops every server the harness started for
// the test binary. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	exitMu.Lock()
	hooks := exitHooks
	exitHooks = nil
	exitMu.Unlock()
	for i := len(hooks) - 1; i >= 0; i-- {
		hooks[i]()
	}
	os.Exit(code)
}
