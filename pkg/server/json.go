package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// DecodeJSON decodes data, one JSON value, into v, refusing what
// encoding/json would let pass quietly: an object member given twice, an
// unknown member, and anything after the value. encoding/json keeps the
// last of two members, so a body with {"reason":"a","reason":"b"} reads
// differently to a proxy, a log or a second decoder that keeps the first.
func DecodeJSON(data []byte, v any) error {
	if err := CheckJSONNames(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one JSON value")
	}
	return nil
}

// CheckJSONNames refuses a JSON value in which an object has two members
// whose names encoding/json would match to the same struct field: equal,
// or equal but for case (it matches names case-insensitively, with its own
// folding, repeated here).
func CheckJSONNames(data []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data),
		// Our own check below reports duplicates, with case folded;
		// invalid UTF-8 is left to the decoder and the input rules, as before.
		jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var names []map[string]bool // one set per open object
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch tok.Kind() {
		case '{':
			names = append(names, map[string]bool{})
		case '}':
			names = names[:len(names)-1]
		case '"':
			// A string in an object at an odd position is a member name.
			if k, n := dec.StackIndex(dec.StackDepth()); k == '{' && n%2 == 1 {
				name := tok.String()
				f := foldName(name)
				if names[len(names)-1][f] {
					return fmt.Errorf("the member %q appears twice in one object (names that differ only in case count as the same)", name)
				}
				names[len(names)-1][f] = true
			}
		}
	}
}

// foldName is encoding/json's folding of member names (fold.go): names with
// the same fold match the same field.
func foldName(s string) string {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			out = append(out, byte(r))
			continue
		}
		out = utf8.AppendRune(out, unicode.ToUpper(unicode.ToLower(r)))
	}
	return string(out)
}
