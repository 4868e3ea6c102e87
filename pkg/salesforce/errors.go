package salesforce

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Error codes the client and its callers act on (API.md §3.3, §4.1).
const (
	CodeInvalidSession        = "INVALID_SESSION_ID"
	CodeRequestLimitExceeded  = "REQUEST_LIMIT_EXCEEDED"
	CodeUnableToLockRow       = "UNABLE_TO_LOCK_ROW"
	CodeServerUnavailable     = "SERVER_UNAVAILABLE"
	CodeNotFound              = "NOT_FOUND"
	CodeRequiredFieldMissing  = "REQUIRED_FIELD_MISSING"
	CodeStringTooLong         = "STRING_TOO_LONG"
	CodeRestrictedPicklist    = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
	CodeInvalidField          = "INVALID_FIELD"
	CodeInvalidFieldForInsert = "INVALID_FIELD_FOR_INSERT_UPDATE"
	CodeDuplicateValue        = "DUPLICATE_VALUE"
	CodeMalformedID           = "MALFORMED_ID"
	CodeProcessingHalted      = "PROCESSING_HALTED"
	CodeAllOrNoneRolledBack   = "ALL_OR_NONE_OPERATION_ROLLED_BACK"
)

// Error is one error object from a Salesforce REST response:
// {"errorCode": "...", "message": "...", "fields": [...]}. Inside save
// results Salesforce names the code "statusCode"; both decode into Code.
type Error struct {
	// HTTPStatus is the status of the response (or composite subrequest)
	// that carried the error.
	HTTPStatus int
	Code       string
	Message    string
	Fields     []string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.Fields) > 0 {
		fmt.Fprintf(&b, " (fields %s)", strings.Join(e.Fields, ", "))
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " [HTTP %d]", e.HTTPStatus)
	}
	return b.String()
}

// Errors is the array of errors one response carried; Salesforce usually
// sends one, sometimes several (e.g. a required field and a too-long string).
// errors.As(err, &e *Error) finds the first.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.As and errors.Is see every error of the array.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// MultipleMatchesError is an upsert answered 300 Multiple Choices: the
// external id matched several records, so Salesforce changed none. It means
// the external id field is not unique in the org, a configuration error.
type MultipleMatchesError struct {
	Object, Field, Value string
	// URLs are the matching records' resource URLs, as Salesforce listed them.
	URLs []string
}

func (e *MultipleMatchesError) Error() string {
	return fmt.Sprintf("%s.%s = %q matches %d records; make the external id field unique",
		e.Object, e.Field, e.Value, len(e.URLs))
}

// AuthError is a refusal from the OAuth token endpoint:
// {"error": "invalid_grant", "error_description": "..."}.
type AuthError struct {
	HTTPStatus  int
	Code        string // OAuth "error", e.g. invalid_grant, invalid_client
	Description string
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("oauth %s: %s [HTTP %d]", e.Code, e.Description, e.HTTPStatus)
}

// SchemaError is what CheckSchema returns when the org lacks an object or
// field the configuration names, or a field is not usable as configured.
type SchemaError struct {
	Object string
	// Missing lists the configured fields the object does not have (all of
	// them when the object itself is missing).
	Missing []string
	// Problems describes fields that exist but cannot serve their role,
	// e.g. an external id field that is not flagged External ID.
	Problems []string
}

func (e *SchemaError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "missing fields: "+strings.Join(e.Missing, ", "))
	}
	parts = append(parts, e.Problems...)
	return fmt.Sprintf("object %s: %s", e.Object, strings.Join(parts, "; "))
}

// HasCode reports whether err carries a Salesforce error with the given
// errorCode anywhere in its chain.
func HasCode(err error, code string) bool {
	for _, e := range allErrors(err) {
		if e.Code == code {
			return true
		}
	}
	return false
}

// allErrors collects every *Error in err's tree (errors.As finds only the
// first, and a response can carry several).
func allErrors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
			return
		case *Error:
			out = append(out, e)
			return
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// FieldsOf returns the fields named by every Salesforce error in err.
func FieldsOf(err error) []string {
	var fields []string
	for _, e := range allErrors(err) {
		fields = append(fields, e.Fields...)
	}
	return fields
}

// IsInvalidSession reports an expired or revoked access token that survived
// the client's one re-authentication.
func IsInvalidSession(err error) bool { return HasCode(err, CodeInvalidSession) }

// IsRateLimited reports REQUEST_LIMIT_EXCEEDED (daily or concurrent API limit).
func IsRateLimited(err error) bool { return HasCode(err, CodeRequestLimitExceeded) }

// IsLocked reports UNABLE_TO_LOCK_ROW.
func IsLocked(err error) bool { return HasCode(err, CodeUnableToLockRow) }

// IsNotFound reports a missing record, object or external id field.
func IsNotFound(err error) bool { return HasCode(err, CodeNotFound) }

// IsMultipleMatches reports an upsert that matched several records (300).
func IsMultipleMatches(err error) bool {
	var m *MultipleMatchesError
	return errors.As(err, &m)
}

// IsAuth reports a refusal from the token endpoint (bad credentials, key,
// user or scope): a configuration problem, not worth retrying.
func IsAuth(err error) bool {
	var a *AuthError
	return errors.As(err, &a)
}

// IsSchema reports a CheckSchema failure.
func IsSchema(err error) bool {
	var s *SchemaError
	return errors.As(err, &s)
}

// validationCodes are the data errors that the same request will hit again:
// the record must change, or the configuration.
var validationCodes = map[string]bool{
	CodeRequiredFieldMissing:            true,
	CodeStringTooLong:                   true,
	CodeRestrictedPicklist:              true,
	CodeInvalidField:                    true,
	CodeInvalidFieldForInsert:           true,
	CodeDuplicateValue:                  true,
	CodeMalformedID:                     true,
	"JSON_PARSER_ERROR":                 true,
	"INVALID_CROSS_REFERENCE_KEY":       true,
	"FIELD_CUSTOM_VALIDATION_EXCEPTION": true,
	"INVALID_EMAIL_ADDRESS":             true,
	"INVALID_TYPE":                      true,
}

// IsValidation reports a data or configuration error Salesforce will repeat
// for the same request (REQUIRED_FIELD_MISSING, STRING_TOO_LONG, restricted
// picklists, unknown fields...). FieldsOf names the fields.
func IsValidation(err error) bool {
	for _, e := range allErrors(err) {
		if validationCodes[e.Code] {
			return true
		}
	}
	return false
}

// IsRetryable reports whether the same request may succeed later: rate
// limits, row locks, 5xx, and transport failures (connection refused,
// dropped, timed out; the request may have been done, which upserts by
// external id make harmless). The client already retried these with
// backoff; a caller seeing one has exhausted that budget and should try
// again later (e.g. nak the message with a delay).
func IsRetryable(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		return true
	}
	for _, e := range allErrors(err) {
		if retryableError(e) {
			return true
		}
	}
	var a *AuthError
	if errors.As(err, &a) {
		return a.HTTPStatus >= 500 || a.Code == "rate_limit_exceeded"
	}
	return false
}

func retryableError(e *Error) bool {
	switch e.Code {
	case CodeRequestLimitExceeded, CodeUnableToLockRow, CodeServerUnavailable:
		return true
	}
	return e.HTTPStatus >= 500
}

// parseErrors decodes an error response body. Salesforce sends an array of
// error objects, sometimes a single object (API.md §3.1), and a gateway may
// send something that is not JSON at all; the result always holds at least
// one *Error so callers can rely on errors.As, and every *Error has a code:
// an object without one (`[{}]`, found by FuzzErrorAnswer) gets the code the
// status alone would give, so that nothing downstream classifies, counts or
// logs an error by an empty code.
func parseErrors(status int, body []byte) Errors {
	type wire struct {
		ErrorCode  string   `json:"errorCode"`
		StatusCode string   `json:"statusCode"`
		Message    string   `json:"message"`
		Fields     []string `json:"fields"`
	}
	fallback := "HTTP_" + fmt.Sprint(status)
	if status == http.StatusServiceUnavailable {
		fallback = CodeServerUnavailable
	}
	conv := func(ws []wire) Errors {
		out := make(Errors, 0, len(ws))
		for _, w := range ws {
			code := cmp.Or(w.ErrorCode, w.StatusCode, fallback)
			out = append(out, &Error{HTTPStatus: status, Code: code, Message: w.Message, Fields: w.Fields})
		}
		return out
	}
	trimmed := bytes.TrimSpace(body)
	var arr []wire
	if len(trimmed) > 0 && trimmed[0] == '[' && json.Unmarshal(trimmed, &arr) == nil && len(arr) > 0 {
		return conv(arr)
	}
	var one wire
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &one) == nil && (one.ErrorCode != "" || one.StatusCode != "") {
		return conv([]wire{one})
	}
	return Errors{{HTTPStatus: status, Code: fallback, Message: http.StatusText(status)}}
}
