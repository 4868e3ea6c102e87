package localstack

import (
	"errors"
	"os"
	"path/filepath"
)

// RepoRoot is the repository's root: the directory of the go.mod nearest
// above the working directory (a test runs in its package's directory, and
// the repository is one module, so the nearest go.mod is the root's).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.mod above " + dir + ": run from inside the repository")
		}
	}
}
