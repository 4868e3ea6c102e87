package reports

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The use cases return error kinds (pkg/fault), never HTTP answers: the
// package imports neither net/http nor pkg/server (issue 19). Its tests
// may.
func TestNoHTTPInTheUseCases(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Imports {
			p, _ := strconv.Unquote(s.Path.Value)
			if p == "net/http" || p == "takedown/pkg/server" {
				t.Errorf("%s imports %s", name, p)
			}
		}
	}
}
