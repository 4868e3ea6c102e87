package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
)

// MaxSubrequests is Salesforce's limit on subrequests in one /composite call.
const MaxSubrequests = 25

// CompositeRequest is a POST /composite body. With AllOrNone, Salesforce
// rolls the whole request back when any subrequest fails, which is how a
// Case and its file records are written together or not at all.
type CompositeRequest struct {
	AllOrNone   bool         `json:"allOrNone"`
	Subrequests []Subrequest `json:"compositeRequest"`
}

// Subrequest is one call inside a composite request. Later subrequests may
// refer to earlier results with Ref (e.g. "@{refCase.id}") in URL or Body.
type Subrequest struct {
	Method      string            `json:"method"`
	URL         string            `json:"url"`
	ReferenceID string            `json:"referenceId"`
	Body        any               `json:"body,omitempty"`
	HTTPHeaders map[string]string `json:"httpHeaders,omitempty"`
}

// Ref returns a composite reference to a field of an earlier subrequest's
// result: Ref("refCase", "id") is "@{refCase.id}".
func Ref(referenceID, field string) string {
	return "@{" + referenceID + "." + field + "}"
}

// UpsertSubrequest builds the composite form of Upsert.
func (c *Client) UpsertSubrequest(referenceID, object, extIDField, extID string, fields map[string]any) Subrequest {
	return Subrequest{
		Method:      http.MethodPatch,
		URL:         "/services/data/" + c.opts.APIVersion + SObjectPath(object, extIDField, extID),
		ReferenceID: referenceID,
		Body:        fields,
	}
}

// SubResponse is one subrequest's result.
type SubResponse struct {
	ReferenceID    string            `json:"referenceId"`
	HTTPStatusCode int               `json:"httpStatusCode"`
	HTTPHeaders    map[string]string `json:"httpHeaders"`
	Body           json.RawMessage   `json:"body"`
}

// Err returns the subrequest's failure as Errors (or *MultipleMatchesError
// for a 300), nil when it succeeded.
func (s SubResponse) Err() error {
	switch {
	case s.HTTPStatusCode == http.StatusMultipleChoices:
		var urls []string
		_ = json.Unmarshal(s.Body, &urls)
		return &MultipleMatchesError{URLs: urls}
	case s.HTTPStatusCode >= 300:
		return parseErrors(s.HTTPStatusCode, s.Body)
	}
	return nil
}

// UpsertResult interprets the subresponse of an UpsertSubrequest.
func (s SubResponse) UpsertResult() (UpsertResult, error) {
	return upsertResult("", "", "", s.HTTPStatusCode, s.Body)
}

// CompositeResponse is the /composite answer, one result per subrequest in
// request order.
type CompositeResponse struct {
	Results []SubResponse `json:"compositeResponse"`
}

// Result returns the result of the subrequest with that reference id.
func (r *CompositeResponse) Result(referenceID string) (SubResponse, bool) {
	for _, s := range r.Results {
		if s.ReferenceID == referenceID {
			return s, true
		}
	}
	return SubResponse{}, false
}

// CompositeError says which subrequest made a composite request fail. With
// allOrNone the other subrequests report PROCESSING_HALTED; Err is the
// cause, so HasCode, IsValidation and FieldsOf see the real error.
type CompositeError struct {
	ReferenceID string
	Err         error
}

func (e *CompositeError) Error() string {
	return fmt.Sprintf("subrequest %s: %v", e.ReferenceID, e.Err)
}

func (e *CompositeError) Unwrap() error { return e.Err }

// cause finds the subrequest that failed first for a reason of its own,
// skipping those only halted because of it.
func (r *CompositeResponse) cause() *CompositeError {
	var halted *CompositeError
	for _, s := range r.Results {
		err := s.Err()
		if err == nil {
			continue
		}
		if HasCode(err, CodeProcessingHalted) || HasCode(err, CodeAllOrNoneRolledBack) {
			if halted == nil {
				halted = &CompositeError{ReferenceID: s.ReferenceID, Err: err}
			}
			continue
		}
		return &CompositeError{ReferenceID: s.ReferenceID, Err: err}
	}
	return halted
}

var referenceIDRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Composite sends one /composite request (one API call however many
// subrequests). Salesforce answers 200 even when subrequests fail; Composite
// then returns the response together with a *CompositeError naming the
// failing subrequest.
//
// With AllOrNone nothing was committed on failure, so when the cause is
// transient (UNABLE_TO_LOCK_ROW) the whole request is retried with backoff.
// A request made only of upserts, reads, updates and deletes is idempotent
// and is also retried after a lost answer.
func (c *Client) Composite(ctx context.Context, req CompositeRequest) (*CompositeResponse, error) {
	op := fmt.Sprintf("salesforce: composite (%d subrequests)", len(req.Subrequests))
	if n := len(req.Subrequests); n == 0 || n > MaxSubrequests {
		return nil, fmt.Errorf("%s: need 1 to %d subrequests", op, MaxSubrequests)
	}
	idempotent := true
	seen := map[string]bool{}
	for _, s := range req.Subrequests {
		if !referenceIDRE.MatchString(s.ReferenceID) || seen[s.ReferenceID] {
			return nil, fmt.Errorf("%s: reference id %q must be unique letters, digits and _", op, s.ReferenceID)
		}
		seen[s.ReferenceID] = true
		if s.Method == http.MethodPost {
			idempotent = false
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", op, err)
	}
	for attempt := 1; ; attempt++ {
		resp, err := c.do(ctx, request{endpoint: "composite", method: http.MethodPost, path: "/composite", body: body, idempotent: idempotent})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		var out CompositeResponse
		if err := json.Unmarshal(resp.body, &out); err != nil {
			return nil, fmt.Errorf("%s: decode: %w", op, err)
		}
		cause := out.cause()
		if cause == nil {
			return &out, nil
		}
		if req.AllOrNone && attempt < c.opts.MaxAttempts && IsLocked(cause) {
			if werr := c.sleep(ctx, attempt); werr != nil {
				return &out, fmt.Errorf("%s: %w", op, errors.Join(cause, werr))
			}
			continue
		}
		return &out, fmt.Errorf("%s: %w", op, cause)
	}
}
