// Package testenv gives tests real servers (PostgreSQL, NATS JetStream, S3)
// and the reference data in ../shared, each isolated per test so that tests
// run in parallel.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot is the directory that holds go.work, found by walking up from the
// working directory (a test runs in its package's directory).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("getwd: %v", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			tb.Fatalf("no go.work above %s", dir)
		}
	}
}

// SharedDir returns the path of sub (e.g. "ncmec") inside the shared
// reference data: $TAKEDOWN_SHARED, else ../shared beside the repository.
// The data is never copied into the repository; where it is absent the test
// is skipped with a message that says how to get it.
func SharedDir(tb testing.TB, sub string) string {
	tb.Helper()
	base := os.Getenv("TAKEDOWN_SHARED")
	if base == "" {
		base = filepath.Join(RepoRoot(tb), "..", "shared")
	}
	p := filepath.Join(base, sub)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("reference data %s not found: place the project's shared folder beside the repository (../shared) or set TAKEDOWN_SHARED to it", p)
	}
	return p
}
