package server

import (
	"strings"
	"testing"
)

func TestDecodeJSONRefusesDuplicateMembers(t *testing.T) {
	type inner struct {
		Name string `json:"name"`
	}
	type body struct {
		Reason string  `json:"reason"`
		Items  []inner `json:"items"`
		Extra  map[string]int
	}
	for _, tc := range []struct {
		in   string
		want string // part of the error, or "" for none
	}{
		{`{"reason":"a","items":[{"name":"x"},{"name":"y"}]}`, ""},
		{`{"reason":"a","reason":"b"}`, `"reason" appears twice`},
		{`{"reason":"a","Reason":"b"}`, `"Reason" appears twice`},
		{`{"reason":"a","\u0072eason":"b"}`, `appears twice`},
		{`{"items":[{"name":"x","name":"y"}]}`, `"name" appears twice`},
		{`{"Extra":{"k":1,"k":2}}`, `"k" appears twice`},
		{`{"reason":"a"} {"reason":"b"}`, "more than one JSON value"},
		{`{"reason":"a","other":1}`, "unknown field"},
		{`{"reason":`, "EOF"},
	} {
		var v body
		err := DecodeJSON([]byte(tc.in), &v)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("DecodeJSON(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
}
