package salesforce_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"takedown/pkg/salesforce"
)

// FuzzErrorAnswer: whatever body Salesforce (or a gateway before it) sends
// with a failing status, the caller gets errors it can classify: at least
// one *salesforce.Error, each with a code (the case-writer's decisions and
// the metrics' result label are made from it) and the answer's status.
// The seeds (testdata/fuzz/FuzzErrorAnswer) are the error bodies of the
// REST API guide and broken variants; make fuzz explores further.
func FuzzErrorAnswer(f *testing.F) {
	f.Fuzz(func(t *testing.T, st uint16, body []byte) {
		status := 301 + int(st)%299 // failing statuses; 300 is the multiple-matches answer
		err := salesforce.SubResponse{HTTPStatusCode: status, Body: body}.Err()
		var first *salesforce.Error
		if !errors.As(err, &first) {
			t.Fatalf("status %d: %v (%T), want a *salesforce.Error", status, err, err)
		}
		var es salesforce.Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("status %d: %v, want salesforce.Errors", status, err)
		}
		for i, e := range es {
			if e == nil {
				t.Fatalf("error %d of %v is nil", i, es)
			}
			if e.Code == "" {
				t.Errorf("error %d of %q has no code: %#v", i, body, e)
			}
			if e.HTTPStatus != status {
				t.Errorf("error %d names HTTP %d, the answer was %d", i, e.HTTPStatus, status)
			}
		}
		if status >= 500 && !salesforce.IsRetryable(err) {
			t.Errorf("HTTP %d not retryable: %v", status, err)
		}
		if status == http.StatusServiceUnavailable && !salesforce.IsRetryable(err) {
			t.Errorf("503 not retryable: %v", err)
		}
		if _, uerr := (salesforce.SubResponse{HTTPStatusCode: status, Body: body}).UpsertResult(); !errors.As(uerr, &first) {
			t.Errorf("upsert answered %d: %v, want a *salesforce.Error", status, uerr)
		}
	})
}

// Found by FuzzErrorAnswer: error objects without a code came back with an
// empty one, which no caller can classify and the metrics counted as "".
func TestErrorWithoutCodeGetsTheStatusCode(t *testing.T) {
	for _, tc := range []struct {
		status    int
		body      string
		wantCodes []string
	}{
		{400, `[{}]`, []string{"HTTP_400"}},
		{400, `[null]`, []string{"HTTP_400"}},
		{503, `[{"message": "down"}]`, []string{salesforce.CodeServerUnavailable}},
		{400, `[{"errorCode": "STRING_TOO_LONG"}, {"message": "and this"}]`, []string{salesforce.CodeStringTooLong, "HTTP_400"}},
	} {
		err := salesforce.SubResponse{HTTPStatusCode: tc.status, Body: []byte(tc.body)}.Err()
		var es salesforce.Errors
		if !errors.As(err, &es) {
			t.Fatalf("%s: %v, want salesforce.Errors", tc.body, err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Code)
		}
		if !slices.Equal(got, tc.wantCodes) {
			t.Errorf("HTTP %d %s: codes %q, want %q", tc.status, tc.body, got, tc.wantCodes)
		}
	}
}
