// Package salesforce is a small Salesforce REST client for recording
// trust-and-safety reports as Cases: OAuth 2.0 client credentials or JWT
// bearer, upsert by external id, /composite with allOrNone, describe-based
// schema checks, typed errors, and bounded retries of the transient failures
// Salesforce documents (rate limits, row locks, 503). It is written on
// net/http rather than on a public library because none offers context
// cancellation, typed errors and race-free token refresh (API.md §5).
//
// It imports no metrics library: OnLimitInfo and Observe let the service
// export the org's API usage and call latencies however it likes.
package salesforce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"takedown/pkg/backoff"
)

// DefaultAPIVersion is recent enough for upsert to answer 200 with the
// record id on update (needs ≥ v46.0), which composite references rely on.
const DefaultAPIVersion = "v64.0"

// Options configure a Client. LoginURL and Credentials are required.
type Options struct {
	// LoginURL is where the token endpoint lives: the org's My Domain URL
	// (client credentials) or https://login.salesforce.com (JWT bearer).
	// API calls go to the instance_url the token response names.
	LoginURL    string
	Credentials Credentials
	// APIVersion like "v64.0"; DefaultAPIVersion when empty; at least v46.0.
	APIVersion string
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client

	// MaxAttempts bounds the tries of one call for retryable failures
	// (default 5). The one replay after an expired session is not counted.
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the exponential backoff with jitter
	// between attempts (defaults 250 ms and 10 s).
	BaseBackoff, MaxBackoff time.Duration
	// TokenTimeout bounds one token refresh, shared by every caller waiting
	// for it (default 30 s).
	TokenTimeout time.Duration
	// AutoAssign is sent as Sforce-Auto-Assign; Salesforce runs the case
	// assignment rules when the header is absent, so the default is "FALSE"
	// and an org that wants them must say so ("TRUE" or a rule id).
	AutoAssign string

	// OnLimitInfo, when set, receives the org's daily API usage from every
	// response's Sforce-Limit-Info header.
	OnLimitInfo func(used, max int)
	// Observe, when set, is called after every HTTP exchange with the
	// endpoint ("token", "upsert", "composite", "describe", "get", "query",
	// "versions"), the result ("ok", an errorCode such as
	// "UNABLE_TO_LOCK_ROW", "transport_error") and the latency.
	Observe func(endpoint, result string, d time.Duration)

	// Now is the clock for JWT expiry; time.Now when nil.
	Now func() time.Time
}

// Client talks to one Salesforce org. It is safe for concurrent use.
type Client struct {
	opts Options

	mu         sync.Mutex
	tok        *token
	refreshing *refreshCall
}

var versionRE = regexp.MustCompile(`^v(\d+)\.(\d+)$`)

// New checks the options and returns a client. It makes no request; call
// CheckVersion and CheckSchema at start to fail fast on a wrong setup.
func New(opts Options) (*Client, error) {
	if opts.LoginURL == "" {
		return nil, errors.New("salesforce: LoginURL is required")
	}
	u, err := url.Parse(opts.LoginURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("salesforce: LoginURL %q is not an http(s) URL", opts.LoginURL)
	}
	opts.LoginURL = strings.TrimRight(opts.LoginURL, "/")
	if opts.Credentials == nil {
		return nil, errors.New("salesforce: Credentials are required (ClientCredentials or JWTBearer)")
	}
	if _, err := opts.Credentials.tokenForm(time.Now()); err != nil {
		return nil, fmt.Errorf("salesforce: %w", err)
	}
	if opts.APIVersion == "" {
		opts.APIVersion = DefaultAPIVersion
	}
	m := versionRE.FindStringSubmatch(opts.APIVersion)
	if m == nil {
		return nil, fmt.Errorf("salesforce: APIVersion %q is not like v64.0", opts.APIVersion)
	}
	if major, _ := strconv.Atoi(m[1]); major < 46 {
		return nil, fmt.Errorf("salesforce: APIVersion %s is older than v46.0, whose upsert answers carry the record id", opts.APIVersion)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.MaxBackoff < opts.BaseBackoff {
		opts.MaxBackoff = opts.BaseBackoff
	}
	if opts.TokenTimeout <= 0 {
		opts.TokenTimeout = 30 * time.Second
	}
	if opts.AutoAssign == "" {
		opts.AutoAssign = "FALSE"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Client{opts: opts}, nil
}

// APIVersion is the version the client speaks, e.g. "v64.0".
func (c *Client) APIVersion() string { return c.opts.APIVersion }

// request is one REST call the client may send several times.
type request struct {
	endpoint string // for Observe
	method   string
	// path below /services/data/vNN.N (e.g. "/sobjects/Case/describe"),
	// or, when absolute is set, the whole path (e.g. "/services/data/").
	path     string
	absolute bool
	query    url.Values
	body     []byte
	// idempotent requests are retried after transport errors and
	// ambiguous 5xx answers, where the server may have done the work.
	idempotent bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends req with the cached token, replays it once with a new token after
// 401 INVALID_SESSION_ID, and retries rate limits, row locks and 503 with
// backoff. A non-2xx answer other than 300 comes back as Errors.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	replayed := false
	for attempt := 1; ; {
		tok, err := c.currentToken(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.send(ctx, tok, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !req.idempotent || attempt >= c.opts.MaxAttempts {
				return nil, err
			}
			if werr := c.sleep(ctx, attempt); werr != nil {
				return nil, werr
			}
			attempt++
			continue
		}
		if resp.status < 300 || resp.status == http.StatusMultipleChoices {
			return resp, nil
		}
		errs := parseErrors(resp.status, resp.body)
		if resp.status == http.StatusUnauthorized && HasCode(errs, CodeInvalidSession) && !replayed {
			// The session expired or was revoked; the request did nothing.
			c.invalidate(tok)
			replayed = true
			continue
		}
		if attempt < c.opts.MaxAttempts && shouldRetry(resp.status, errs, req.idempotent) {
			if werr := c.sleep(ctx, attempt); werr != nil {
				return nil, errors.Join(errs, werr)
			}
			attempt++
			continue
		}
		return resp, errs
	}
}

// shouldRetry: rate limits, row locks and 503 mean the work was not done, so
// any request may be retried; other 5xx answers are ambiguous and only
// idempotent requests are.
func shouldRetry(status int, errs Errors, idempotent bool) bool {
	if HasCode(errs, CodeRequestLimitExceeded) || HasCode(errs, CodeUnableToLockRow) || status == http.StatusServiceUnavailable {
		return true
	}
	return status >= 500 && idempotent
}

// sleep waits the backoff before attempt+1: exponential, capped, with
// jitter so that many callers hitting one limit do not retry in lockstep.
func (c *Client) sleep(ctx context.Context, attempt int) error {
	t := time.NewTimer(backoff.Delay(attempt-1, c.opts.BaseBackoff, c.opts.MaxBackoff))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) send(ctx context.Context, tok *token, req request) (resp *response, err error) {
	start := time.Now()
	result := "ok"
	defer func() { c.observe(req.endpoint, result, time.Since(start)) }()

	u := tok.instanceURL
	if req.absolute {
		u += req.path
	} else {
		u += "/services/data/" + c.opts.APIVersion + req.path
	}
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		result = "config_error"
		return nil, err
	}
	hreq.Header.Set("Authorization", "Bearer "+tok.access)
	hreq.Header.Set("Accept", "application/json")
	if req.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hreq.Header.Set("Sforce-Auto-Assign", c.opts.AutoAssign)
	hresp, err := c.opts.HTTPClient.Do(hreq)
	if err != nil {
		result = "transport_error"
		return nil, err
	}
	defer hresp.Body.Close()
	c.limitInfo(hresp.Header.Get("Sforce-Limit-Info"))
	data, err := io.ReadAll(io.LimitReader(hresp.Body, 64<<20))
	if err != nil {
		result = "transport_error"
		return nil, fmt.Errorf("read response: %w", err)
	}
	switch {
	case hresp.StatusCode < 300:
	case hresp.StatusCode == http.StatusMultipleChoices:
		result = "multiple_choices"
	default:
		result = parseErrors(hresp.StatusCode, data)[0].Code
	}
	return &response{status: hresp.StatusCode, header: hresp.Header, body: data}, nil
}

func (c *Client) observe(endpoint, result string, d time.Duration) {
	if c.opts.Observe != nil {
		c.opts.Observe(endpoint, result, d)
	}
}

var limitRE = regexp.MustCompile(`(?:^|[,\s])api-usage=(\d+)/(\d+)`)

// limitInfo parses "api-usage=18/5000[, api-bursts=…]" (API.md §3.4).
func (c *Client) limitInfo(h string) {
	if c.opts.OnLimitInfo == nil || h == "" {
		return
	}
	m := limitRE.FindStringSubmatch(h)
	if m == nil {
		return
	}
	used, err1 := strconv.Atoi(m[1])
	max, err2 := strconv.Atoi(m[2])
	if err1 == nil && err2 == nil {
		c.opts.OnLimitInfo(used, max)
	}
}
