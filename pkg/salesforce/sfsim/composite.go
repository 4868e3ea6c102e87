package sfsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

const maxSubrequests = 25

var (
	referenceIDRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	// @{ref.field}, @{ref.records[0].Id}, ...
	referenceRE = regexp.MustCompile(`@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[[0-9]+\])+)\}`)
	dataPathRE  = regexp.MustCompile(`^/services/data/(v[0-9]+\.[0-9]+)(/.*)?$`)
)

var haltedError = apiError{ErrorCode: "PROCESSING_HALTED", Message: "The transaction was rolled back since another operation in the same transaction failed."}

type subrequest struct {
	Method      string            `json:"method"`
	URL         string            `json:"url"`
	ReferenceID string            `json:"referenceId"`
	Body        json.RawMessage   `json:"body"`
	HTTPHeaders map[string]string `json:"httpHeaders"`
}

type subresponse struct {
	Body           any               `json:"body"`
	HTTPHeaders    map[string]string `json:"httpHeaders"`
	HTTPStatusCode int               `json:"httpStatusCode"`
	ReferenceID    string            `json:"referenceId"`
}

// composite runs POST /composite. It answers 200 whenever the request is
// well-formed; with allOrNone a failure rolls every write back and every
// other subrequest reports PROCESSING_HALTED.
func (s *Server) composite(env *execEnv, body []byte) result {
	var req struct {
		AllOrNone          bool         `json:"allOrNone"`
		CollateSubrequests *bool        `json:"collateSubrequests"`
		CompositeRequest   []subrequest `json:"compositeRequest"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return errResult(http.StatusBadRequest, apiError{ErrorCode: "JSON_PARSER_ERROR", Message: "Cannot parse the composite request: " + err.Error()})
	}
	if n := len(req.CompositeRequest); n == 0 || n > maxSubrequests {
		return errResult(http.StatusBadRequest, apiError{ErrorCode: "INVALID_INPUT", Message: fmt.Sprintf("A composite request needs 1 to %d subrequests, got %d", maxSubrequests, n)})
	}
	seen := map[string]bool{}
	for _, sr := range req.CompositeRequest {
		if !referenceIDRE.MatchString(sr.ReferenceID) || seen[sr.ReferenceID] {
			return errResult(http.StatusBadRequest, apiError{ErrorCode: "INVALID_INPUT", Message: fmt.Sprintf("Invalid referenceId %q: must be unique and contain only letters, digits and underscores", sr.ReferenceID)})
		}
		seen[sr.ReferenceID] = true
		for h := range sr.HTTPHeaders {
			switch strings.ToLower(h) {
			case "accept", "authorization", "content-type":
				return errResult(http.StatusBadRequest, apiError{ErrorCode: "INVALID_INPUT", Message: fmt.Sprintf("The %s header is not allowed in a subrequest", h)})
			}
		}
	}

	var snap snapshot
	if req.AllOrNone {
		snap = s.store.snapshot()
	}
	out := make([]subresponse, len(req.CompositeRequest))
	done := map[string]any{} // referenceId → decoded body of a successful subrequest
	failed := -1
	for i, sr := range req.CompositeRequest {
		if req.AllOrNone && failed >= 0 {
			out[i] = halted(sr.ReferenceID)
			continue
		}
		res := s.subrequest(env, sr, done)
		out[i] = subresponse{Body: res.body, HTTPHeaders: res.headers, HTTPStatusCode: res.status, ReferenceID: sr.ReferenceID}
		if out[i].HTTPHeaders == nil {
			out[i].HTTPHeaders = map[string]string{}
		}
		if res.status >= 300 {
			if failed < 0 {
				failed = i
			}
			continue
		}
		done[sr.ReferenceID] = roundTrip(res.body)
	}
	if req.AllOrNone && failed >= 0 {
		s.store.restore(snap)
		for i := range out {
			if i != failed {
				out[i] = halted(out[i].ReferenceID)
			}
		}
	}
	return result{status: http.StatusOK, body: map[string]any{"compositeResponse": out}}
}

func halted(ref string) subresponse {
	return subresponse{Body: []apiError{haltedError}, HTTPHeaders: map[string]string{}, HTTPStatusCode: http.StatusBadRequest, ReferenceID: ref}
}

// subrequest resolves references in one subrequest and runs it.
func (s *Server) subrequest(env *execEnv, sr subrequest, done map[string]any) result {
	rawURL, err := resolveString(sr.URL, done, url.PathEscape)
	if err != nil {
		return errResult(http.StatusBadRequest, *err)
	}
	var body []byte
	if len(sr.Body) > 0 && !bytes.Equal(bytes.TrimSpace(sr.Body), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(sr.Body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return errResult(http.StatusBadRequest, apiError{ErrorCode: "JSON_PARSER_ERROR", Message: err.Error()})
		}
		v, rerr := resolveValue(v, done)
		if rerr != nil {
			return errResult(http.StatusBadRequest, *rerr)
		}
		b, merr := json.Marshal(v)
		if merr != nil {
			return errResult(http.StatusBadRequest, apiError{ErrorCode: "JSON_PARSER_ERROR", Message: merr.Error()})
		}
		body = b
	}
	u, perr := url.Parse(rawURL)
	if perr != nil {
		return notFound()
	}
	m := dataPathRE.FindStringSubmatch(u.EscapedPath())
	if m == nil {
		return notFound()
	}
	version := m[1]
	if r, ok := checkVersion(version); !ok {
		return r
	}
	segs, ok := splitPath(m[2])
	if !ok {
		return notFound()
	}
	sub := &execEnv{version: version, inComposite: true}
	if env.lockNext && strings.ToUpper(sr.Method) != http.MethodGet {
		sub.lockNext = true
		env.lockNext = false
	}
	return s.exec(sub, strings.ToUpper(sr.Method), segs, u.Query(), body)
}

// roundTrip turns a result body into plain JSON values for references.
func roundTrip(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if dec.Decode(&out) != nil {
		return nil
	}
	return out
}

func resolveValue(v any, done map[string]any) (any, *apiError) {
	switch x := v.(type) {
	case string:
		// A value that is exactly one reference takes the referenced
		// value as is (a number stays a number).
		if m := referenceRE.FindStringSubmatch(x); m != nil && m[0] == x {
			return lookupRef(m[1], m[2], done)
		}
		s, err := resolveString(x, done, func(s string) string { return s })
		return s, err
	case map[string]any:
		for k, e := range x {
			r, err := resolveValue(e, done)
			if err != nil {
				return nil, err
			}
			x[k] = r
		}
	case []any:
		for i, e := range x {
			r, err := resolveValue(e, done)
			if err != nil {
				return nil, err
			}
			x[i] = r
		}
	}
	return v, nil
}

func resolveString(s string, done map[string]any, escape func(string) string) (string, *apiError) {
	var firstErr *apiError
	out := referenceRE.ReplaceAllStringFunc(s, func(ref string) string {
		m := referenceRE.FindStringSubmatch(ref)
		v, err := lookupRef(m[1], m[2], done)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return ref
		}
		return escape(fmt.Sprint(v))
	})
	return out, firstErr
}

var pathPartRE = regexp.MustCompile(`\.([A-Za-z0-9_]+)|\[([0-9]+)\]`)

func lookupRef(ref, path string, done map[string]any) (any, *apiError) {
	invalid := func() *apiError {
		return &apiError{ErrorCode: "PROCESSING_HALTED", Message: fmt.Sprintf(
			"Invalid reference specified. No value for %s%s found in %s. Provided referenceId ('%s') refers to a subrequest that failed or was not executed, or the path does not exist.",
			ref, path, ref, ref)}
	}
	v, ok := done[ref]
	if !ok {
		return nil, invalid()
	}
	for _, part := range pathPartRE.FindAllStringSubmatch(path, -1) {
		switch {
		case part[1] != "":
			m, ok := v.(map[string]any)
			if !ok {
				return nil, invalid()
			}
			if v, ok = m[part[1]]; !ok {
				return nil, invalid()
			}
		default:
			arr, ok := v.([]any)
			n, _ := strconv.Atoi(part[2])
			if !ok || n >= len(arr) {
				return nil, invalid()
			}
			v = arr[n]
		}
	}
	if v == nil {
		return nil, invalid()
	}
	return v, nil
}
