// Package reportrules is the one place that says what a report's input may
// hold. intake refuses what breaks these rules with a 400 naming the field;
// the NCMEC encoder and the Salesforce case mapping rely on them, so a
// report intake accepts can always be filed and cased. A rule that lived in
// only one of them would turn a 201 into a report that fails later, for
// good, where nobody can fix the input any more.
package reportrules

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits, in characters (Salesforce counts characters, not bytes), except
// MaxFileName.
//
// Salesforce decision: a value is never cut and a case never fails for
// length. Every value that has a field of its own in the default case
// mapping (services/case-writer/internal/mapping/default.yaml, the org of
// the case-writer README and of pkg/salesforce/sfsim) is limited here to
// that field's length: 255 for the text fields, 4000 for the long ones.
// Values that only the case's Description carries in full (URLs, notes) get
// budgets so that the whole description, every other field at its limit
// too, stays within Salesforce's 32000; the case title (Subject, 255)
// shortens the uploader's name, which its own field holds in full.
// case-writer's mapping tests render a report with every field at these
// limits against the simulator's field lengths, so raising one that would
// make a case fail fails a test.
const (
	MaxPlatform          = 255  // Project__c
	MaxUsername          = 255  // Uploader_Username__c, Uploader__c
	MaxEmail             = 254  // RFC 5321's longest address
	MaxApprover          = 255  // Legal_Approver__c
	MaxNotApprovedReason = 2000 // Not_Approved_Reason__c (4000)
	MaxEscalate          = 2000 // Escalation_Reason__c (4000); NCMEC clients keep escalateToHighPriority ≤ 3000
	// Actions_Taken__c (4000) holds them one per line: 20 × 190 + 19
	// newlines fits.
	MaxActions = 20
	MaxAction  = 190
	// Notes and URLs only the description holds in full.
	MaxNotes = 12000
	// MaxPrivateNote is Private_Note__c's length (4000): the private note
	// has a field of its own and is not in the description, whose budget
	// it leaves alone.
	MaxPrivateNote = 4000
	// MaxURL is the longest URL browsers and NCMEC clients handle (2083);
	// MaxURLsTotal bounds all of a report's URLs together, one separator
	// each, for the description.
	MaxURL       = 2083
	MaxURLs      = 100
	MaxURLsTotal = 8000
	// MaxFileName is in bytes, as file systems count (File_Name__c's 255
	// characters hold it).
	MaxFileName    = 255
	MaxAnnotations = 100
	MaxAnnotation  = 255
)

// PrivateNote checks the private note: staff's note for this system and
// the case only, never sent to NCMEC. Line breaks are honest in it.
func PrivateNote(s string) error { return MultilineText(s, MaxPrivateNote) }

// ErrInvalid matches every error of this package (errors.Is), whose
// messages are written for the staff member who must fix the value.
var ErrInvalid = errors.New("invalid")

type ruleError struct{ msg string }

func (e *ruleError) Error() string        { return e.msg }
func (e *ruleError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, args ...any) error {
	return &ruleError{fmt.Sprintf(format, args...)}
}

// Len is a value's length as the limits count it.
func Len(s string) int { return utf8.RuneCountInString(s) }

// Text checks a one-line text value: valid UTF-8, at most max characters,
// no control characters at all (NUL among them, which PostgreSQL cannot
// store and answers with an error) and no noncharacters (which XML cannot
// carry: the encoder would silently replace them).
func Text(s string, max int) error { return text(s, max, false) }

// MultilineText is Text for values in which line breaks and tabs are
// legitimate (notes, reasons): those are allowed, other controls are not.
func MultilineText(s string, max int) error { return text(s, max, true) }

func text(s string, max int, multiline bool) error {
	if !utf8.ValidString(s) {
		return invalid("not valid UTF-8")
	}
	if n := Len(s); n > max {
		return invalid("%d characters, longer than %d", n, max)
	}
	for _, r := range s {
		switch {
		case multiline && (r == '\n' || r == '\r' || r == '\t'):
		case r == 0:
			return invalid("contains a NUL character")
		case unicode.IsControl(r):
			return invalid("contains the control character %U", r)
		case nonCharacter(r):
			return invalid("contains the noncharacter %U", r)
		}
	}
	return nil
}

// nonCharacter reports the code points XML 1.0 excludes among those UTF-8
// can hold (surrogates cannot appear in valid UTF-8).
func nonCharacter(r rune) bool { return r == 0xFFFE || r == 0xFFFF }

// URL checks a URL of the content or of a file: absolute http or https
// with a host, at most MaxURL characters, and nothing that NCMEC refuses
// (4100 for whitespace or controls in a <url>, API.md §2.3) or that would
// hide what the URL is: no space of any kind (NBSP, U+2028...), no control
// and no invisible format character (zero-width space, bidi controls). The
// NCMEC encoder checks the URLs it sends with this same function.
func URL(s string) error {
	if s == "" {
		return invalid("empty URL")
	}
	if err := Text(s, MaxURL); err != nil {
		return err
	}
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			return invalid("contains the space character %U", r)
		case unicode.Is(unicode.Cf, r):
			return invalid("contains the invisible format character %U", r)
		}
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("not an http or https URL")
	}
	return nil
}

// URLs checks a report's URLs: each with URL, and MaxURLs and MaxURLsTotal.
// The error's index is the first bad URL, or -1 for the list as a whole.
func URLs(urls []string) (int, error) {
	total := 0
	for i, u := range urls {
		if err := URL(u); err != nil {
			return i, err
		}
		total += Len(u) + 1
	}
	switch {
	case len(urls) > MaxURLs:
		return -1, invalid("%d URLs, more than %d", len(urls), MaxURLs)
	case total > MaxURLsTotal:
		return -1, invalid("the URLs have %d characters in all, more than %d", total, MaxURLsTotal)
	}
	return 0, nil
}

// FileName checks an original file name, kept as metadata and shown to
// staff and NCMEC's analysts (it is never a storage key). Refused: a path
// (a separator, or "." and ".." themselves), control characters, and
// invisible format characters and line separators, which can make a name
// read as something else (U+202E turns "gpj.exe" around; U+200B hides
// inside a name). Dots inside a name, as in "a..b.png", are honest.
func FileName(name string) error {
	switch {
	case name == "":
		return invalid("empty file name")
	case !utf8.ValidString(name):
		return invalid("file name is not valid UTF-8")
	case len(name) > MaxFileName:
		return invalid("file name longer than %d bytes", MaxFileName)
	case strings.ContainsAny(name, `/\`):
		return invalid("file name %q contains a path separator", name)
	case name == "." || name == "..":
		return invalid("file name %q is a path, not a name", name)
	}
	for _, r := range name {
		switch {
		case unicode.IsControl(r):
			return invalid("file name %q contains the control character %U", name, r)
		case unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp):
			return invalid("file name %q contains the invisible character %U", name, r)
		case nonCharacter(r):
			return invalid("file name %q contains the noncharacter %U", name, r)
		}
	}
	return nil
}

// Email checks an e-mail address and returns the bare address: what staff
// paste from a mail client (`"x" <a@example.com>`) is reduced to
// a@example.com, since the address, not the display name, identifies the
// account (and is what earlier reports are matched by).
func Email(s string) (string, error) {
	if err := Text(s, 2*MaxEmail); err != nil {
		return "", err
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", invalid("%q is not an e-mail address", s)
	}
	if err := Text(a.Address, MaxEmail); err != nil {
		return "", err
	}
	return a.Address, nil
}
