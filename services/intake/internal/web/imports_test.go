package web

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"
)

// The pages are an adapter beside the JSON API, both over package reports:
// web must not reach the use cases through httpapi (issue 19).
func TestWebDoesNotImportHTTPAPI(t *testing.T) {
	for _, imp := range imports(t, ".") {
		if imp == "takedown/services/intake/internal/httpapi" {
			t.Errorf("web imports %s; call package reports instead", imp)
		}
	}
}

// imports are the import paths of the Go files (tests included) of dir.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	var out []string
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Imports {
			p, _ := strconv.Unquote(s.Path.Value)
			out = append(out, p)
		}
	}
	return out
}
