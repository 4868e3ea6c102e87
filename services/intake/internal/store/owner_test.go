package store_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every statement on reports and files lives in this package (issue 19):
// no other package of intake names those tables in SQL outside its tests.
func TestOnlyTheStoreWritesSQLOnReportsAndFiles(t *testing.T) {
	sql := regexp.MustCompile(`(?i)\b(FROM|UPDATE|INTO|JOIN)\s+(reports|files)\b`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && filepath.Base(path) == "store" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := sql.FindString(line); m != "" {
				t.Errorf("%s:%d: %q: statements on reports and files belong in package store", path, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
