package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Record is a Salesforce record as JSON: field API name → value. Records read
// back also carry "attributes" ({"type", "url"}) and "Id".
type Record map[string]any

// ID returns the record's Id field, or "".
func (r Record) ID() string {
	s, _ := r["Id"].(string)
	return s
}

// String returns the field's value when it is a string, or "".
func (r Record) String(field string) string {
	s, _ := r[field].(string)
	return s
}

// UpsertResult is the outcome of an upsert by external id.
type UpsertResult struct {
	ID      string `json:"id"`
	Created bool   `json:"created"`
}

// SObjectPath returns the REST path of an sObject resource below the API
// version, each part escaped: SObjectPath("Case", "Report_Id__c", "a/b") is
// "/sobjects/Case/Report_Id__c/a%2Fb".
func SObjectPath(parts ...string) string {
	var b strings.Builder
	b.WriteString("/sobjects")
	for _, p := range parts {
		b.WriteString("/")
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

// Upsert creates or updates the record of object whose external id field
// extIDField equals extID (PATCH /sobjects/{object}/{field}/{value}). It is
// idempotent, so the client retries it after a lost answer. fields must not
// contain Id or the external id field itself.
//
// Outcomes: 201 → Created; 200 → updated; 300 → *MultipleMatchesError;
// 404 → NOT_FOUND (the field is not an external id); validation errors → Errors.
func (c *Client) Upsert(ctx context.Context, object, extIDField, extID string, fields map[string]any) (UpsertResult, error) {
	op := fmt.Sprintf("salesforce: upsert %s %s=%s", object, extIDField, extID)
	if extID == "" {
		return UpsertResult{}, fmt.Errorf("%s: empty external id", op)
	}
	if _, ok := fields[extIDField]; ok {
		return UpsertResult{}, fmt.Errorf("%s: the external id field must be in the URL, not the body", op)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return UpsertResult{}, fmt.Errorf("%s: encode fields: %w", op, err)
	}
	resp, err := c.do(ctx, request{
		endpoint:   "upsert",
		method:     http.MethodPatch,
		path:       SObjectPath(object, extIDField, extID),
		body:       body,
		idempotent: true,
	})
	if err != nil {
		return UpsertResult{}, fmt.Errorf("%s: %w", op, err)
	}
	res, err := upsertResult(object, extIDField, extID, resp.status, resp.body)
	if err != nil {
		return UpsertResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if res.ID == "" {
		// v45.0 and older answer an update with 204 and no body.
		rec, err := c.GetByExternalID(ctx, object, extIDField, extID, "Id")
		if err != nil {
			return UpsertResult{}, fmt.Errorf("%s: read id after update: %w", op, err)
		}
		res.ID = rec.ID()
	}
	return res, nil
}

// upsertResult interprets an upsert answer, top-level or in a composite.
func upsertResult(object, field, value string, status int, body []byte) (UpsertResult, error) {
	switch {
	case status == http.StatusMultipleChoices:
		var urls []string
		if err := json.Unmarshal(body, &urls); err != nil {
			return UpsertResult{}, fmt.Errorf("decode 300 answer: %w", err)
		}
		return UpsertResult{}, &MultipleMatchesError{Object: object, Field: field, Value: value, URLs: urls}
	case status == http.StatusNoContent:
		return UpsertResult{}, nil
	case status == http.StatusOK || status == http.StatusCreated:
		var r struct {
			UpsertResult
			Success bool            `json:"success"`
			Errors  json.RawMessage `json:"errors"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return UpsertResult{}, fmt.Errorf("decode upsert answer: %w", err)
		}
		// The status is the authority (created was only added in v46.0).
		r.Created = status == http.StatusCreated
		return r.UpsertResult, nil
	default:
		return UpsertResult{}, parseErrors(status, body)
	}
}

// Get reads a record by its Salesforce id; with fields, only those.
func (c *Client) Get(ctx context.Context, object, id string, fields ...string) (Record, error) {
	rec, err := c.getRecord(ctx, SObjectPath(object, id), fields)
	if err != nil {
		return nil, fmt.Errorf("salesforce: get %s %s: %w", object, id, err)
	}
	return rec, nil
}

// GetByExternalID reads the record whose external id field equals value.
func (c *Client) GetByExternalID(ctx context.Context, object, extIDField, value string, fields ...string) (Record, error) {
	rec, err := c.getRecord(ctx, SObjectPath(object, extIDField, value), fields)
	if err != nil {
		return nil, fmt.Errorf("salesforce: get %s %s=%s: %w", object, extIDField, value, err)
	}
	return rec, nil
}

func (c *Client) getRecord(ctx context.Context, path string, fields []string) (Record, error) {
	var q url.Values
	if len(fields) > 0 {
		q = url.Values{"fields": {strings.Join(fields, ",")}}
	}
	resp, err := c.do(ctx, request{endpoint: "get", method: http.MethodGet, path: path, query: q, idempotent: true})
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusMultipleChoices {
		var urls []string
		_ = json.Unmarshal(resp.body, &urls)
		return nil, &MultipleMatchesError{URLs: urls}
	}
	var rec Record
	if err := json.Unmarshal(resp.body, &rec); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return rec, nil
}

// Query runs a SOQL query and returns every record, following
// nextRecordsUrl across batches.
func (c *Client) Query(ctx context.Context, soql string) ([]Record, error) {
	req := request{endpoint: "query", method: http.MethodGet, path: "/query", query: url.Values{"q": {soql}}, idempotent: true}
	var out []Record
	for {
		resp, err := c.do(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("salesforce: query: %w", err)
		}
		var page struct {
			Done           bool     `json:"done"`
			NextRecordsURL string   `json:"nextRecordsUrl"`
			Records        []Record `json:"records"`
		}
		if err := json.Unmarshal(resp.body, &page); err != nil {
			return nil, fmt.Errorf("salesforce: query: decode: %w", err)
		}
		out = append(out, page.Records...)
		if page.Done || page.NextRecordsURL == "" {
			return out, nil
		}
		req = request{endpoint: "query", method: http.MethodGet, path: page.NextRecordsURL, absolute: true, idempotent: true}
	}
}

// ObjectDescribe is the part of GET /sobjects/{Object}/describe the client
// uses.
type ObjectDescribe struct {
	Name      string          `json:"name"`
	Label     string          `json:"label"`
	KeyPrefix string          `json:"keyPrefix"`
	Custom    bool            `json:"custom"`
	Fields    []FieldDescribe `json:"fields"`
}

// Field returns the named field's description.
func (d *ObjectDescribe) Field(name string) (FieldDescribe, bool) {
	for _, f := range d.Fields {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return FieldDescribe{}, false
}

// FieldDescribe is one field of a describe answer.
type FieldDescribe struct {
	Name               string          `json:"name"`
	Label              string          `json:"label"`
	Type               string          `json:"type"`
	Length             int             `json:"length"`
	Nillable           bool            `json:"nillable"`
	ExternalID         bool            `json:"externalId"`
	Unique             bool            `json:"unique"`
	Createable         bool            `json:"createable"`
	Updateable         bool            `json:"updateable"`
	DefaultedOnCreate  bool            `json:"defaultedOnCreate"`
	RestrictedPicklist bool            `json:"restrictedPicklist"`
	PicklistValues     []PicklistValue `json:"picklistValues"`
	ReferenceTo        []string        `json:"referenceTo"`
	RelationshipName   string          `json:"relationshipName"`
}

// PicklistValue is one value of a picklist field.
type PicklistValue struct {
	Value        string `json:"value"`
	Label        string `json:"label"`
	Active       bool   `json:"active"`
	DefaultValue bool   `json:"defaultValue"`
}

// Describe returns the object's metadata.
func (c *Client) Describe(ctx context.Context, object string) (*ObjectDescribe, error) {
	resp, err := c.do(ctx, request{endpoint: "describe", method: http.MethodGet, path: SObjectPath(object, "describe"), idempotent: true})
	if err != nil {
		return nil, fmt.Errorf("salesforce: describe %s: %w", object, err)
	}
	var d ObjectDescribe
	if err := json.Unmarshal(resp.body, &d); err != nil {
		return nil, fmt.Errorf("salesforce: describe %s: decode: %w", object, err)
	}
	return &d, nil
}

// ObjectSchema is what a service needs of one object: the fields it writes
// and the external id field it upserts by.
type ObjectSchema struct {
	Object          string
	ExternalIDField string
	Fields          []string
}

// CheckSchema describes each object and reports, as *SchemaError values
// joined together, every configured field the org lacks or that the
// integration user cannot write, and external id fields not flagged External
// ID. Run it at start: field names come from configuration and every org
// names its custom fields differently.
func (c *Client) CheckSchema(ctx context.Context, want ...ObjectSchema) error {
	var errs []error
	for _, w := range want {
		d, err := c.Describe(ctx, w.Object)
		if err != nil {
			if IsNotFound(err) {
				missing := slices.Clone(w.Fields)
				if w.ExternalIDField != "" {
					missing = append(missing, w.ExternalIDField)
				}
				errs = append(errs, &SchemaError{Object: w.Object, Missing: missing,
					Problems: []string{"object does not exist or is not accessible to the integration user"}})
				continue
			}
			return fmt.Errorf("salesforce: check schema: %w", err)
		}
		se := &SchemaError{Object: w.Object}
		if w.ExternalIDField != "" {
			f, ok := d.Field(w.ExternalIDField)
			switch {
			case !ok:
				se.Missing = append(se.Missing, w.ExternalIDField)
			case !f.ExternalID:
				se.Problems = append(se.Problems, fmt.Sprintf("field %s is not flagged External ID", f.Name))
			case !f.Unique:
				// Not fatal for Salesforce, but a non-unique key lets two
				// racing creates make duplicates that later upserts answer 300.
				se.Problems = append(se.Problems, fmt.Sprintf("external id field %s is not Unique", f.Name))
			}
		}
		for _, name := range w.Fields {
			f, ok := d.Field(name)
			switch {
			case !ok:
				se.Missing = append(se.Missing, name)
			case !f.Createable || !f.Updateable:
				se.Problems = append(se.Problems, fmt.Sprintf("field %s is not writable by the integration user", f.Name))
			}
		}
		if len(se.Missing) > 0 || len(se.Problems) > 0 {
			errs = append(errs, se)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("salesforce: check schema: %w", err)
	}
	return nil
}

// Version is one entry of GET /services/data/.
type Version struct {
	Label   string `json:"label"`
	URL     string `json:"url"`
	Version string `json:"version"`
}

// Versions lists the API versions the instance serves.
func (c *Client) Versions(ctx context.Context) ([]Version, error) {
	resp, err := c.do(ctx, request{endpoint: "versions", method: http.MethodGet, path: "/services/data/", absolute: true, idempotent: true})
	if err != nil {
		return nil, fmt.Errorf("salesforce: list versions: %w", err)
	}
	var vs []Version
	if err := json.Unmarshal(resp.body, &vs); err != nil {
		return nil, fmt.Errorf("salesforce: list versions: decode: %w", err)
	}
	return vs, nil
}

// CheckVersion fails when the instance does not serve the configured
// API version (too new for the org, or retired).
func (c *Client) CheckVersion(ctx context.Context) error {
	vs, err := c.Versions(ctx)
	if err != nil {
		return err
	}
	want := strings.TrimPrefix(c.opts.APIVersion, "v")
	for _, v := range vs {
		if v.Version == want {
			return nil
		}
	}
	return fmt.Errorf("salesforce: API version %s is not served by this instance", c.opts.APIVersion)
}
