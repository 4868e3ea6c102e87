// Package testenv gives tests real servers (PostgreSQL, NATS JetStream, S3)
// and the reference data in ../shared, each isolated per test so that tests
// run in parallel.
package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"takedown/pkg/localstack"
)

// RepoRoot is the repository's root (see localstack.RepoRoot).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := localstack.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
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
