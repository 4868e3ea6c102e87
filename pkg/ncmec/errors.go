package ncmec

import (
	"errors"
	"fmt"
	"strings"
)

// Response codes documented by NCMEC (API.md §2.3; the list is
// "non-exhaustive"). The 2014–2016 numbering (1000 = authentication required,
// 1001 = malformed XML, …) is obsolete and deliberately not modelled.
const (
	CodeSuccess            = 0
	CodeServerError        = 1000
	CodeSaveFailed         = 1100
	CodeUploadFailed       = 1110
	CodeFileUploadFailed   = 1111
	CodeResourceNotFound   = 1210
	CodeUpdateFailed       = 1300
	CodeAuthRequired       = 2000
	CodeNotAuthorized      = 3000
	CodeNoSubmitPermission = 3100
	CodeNoUpdatePermission = 3300
	CodeInvalidRequest     = 4000
	CodeValidationFailed   = 4100
	CodeMalformedXML       = 4110
	CodeMalformedFile      = 4200
	CodeReportNotFound     = 5001
	CodeFileNotFound       = 5002
	CodeAlreadyRetracted   = 5101
	CodeAlreadyFinished    = 5102
)

var codeText = map[int]string{
	CodeSuccess:            "Success",
	CodeServerError:        "Server error",
	CodeSaveFailed:         "Save failed",
	CodeUploadFailed:       "Upload failed",
	CodeFileUploadFailed:   "File upload failed",
	CodeResourceNotFound:   "Resource not found",
	CodeUpdateFailed:       "Update failed",
	CodeAuthRequired:       "Authentication required",
	CodeNotAuthorized:      "User is not authorized to perform this action",
	CodeNoSubmitPermission: "User does not have authorization to make submissions",
	CodeNoUpdatePermission: "User does not have authorization to make updates",
	CodeInvalidRequest:     "Invalid request",
	CodeValidationFailed:   "Validation failed",
	CodeMalformedXML:       "Malformed XML submittal",
	CodeMalformedFile:      "Malformed file submittal",
	CodeReportNotFound:     "Report does not exist",
	CodeFileNotFound:       "File does not exist",
	CodeAlreadyRetracted:   "Report already retracted",
	CodeAlreadyFinished:    "Report already finished",
}

// CodeText returns NCMEC's documented description of a response code, or ""
// for a code the documentation does not list.
func CodeText(code int) string { return codeText[code] }

// Kind says what a caller should do about a failed call.
type Kind int

const (
	// KindPermanent: repeating the same call cannot succeed (validation,
	// malformed request, credentials or permissions, unknown codes). A person
	// has to look at it.
	KindPermanent Kind = iota
	// KindRetryable: the call may succeed if repeated later (network errors,
	// HTTP 5xx/429, NCMEC's server-side failure codes 1000/1100/1110/1111).
	// Whether repeating is safe is a separate question: see IsAmbiguous.
	KindRetryable
	// KindState: the report or file is not in a state that allows the call
	// (5001, 5002, 5101, 5102). The caller decides from its own records:
	// 5102 on /finish and 5101 on /retract mean the goal is already reached.
	KindState
)

func (k Kind) String() string {
	switch k {
	case KindRetryable:
		return "retryable"
	case KindState:
		return "state"
	default:
		return "permanent"
	}
}

// Causes carried in Error.Err for answers the client refuses to trust.
var (
	ErrResponseTooLarge  = errors.New("response body exceeds the size limit")
	ErrDoctype           = errors.New("response contains a DOCTYPE (refused: entity attacks)")
	ErrMalformedResponse = errors.New("response is not a CyberTipline XML document")
	ErrMissingReportID   = errors.New("success response without reportId")
	ErrMissingFileID     = errors.New("success response without fileId")
	ErrHashMismatch      = errors.New("MD5 computed by NCMEC differs from the bytes sent")
	ErrInvalidInput      = errors.New("invalid input")
)

// Error is the one error type every Client method returns. It carries
// everything needed to decide what to do next and to quote the call to NCMEC.
type Error struct {
	Endpoint    string // "submit", "upload", …
	Code        int    // NCMEC responseCode; 0 when the answer had none
	Description string // NCMEC responseDescription, or the HTTP status text
	HTTPStatus  int    // 0 when no response arrived
	RequestID   string // the Request-ID response header, to quote to NCMEC
	Kind        Kind
	// Auth marks credential or permission failures (HTTP 401, 2000, 3000,
	// 3100, 3300): permanent, and worth an alert rather than a retry.
	Auth bool
	// Ambiguous marks failures after which the call may or may not have taken
	// effect at NCMEC (the request may have arrived but no trustworthy answer
	// came back). /submit must never be repeated automatically after one.
	Ambiguous bool
	Err       error // the underlying cause, if any (network, parse, sentinel)
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ncmec %s: ", e.Endpoint)
	switch {
	case e.Code != 0:
		fmt.Fprintf(&b, "code %d", e.Code)
		if e.Description != "" {
			fmt.Fprintf(&b, " (%s)", e.Description)
		} else if t := CodeText(e.Code); t != "" {
			fmt.Fprintf(&b, " (%s)", t)
		}
		if e.HTTPStatus != 0 && e.HTTPStatus != 200 {
			fmt.Fprintf(&b, " http %d", e.HTTPStatus)
		}
	case e.HTTPStatus != 0 && e.Err == nil:
		fmt.Fprintf(&b, "http %d", e.HTTPStatus)
		if e.Description != "" {
			fmt.Fprintf(&b, " (%s)", e.Description)
		}
	}
	if e.Err != nil {
		if e.Code != 0 || (e.HTTPStatus != 0 && e.HTTPStatus != 200) {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request-id %s]", e.RequestID)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// kindOfCode classifies an NCMEC response code.
func kindOfCode(code int) Kind {
	switch code {
	case CodeServerError, CodeSaveFailed, CodeUploadFailed, CodeFileUploadFailed:
		return KindRetryable
	case CodeReportNotFound, CodeFileNotFound, CodeAlreadyRetracted, CodeAlreadyFinished:
		return KindState
	default:
		// Includes codes NCMEC adds later: a person should look at those
		// before anything repeats them.
		return KindPermanent
	}
}

func isAuthCode(code int) bool {
	switch code {
	case CodeAuthRequired, CodeNotAuthorized, CodeNoSubmitPermission, CodeNoUpdatePermission:
		return true
	}
	return false
}

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsRetryable reports whether repeating the call later may succeed.
func IsRetryable(err error) bool {
	e, ok := asError(err)
	return ok && e.Kind == KindRetryable
}

// IsPermanent reports whether repeating the call cannot succeed.
func IsPermanent(err error) bool {
	e, ok := asError(err)
	return ok && e.Kind == KindPermanent
}

// IsState reports whether NCMEC refused the call because of the report's or
// file's state (5001, 5002, 5101, 5102).
func IsState(err error) bool {
	e, ok := asError(err)
	return ok && e.Kind == KindState
}

// IsAuth reports whether the credentials or permissions were refused.
func IsAuth(err error) bool {
	e, ok := asError(err)
	return ok && e.Auth
}

// IsAmbiguous reports whether the call may have taken effect although it
// failed. After an ambiguous /submit a report may be open at NCMEC under an
// id we never learnt: do not submit again automatically.
func IsAmbiguous(err error) bool {
	e, ok := asError(err)
	return ok && e.Ambiguous
}

// CodeOf returns the NCMEC response code carried by err, or 0.
func CodeOf(err error) int {
	if e, ok := asError(err); ok {
		return e.Code
	}
	return 0
}

// Outcome names the result of a call for metrics: "ok", or the Kind of the
// error ("retryable", "permanent", "state"). Errors that are not *Error count
// as "permanent".
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := asError(err); ok {
		return e.Kind.String()
	}
	return KindPermanent.String()
}
