// Package fault names the kinds of failure a use case reports to its
// caller: the input breaks a rule, the thing is not there, its state does
// not allow the step, a second person must take it. Domain packages return
// them without knowing HTTP; pkg/server turns each kind into a status and
// the API's error body, in one place.
package fault

import (
	"fmt"
	"time"
)

// Kind is what went wrong, as the caller must react to it. A Kind is an
// error itself, so errors.Is(err, fault.NotFound) asks an *Error its kind.
type Kind uint8

// The kinds. Internal is the zero value: our own failure, whose details
// stay in the log.
const (
	Internal     Kind = iota
	Invalid           // the input breaks a rule; Field names it
	NotFound          // no such thing
	Conflict          // the thing's state does not allow the step
	Finished          // the thing is finished: the step can never be taken any more
	SecondPerson      // another staff member must take this step
	Forbidden         // the staff member may not take this step
	TooLarge          // the input is larger than a limit
	Unsupported       // the input is of a type not taken
	TooSlow           // the client sent its input too slowly
	Unavailable       // a dependency failed; the same step can be tried again
)

var names = [...]string{
	Internal: "internal", Invalid: "invalid", NotFound: "not_found", Conflict: "conflict", Finished: "finished",
	SecondPerson: "second_person_required", Forbidden: "forbidden", TooLarge: "too_large",
	Unsupported: "unsupported", TooSlow: "too_slow", Unavailable: "unavailable",
}

// String is the kind's name, the default code of its errors.
func (k Kind) String() string {
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) Error() string { return k.String() }

// Error is a failure of one kind, with the words its caller shows.
type Error struct {
	Kind Kind
	// Code is the machine-readable name of this failure ("held",
	// "invalid_file_name"); empty means the kind's name.
	Code    string
	Field   string // the input field at fault, if one is
	Message string // for the person who must act on it
	// Fields are every problem of an Invalid input, in the order of the
	// form, for a page to list them all; Field and Message are the first.
	Fields []FieldProblem
	// RetryAfter, when set, is how soon trying again may succeed.
	RetryAfter time.Duration
}

// FieldProblem is what is wrong with one field of an input.
type FieldProblem struct {
	Field   string
	Message string
}

// Errorf returns an Error of kind with code (empty: the kind's name), the
// field at fault (may be empty) and a formatted message.
func Errorf(kind Kind, code, field, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// CodeName is e's code, the kind's name when none is set.
func (e *Error) CodeName() string {
	if e.Code != "" {
		return e.Code
	}
	return e.Kind.String()
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.CodeName(), e.Message, e.Field)
	}
	return e.CodeName() + ": " + e.Message
}

// Is reports whether target is e's kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}
