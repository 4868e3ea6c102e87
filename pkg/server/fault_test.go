package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"takedown/pkg/fault"
)

// TestWriteErrorMapsKinds is the one table of how a kind of failure
// answers over HTTP.
func TestWriteErrorMapsKinds(t *testing.T) {
	for _, tc := range []struct {
		err        error
		status     int
		code       string
		field      string
		retryAfter string
	}{
		{fault.Errorf(fault.Invalid, "", "reason", "give a reason"), 400, "invalid", "reason", ""},
		{fault.Errorf(fault.Invalid, "invalid_file_name", "files[0].name", "bad"), 400, "invalid_file_name", "files[0].name", ""},
		{fault.Errorf(fault.NotFound, "", "", "no report"), 404, "not_found", "", ""},
		{fault.Errorf(fault.Conflict, "held", "", "under hold"), 409, "held", "", ""},
		{fault.Errorf(fault.Finished, "", "", "finished"), 409, "finished", "", ""},
		{fault.Errorf(fault.SecondPerson, "", "", "another person"), 403, "second_person_required", "", ""},
		{fault.Errorf(fault.Forbidden, "", "", "no"), 403, "forbidden", "", ""},
		{fault.Errorf(fault.TooLarge, "file_too_large", "files[0]", "big"), 413, "file_too_large", "files[0]", ""},
		{fault.Errorf(fault.Unsupported, "unsupported_media_type", "", "multipart"), 415, "unsupported_media_type", "", ""},
		{fault.Errorf(fault.TooSlow, "", "", "slow"), 408, "too_slow", "", ""},
		{fault.Errorf(fault.Unavailable, "database_unavailable", "", "later"), 503, "database_unavailable", "", ""},
		{&fault.Error{Kind: fault.Unavailable, Code: "busy", Message: "full", RetryAfter: 10 * time.Second}, 503, "busy", "", "10"},
		{fmt.Errorf("wrapped: %w", fault.Errorf(fault.NotFound, "", "", "gone")), 404, "not_found", "", ""},
		{fault.Errorf(fault.Internal, "", "", "secret detail"), 500, "internal", "", ""},
		{errors.New("connection refused to 10.0.0.1"), 500, "internal", "", ""},
		{Errorf(http.StatusUnauthorized, "unauthenticated", "", "sign in"), 401, "unauthenticated", "", ""},
	} {
		rec := httptest.NewRecorder()
		WriteError(rec, tc.err)
		var body struct{ Error APIError }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: %v", tc.err, err)
		}
		if rec.Code != tc.status || body.Error.Code != tc.code || body.Error.Field != tc.field {
			t.Errorf("%v: %d %s field %q, want %d %s field %q", tc.err, rec.Code, body.Error.Code, body.Error.Field, tc.status, tc.code, tc.field)
		}
		if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
			t.Errorf("%v: Retry-After %q, want %q", tc.err, got, tc.retryAfter)
		}
		if tc.status == 500 && body.Error.Message != errInternal.Message {
			t.Errorf("%v: a 500 tells %q", tc.err, body.Error.Message)
		}
	}
}

func TestEveryKindHasAStatus(t *testing.T) {
	for k := fault.Internal; k <= fault.Unavailable; k++ {
		if _, ok := statusOf[k]; !ok {
			t.Errorf("kind %s has no HTTP status", k)
		}
	}
}
