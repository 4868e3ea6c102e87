package testenv

import (
	"os"
	"strconv"
	"testing"
)

// EnvInt reads a positive number a test or benchmark takes from the
// environment (sizes such as TAKEDOWN_BENCH_REPORTS), def when unset; a
// value that is not one fails the test rather than running a different
// size than asked.
func EnvInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
