package sfsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// result is one REST answer before it is written (or embedded in a
// composite response).
type result struct {
	status  int
	body    any // encoded as JSON; nil means no body
	headers map[string]string
}

func errResult(status int, errs ...apiError) result { return result{status: status, body: errs} }

func notFound() result {
	return errResult(http.StatusNotFound, apiError{ErrorCode: "NOT_FOUND", Message: "The requested resource does not exist"})
}

// execEnv is what one call runs with.
type execEnv struct {
	version string // "v64.0"
	// lockNext, when set, makes the next write fail with UNABLE_TO_LOCK_ROW
	// (fault injection; inside a composite it hits the first write).
	lockNext    bool
	inComposite bool
}

func (e *execEnv) takeLock(method string) bool {
	if e.lockNext && method != http.MethodGet {
		e.lockNext = false
		return true
	}
	return false
}

var lockError = apiError{ErrorCode: "UNABLE_TO_LOCK_ROW", Message: "unable to obtain exclusive access to this record"}

// endpointOf names a call for fault matching and the admin API.
func endpointOf(method string, segs []string) string {
	switch {
	case len(segs) == 0:
		return "resources"
	case segs[0] == "composite":
		return "composite"
	case segs[0] == "query":
		return "query"
	case segs[0] == "limits":
		return "limits"
	case segs[0] != "sobjects":
		return "other"
	case len(segs) == 3 && segs[2] == "describe":
		return "describe"
	case len(segs) == 2 && method == http.MethodPost, len(segs) == 3 && method == http.MethodPost:
		return "create"
	case len(segs) == 4 && method == http.MethodPatch:
		return "upsert"
	case len(segs) >= 3 && method == http.MethodGet:
		return "get"
	case len(segs) == 3 && method == http.MethodPatch:
		return "update"
	case len(segs) >= 3 && method == http.MethodDelete:
		return "delete"
	}
	return "sobjects"
}

// exec runs one REST call below /services/data/{version}/ against the store.
// The caller holds s.mu, so a call is atomic and a composite's calls are too.
func (s *Server) exec(env *execEnv, method string, segs []string, query url.Values, body []byte) result {
	if len(segs) == 0 {
		if method != http.MethodGet {
			return methodNotAllowed(method, "GET")
		}
		base := "/services/data/" + env.version
		return result{status: http.StatusOK, body: map[string]string{
			"sobjects": base + "/sobjects", "query": base + "/query", "composite": base + "/composite", "limits": base + "/limits",
		}}
	}
	switch segs[0] {
	case "composite":
		if len(segs) != 1 {
			return notFound()
		}
		if method != http.MethodPost {
			return methodNotAllowed(method, "POST")
		}
		if env.inComposite {
			return errResult(http.StatusBadRequest, apiError{ErrorCode: "INVALID_INPUT", Message: "a composite request cannot contain a composite request"})
		}
		return s.composite(env, body)
	case "query":
		if method != http.MethodGet {
			return methodNotAllowed(method, "GET")
		}
		return s.query(env, query.Get("q"))
	case "limits":
		return result{status: http.StatusOK, body: map[string]any{
			"DailyApiRequests": map[string]int{"Max": s.cfg.APILimit, "Remaining": max(0, s.cfg.APILimit-s.apiUsage)},
		}}
	case "sobjects":
		return s.sobjects(env, method, segs[1:], query, body)
	}
	return notFound()
}

func methodNotAllowed(method, allowed string) result {
	return errResult(http.StatusMethodNotAllowed, apiError{ErrorCode: "METHOD_NOT_ALLOWED",
		Message: fmt.Sprintf("HTTP Method '%s' not allowed. Allowed are %s", method, allowed)})
}

func decodeBody(body []byte) (map[string]any, *result) {
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		r := errResult(http.StatusBadRequest, apiError{ErrorCode: "JSON_PARSER_ERROR", Message: "The request body is not a JSON object: " + err.Error()})
		return nil, &r
	}
	return m, nil
}

func (s *Server) sobjects(env *execEnv, method string, segs []string, query url.Values, body []byte) result {
	if len(segs) == 0 {
		var list []map[string]any
		for _, o := range s.store.order {
			list = append(list, map[string]any{"name": o.schema.Name, "label": o.schema.Label, "keyPrefix": o.schema.KeyPrefix,
				"custom": strings.HasSuffix(o.schema.Name, "__c"), "createable": true, "updateable": true, "queryable": true})
		}
		return result{status: http.StatusOK, body: map[string]any{"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list}}
	}
	o := s.store.object(segs[0])
	if o == nil {
		return notFound()
	}
	switch len(segs) {
	case 1:
		if method != http.MethodPost {
			return methodNotAllowed(method, "POST")
		}
		return s.create(env, o, body)
	case 2:
		if segs[1] == "describe" {
			if method != http.MethodGet {
				return methodNotAllowed(method, "GET")
			}
			return result{status: http.StatusOK, body: describe(o, env.version)}
		}
		if strings.EqualFold(segs[1], "Id") && method == http.MethodPost {
			// POST /sobjects/{Object}/Id creates a record (v37.0+).
			return s.create(env, o, body)
		}
		return s.byID(env, o, method, segs[1], query, body)
	case 3:
		return s.byExternalID(env, o, method, segs[1], segs[2], query, body)
	}
	return notFound()
}

func (s *Server) create(env *execEnv, o *object, body []byte) result {
	m, bad := decodeBody(body)
	if bad != nil {
		return *bad
	}
	w, errs := s.store.validate(o, m, true, "")
	if len(errs) > 0 {
		return errResult(http.StatusBadRequest, errs...)
	}
	if env.takeLock(http.MethodPost) {
		return errResult(http.StatusBadRequest, lockError)
	}
	id, errs := s.store.create(o, w)
	if len(errs) > 0 {
		return errResult(http.StatusBadRequest, errs...)
	}
	return result{status: http.StatusCreated,
		body:    map[string]any{"id": id, "success": true, "errors": []any{}},
		headers: map[string]string{"Location": recordURL(env.version, o, id)}}
}

func recordURL(version string, o *object, id string) string {
	return "/services/data/" + version + "/sobjects/" + o.schema.Name + "/" + id
}

func (s *Server) byID(env *execEnv, o *object, method, rawID string, query url.Values, body []byte) result {
	id := canonicalID(rawID)
	if id == "" {
		// Salesforce reads a segment that is not an id as an external
		// id field name (restforce's sobject_find_error_response fixture).
		return errResult(http.StatusNotFound, apiError{ErrorCode: "NOT_FOUND", Message: "Provided external ID field does not exist or is not accessible: " + rawID})
	}
	r, ok := o.records[id]
	if !ok {
		return notFound()
	}
	switch method {
	case http.MethodGet:
		return s.readRecord(env, o, r, query)
	case http.MethodPatch:
		return s.updateRecord(env, o, id, body, "", http.StatusNoContent)
	case http.MethodDelete:
		if env.takeLock(method) {
			return errResult(http.StatusBadRequest, lockError)
		}
		o.remove(id)
		return result{status: http.StatusNoContent}
	}
	return methodNotAllowed(method, "GET, PATCH, DELETE")
}

func (s *Server) readRecord(env *execEnv, o *object, r Record, query url.Values) result {
	var fields []string
	if q := query.Get("fields"); q != "" {
		for _, name := range strings.Split(q, ",") {
			f := o.field(strings.TrimSpace(name))
			if f == nil {
				return errResult(http.StatusBadRequest, apiError{ErrorCode: "INVALID_FIELD", Message: fmt.Sprintf("No such column '%s' on sobject of type %s", strings.TrimSpace(name), o.schema.Name)})
			}
			fields = append(fields, f.Name)
		}
	}
	return result{status: http.StatusOK, body: recordJSON(env.version, o, r, fields)}
}

func (s *Server) updateRecord(env *execEnv, o *object, id string, body []byte, extField string, okStatus int) result {
	m, bad := decodeBody(body)
	if bad != nil {
		return *bad
	}
	w, errs := s.store.validate(o, m, false, extField)
	if len(errs) > 0 {
		return errResult(http.StatusBadRequest, errs...)
	}
	if env.takeLock(http.MethodPatch) {
		return errResult(http.StatusBadRequest, lockError)
	}
	if errs := s.store.update(o, id, w); len(errs) > 0 {
		return errResult(http.StatusBadRequest, errs...)
	}
	if okStatus == http.StatusNoContent {
		return result{status: http.StatusNoContent}
	}
	return result{status: okStatus, body: map[string]any{"id": id, "success": true, "errors": []any{}, "created": false}}
}

// byExternalID serves /sobjects/{Object}/{Field}/{Value}: read, upsert
// (201 created / 200 updated / 300 several matches / 404 not an external
// id) and delete.
func (s *Server) byExternalID(env *execEnv, o *object, method, fieldName, value string, query url.Values, body []byte) result {
	if strings.EqualFold(fieldName, "Id") {
		if method == http.MethodPatch {
			id := canonicalID(value)
			if _, ok := o.records[id]; id == "" || !ok {
				return notFound()
			}
			return s.updateRecord(env, o, id, body, "", http.StatusOK)
		}
		return s.byID(env, o, method, value, query, body)
	}
	f := o.field(fieldName)
	if f == nil || !f.ExternalID {
		return errResult(http.StatusNotFound, apiError{ErrorCode: "NOT_FOUND", Message: "Provided external ID field does not exist or is not accessible: " + fieldName})
	}
	ids := o.findBy(f, value)
	if len(ids) > 1 {
		urls := make([]string, len(ids))
		for i, id := range ids {
			urls[i] = recordURL(env.version, o, id)
		}
		return result{status: http.StatusMultipleChoices, body: urls}
	}
	switch method {
	case http.MethodGet:
		if len(ids) == 0 {
			return notFound()
		}
		return s.readRecord(env, o, o.records[ids[0]], query)
	case http.MethodDelete:
		if len(ids) == 0 {
			return notFound()
		}
		if env.takeLock(method) {
			return errResult(http.StatusBadRequest, lockError)
		}
		o.remove(ids[0])
		return result{status: http.StatusNoContent}
	case http.MethodPatch:
		if len(ids) == 1 {
			return s.updateRecord(env, o, ids[0], body, f.Name, http.StatusOK)
		}
		m, bad := decodeBody(body)
		if bad != nil {
			return *bad
		}
		w, errs := s.store.validate(o, m, true, f.Name)
		if len(errs) > 0 {
			return errResult(http.StatusBadRequest, errs...)
		}
		ext, e := s.store.convert(o, f, value)
		if e != nil {
			return errResult(http.StatusBadRequest, *e)
		}
		w.values[f.Name] = ext
		if env.takeLock(method) {
			return errResult(http.StatusBadRequest, lockError)
		}
		id, errs := s.store.create(o, w)
		if len(errs) > 0 {
			return errResult(http.StatusBadRequest, errs...)
		}
		return result{status: http.StatusCreated,
			body:    map[string]any{"id": id, "success": true, "errors": []any{}, "created": true},
			headers: map[string]string{"Location": recordURL(env.version, o, id)}}
	}
	return methodNotAllowed(method, "GET, PATCH, DELETE")
}

// orderedRecord marshals like Salesforce: attributes first, then Id and the
// fields in schema order.
type orderedRecord struct {
	keys   []string
	values map[string]any
}

func (r orderedRecord) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range r.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(r.values[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// recordJSON renders a record; with fields, only those (and attributes).
func recordJSON(version string, o *object, r Record, fields []string) orderedRecord {
	id, _ := r["Id"].(string)
	out := orderedRecord{keys: []string{"attributes"}, values: map[string]any{
		"attributes": map[string]string{"type": o.schema.Name, "url": recordURL(version, o, id)},
	}}
	for _, f := range o.fields {
		if fields != nil && !slices.Contains(fields, f.Name) {
			continue
		}
		out.keys = append(out.keys, f.Name)
		out.values[f.Name] = r[f.Name]
	}
	return out
}

// describe renders GET /sobjects/{Object}/describe.
func describe(o *object, version string) map[string]any {
	var fields []map[string]any
	for _, f := range o.fields {
		length := f.Length
		if !textTypes[f.Type] {
			length = 0
		}
		if f.Type == "reference" || f.Type == "id" {
			length = 18
		}
		picklist := []map[string]any{}
		for _, v := range f.Picklist {
			picklist = append(picklist, map[string]any{"value": v, "label": v, "active": true, "defaultValue": v == f.Default})
		}
		refTo := []string{}
		if f.ReferenceTo != "" {
			refTo = append(refTo, f.ReferenceTo)
		}
		var rel any
		if f.RelationshipName != "" {
			rel = f.RelationshipName
		}
		typ := f.Type
		if typ == "autonumber" {
			typ = "string" // Salesforce describes autonumbers as strings with autoNumber=true
		}
		fields = append(fields, map[string]any{
			"name": f.Name, "label": f.label(), "type": typ, "length": length,
			"nillable":   !f.Required && f.Type != "boolean" && f.Type != "id",
			"externalId": f.ExternalID, "unique": f.Unique, "idLookup": f.ExternalID || f.Type == "id",
			"autoNumber": f.Type == "autonumber", "custom": strings.HasSuffix(f.Name, "__c"),
			"createable": f.writable(), "updateable": f.writable(),
			"defaultedOnCreate":  f.Default != "" || f.Type == "boolean" || !f.writable(),
			"restrictedPicklist": f.Restricted, "picklistValues": picklist,
			"referenceTo": refTo, "relationshipName": rel,
		})
	}
	base := "/services/data/" + version + "/sobjects/" + o.schema.Name
	return map[string]any{
		"name": o.schema.Name, "label": o.schema.Label, "keyPrefix": o.schema.KeyPrefix,
		"custom": strings.HasSuffix(o.schema.Name, "__c"), "createable": true, "updateable": true,
		"deletable": true, "queryable": true, "fields": fields,
		"urls": map[string]string{"sobject": base, "describe": base + "/describe", "rowTemplate": base + "/{ID}"},
	}
}
