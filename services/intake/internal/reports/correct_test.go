package reports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"takedown/pkg/fault"
	"takedown/services/intake/internal/report"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// stored is a valid report with two files, as the store gives it back.
func stored(t *testing.T) *report.Report {
	t.Helper()
	in := &report.Input{
		IncidentTime: "2026-01-02T15:04:05Z", Platform: "example.com", URLs: []string{"https://example.com/a"},
		Uploader: report.Uploader{Username: "u1", Email: "u1@example.com", IP: "192.0.2.1"},
		Files:    []report.FileInput{{Name: "a.jpg"}, {Name: "b.jpg"}},
		Test:     true,
	}
	if err := in.Validate(testNow); err != nil {
		t.Fatalf("the fixture is invalid: %v", err)
	}
	r := &report.Report{Details: in.Details(), IncidentTime: in.IncidentAt()}
	for i, f := range in.Files {
		r.Files = append(r.Files, report.File{Index: i, Name: f.Name, FileInput: f})
	}
	return r
}

// A correction changes the fields it names under the submission's rules,
// and never whether the report is a test nor a file's original name.
func TestCorrectionRules(t *testing.T) {
	s := &Service{now: func() time.Time { return testNow }}
	for _, c := range []struct {
		name, json string
		field      string // of the Invalid fault; "" for none
		problems   bool   // the fault lists every field's problem
		check      func(*report.Report) error
	}{
		{name: "one field", json: `{"platform": "other.example"}`, check: func(r *report.Report) error {
			if r.Platform != "other.example" || len(r.URLs) != 1 || r.Uploader.Username != "u1" {
				return fmt.Errorf("platform %q, urls %v, username %q", r.Platform, r.URLs, r.Uploader.Username)
			}
			return nil
		}},
		{name: "test stays", json: `{"test": false}`, check: func(r *report.Report) error {
			if !r.Test {
				return errors.New("a correction made the test report a production one")
			}
			return nil
		}},
		{name: "file name stays", json: `{"files": [{"name": "renamed.jpg", "location_url": "https://example.com/f"}]}`, check: func(r *report.Report) error {
			if r.Files[0].FileInput.Name != "a.jpg" || r.Files[0].LocationURL != "https://example.com/f" {
				return fmt.Errorf("file 0: name %q, location %q", r.Files[0].FileInput.Name, r.Files[0].LocationURL)
			}
			return nil
		}},
		{name: "more files than stored", json: `{"files": [{}, {}, {}]}`, field: "files"},
		{name: "not an object", json: `[1]`, field: ""},
		{name: "broken rule", json: `{"uploader": {"email": "not an address"}}`, field: "uploader.email", problems: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := stored(t)
			err := s.correct(r, CorrectionJSON([]byte(c.json)))
			if c.check != nil {
				if err != nil {
					t.Fatal(err)
				}
				if err := c.check(r); err != nil {
					t.Error(err)
				}
				return
			}
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Kind != fault.Invalid || fe.Field != c.field || (len(fe.Fields) > 0) != c.problems {
				t.Fatalf("error %v (%#v), want Invalid naming %q, every problem listed: %v", err, fe, c.field, c.problems)
			}
		})
	}
}

// A body's read error is the adapter's fault when it is one, else a
// canceled or malformed upload, all Invalid but the adapter's own.
func TestBodyError(t *testing.T) {
	tooBig := fault.Errorf(fault.TooLarge, "request_too_large", "", "too large")
	for _, c := range []struct {
		err  error
		kind fault.Kind
		code string
	}{
		{fmt.Errorf("multipart: NextPart: %w", tooBig), fault.TooLarge, "request_too_large"},
		{context.Canceled, fault.Invalid, "canceled"},
		{io.ErrUnexpectedEOF, fault.Invalid, "malformed_body"},
	} {
		var fe *fault.Error
		if err := BodyError(c.err); !errors.As(err, &fe) || fe.Kind != c.kind || fe.CodeName() != c.code {
			t.Errorf("BodyError(%v) = %v, want %v %s", c.err, err, c.kind, c.code)
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	for k, ok := range map[string]bool{"": true, "abc-123": true, string(make([]byte, 256)): false, "with space": false, "tab\t": false, "é": false} {
		if err := checkIdempotencyKey(k); (err == nil) != ok || err != nil && !errors.Is(err, fault.Invalid) {
			t.Errorf("checkIdempotencyKey(%q) = %v, want ok %v", k, err, ok)
		}
	}
}
