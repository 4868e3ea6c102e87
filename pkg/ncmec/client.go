// Package ncmec is a client for NCMEC's CyberTipline reporting API (the "ESP
// reporting web service" under /ispws): the report and fileDetails documents
// in the schema's order, the seven endpoints (status, xsd, submit, upload,
// fileinfo, finish, retract), and a classification of every failure so that
// a caller can tell what to retry, what to resume and what to escalate.
//
// The client itself never retries: /submit and /upload are not idempotent,
// and only the caller, holding the persisted state of a report, can decide
// whether repeating a call is safe (see IsAmbiguous).
package ncmec

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Base URLs of the two environments. Their credentials differ, and report
// ids of one mean nothing in the other.
const (
	ProductionURL = "https://report.cybertip.org/ispws"
	TestURL       = "https://exttest.cybertip.org/ispws"
)

// Endpoint names, as used in errors and passed to Options.Observe.
const (
	EndpointStatus   = "status"
	EndpointXSD      = "xsd"
	EndpointSubmit   = "submit"
	EndpointUpload   = "upload"
	EndpointFileInfo = "fileinfo"
	EndpointFinish   = "finish"
	EndpointRetract  = "retract"
)

// Options configure a Client. BaseURL, Username and Password are required.
type Options struct {
	BaseURL  string // ProductionURL, TestURL, or a simulator's URL
	Username string
	Password string

	// HTTPClient replaces the default client (connect, TLS and
	// response-header timeouts, no redirects). It must not set Timeout if
	// large uploads are expected: the whole upload would have to fit in it.
	HTTPClient *http.Client
	// IdleConns is how many connections the default client keeps open
	// between calls; default 8. Set it to how many calls run at once, so
	// that the connections of a burst are reused rather than closed and
	// dialled again (a TCP and a TLS handshake with NCMEC each time).
	IdleConns int
	// CallTimeout bounds every call except /upload (whose duration depends on
	// the file); default 1 minute. Uploads are bounded by the caller's
	// context and the transport's timeouts.
	CallTimeout time.Duration
	// MaxResponseBytes caps every response body; default 1 MiB.
	MaxResponseBytes int64
	// UserAgent is sent on every request; default "takedown-ncmec".
	UserAgent string
	// Observe, if set, is called once per call with the endpoint, the
	// outcome ("ok", "retryable", "permanent", "state"; see Outcome) and the
	// duration, e.g. to feed a latency histogram.
	Observe func(endpoint, result string, d time.Duration)
}

// Client talks to one CyberTipline environment. It is safe for concurrent use.
type Client struct {
	base        string
	user, pass  string
	hc          *http.Client
	callTimeout time.Duration
	maxBody     int64
	userAgent   string
	observe     func(string, string, time.Duration)
}

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("ncmec: base URL %q: want http(s)://host/path", opts.BaseURL)
	}
	if opts.Username == "" || opts.Password == "" {
		return nil, errors.New("ncmec: username and password are required")
	}
	c := &Client{
		base:        strings.TrimRight(opts.BaseURL, "/"),
		user:        opts.Username,
		pass:        opts.Password,
		hc:          opts.HTTPClient,
		callTimeout: opts.CallTimeout,
		maxBody:     opts.MaxResponseBytes,
		userAgent:   opts.UserAgent,
		observe:     opts.Observe,
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient(cmp.Or(opts.IdleConns, 8))
	}
	if c.callTimeout <= 0 {
		c.callTimeout = time.Minute
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	if c.userAgent == "" {
		c.userAgent = "takedown-ncmec"
	}
	return c, nil
}

func defaultHTTPClient(idleConns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			// Counted from the end of the request body: NCMEC hashes and
			// stores an upload before it answers.
			ResponseHeaderTimeout: 2 * time.Minute,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   idleConns,
			ForceAttemptHTTP2:     true,
		},
		// A redirect would resend the credentials elsewhere and turn a POST
		// into a GET; treat it as an answer instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Status checks that the service is reachable and the credentials work. The
// description names the remote user and IP.
func (c *Client) Status(ctx context.Context) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	return observed(c, EndpointStatus, func() (*Response, error) {
		req, err := c.newRequest(ctx, http.MethodGet, EndpointStatus, nil, "")
		if err != nil {
			return nil, err
		}
		return c.doResponse(EndpointStatus, req)
	})
}

// XSD downloads the schema NCMEC currently serves.
func (c *Client) XSD(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	return observed(c, EndpointXSD, func() ([]byte, error) {
		req, err := c.newRequest(ctx, http.MethodGet, EndpointXSD, nil, "")
		if err != nil {
			return nil, err
		}
		raw, err := c.send(EndpointXSD, req)
		if err != nil {
			return nil, err
		}
		if root := rootElement(raw.body); root == "schema" {
			return raw.body, nil
		}
		_, err = c.interpret(EndpointXSD, raw)
		if err == nil {
			err = c.errorf(EndpointXSD, raw, KindRetryable, true, fmt.Errorf("%w: not a schema", ErrMalformedResponse))
		}
		return nil, err
	})
}

// Submit encodes r and opens a report with it. Prefer EncodeReport plus
// SubmitXML when the exact XML sent must be stored before sending.
func (c *Client) Submit(ctx context.Context, r *Report) (*Response, error) {
	doc, err := EncodeReport(r)
	if err != nil {
		return nil, c.inputError(EndpointSubmit, err)
	}
	return c.SubmitXML(ctx, doc)
}

// SubmitXML opens a report from an encoded <report> document and returns its
// reportId. /submit is not idempotent: after an error for which IsAmbiguous
// holds, a report may be open at NCMEC; do not call SubmitXML again
// automatically.
func (c *Client) SubmitXML(ctx context.Context, doc []byte) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	return observed(c, EndpointSubmit, func() (*Response, error) {
		req, err := c.newRequest(ctx, http.MethodPost, EndpointSubmit, strings.NewReader(string(doc)), "text/xml; charset=utf-8")
		if err != nil {
			return nil, err
		}
		req.ContentLength = int64(len(doc))
		resp, err := c.doResponse(EndpointSubmit, req)
		if err != nil {
			return nil, err
		}
		if resp.ReportID <= 0 {
			// NCMEC said success, so a report is probably open, but we cannot
			// name it: ambiguous, and not to be repeated.
			return nil, &Error{Endpoint: EndpointSubmit, HTTPStatus: http.StatusOK, RequestID: resp.RequestID,
				Kind: KindPermanent, Ambiguous: true, Err: ErrMissingReportID}
		}
		return resp, nil
	})
}

// UploadResult is the answer to /upload.
type UploadResult struct {
	ReportID  int64
	FileID    string // 32 hex characters, opaque
	Hash      string // MD5 (hex) NCMEC computed over the bytes it received
	SentMD5   string // MD5 (hex) of the bytes this client sent
	Size      int64  // bytes sent
	RequestID string
	Raw       []byte
}

// Upload streams one file into the open report reportID as the multipart
// fields "id" and "file". The body is read once, in constant memory; size is
// its length in bytes, or -1 when unknown (the request is then chunked).
//
// Upload is not idempotent: every successful call adds a file. If NCMEC's MD5
// differs from the bytes sent, Upload returns both the result (the file does
// exist at NCMEC under FileID) and an error wrapping ErrHashMismatch.
func (c *Client) Upload(ctx context.Context, reportID int64, name string, size int64, body io.Reader) (*UploadResult, error) {
	return observed(c, EndpointUpload, func() (*UploadResult, error) {
		if reportID <= 0 || body == nil {
			return nil, c.inputError(EndpointUpload, fmt.Errorf("%w: report id and body are required", ErrInvalidInput))
		}
		if name == "" {
			name = "file"
		}
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		length := int64(-1)
		if size >= 0 {
			overhead, err := multipartOverhead(mw.Boundary(), reportID, name)
			if err != nil {
				return nil, c.inputError(EndpointUpload, err)
			}
			length = overhead + size
		}
		sum := md5.New()
		counted := &countingReader{r: io.TeeReader(body, sum)}
		done := make(chan error, 1)
		go func() {
			err := writeUpload(mw, reportID, name, counted)
			pw.CloseWithError(err)
			done <- err
		}()

		req, err := c.newRequest(ctx, http.MethodPost, EndpointUpload, pr, mw.FormDataContentType())
		if err != nil {
			pr.Close()
			<-done
			return nil, err
		}
		req.ContentLength = length
		raw, sendErr := c.send(EndpointUpload, req)
		// The transport may stop reading early (error, or an answer before
		// the whole body): unblock the writer and wait for it, so nothing
		// outlives the call.
		pr.Close()
		writeErr := <-done
		if sendErr != nil {
			if writeErr != nil && !errors.Is(writeErr, io.ErrClosedPipe) {
				// Our source failed mid-file (e.g. the evidence store): the
				// multipart body is incomplete, so no file was added.
				return nil, &Error{Endpoint: EndpointUpload, Kind: KindRetryable, Err: fmt.Errorf("read upload body: %w", writeErr)}
			}
			return nil, sendErr
		}
		ans, err := c.interpret(EndpointUpload, raw)
		if err != nil {
			return nil, err
		}
		resp, ok := ans.(*Response)
		if !ok {
			return nil, c.errorf(EndpointUpload, raw, KindRetryable, true, fmt.Errorf("%w: reportDoneResponse to upload", ErrMalformedResponse))
		}
		if writeErr != nil {
			// NCMEC answered success although we could not send the whole
			// file: the stored file is not ours.
			return nil, c.errorf(EndpointUpload, raw, KindRetryable, true, fmt.Errorf("read upload body: %w", writeErr))
		}
		if resp.FileID == "" {
			return nil, c.errorf(EndpointUpload, raw, KindPermanent, true, ErrMissingFileID)
		}
		res := &UploadResult{
			ReportID: resp.ReportID, FileID: resp.FileID, Hash: resp.Hash,
			SentMD5: hex.EncodeToString(sum.Sum(nil)), Size: counted.n,
			RequestID: resp.RequestID, Raw: resp.Raw,
		}
		if res.Hash != "" && !strings.EqualFold(res.Hash, res.SentMD5) {
			return res, c.errorf(EndpointUpload, raw, KindPermanent, false,
				fmt.Errorf("%w: file %s: sent %s, NCMEC has %s", ErrHashMismatch, res.FileID, res.SentMD5, res.Hash))
		}
		return res, nil
	})
}

func writeUpload(mw *multipart.Writer, reportID int64, name string, body io.Reader) error {
	if err := mw.WriteField("id", strconv.FormatInt(reportID, 10)); err != nil {
		return err
	}
	part, err := mw.CreateFormFile("file", name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, body); err != nil {
		return err
	}
	return mw.Close()
}

// multipartOverhead is the size of everything writeUpload sends around the
// file bytes, found by a dry run with the same boundary, so that a known-size
// upload carries a Content-Length instead of chunked encoding.
func multipartOverhead(boundary string, reportID int64, name string) (int64, error) {
	var cw countingWriter
	mw := multipart.NewWriter(&cw)
	if err := mw.SetBoundary(boundary); err != nil {
		return 0, err
	}
	if err := writeUpload(mw, reportID, name, strings.NewReader("")); err != nil {
		return 0, err
	}
	return cw.n, nil
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

type countingReader struct {
	r io.Reader
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}

// FileInfo encodes d and sends it to /fileinfo. Prefer EncodeFileDetails
// plus FileInfoXML when the exact XML sent must be stored.
func (c *Client) FileInfo(ctx context.Context, d *FileDetails) (*Response, error) {
	doc, err := EncodeFileDetails(d)
	if err != nil {
		return nil, c.inputError(EndpointFileInfo, err)
	}
	return c.FileInfoXML(ctx, doc)
}

// FileInfoXML sends an encoded <fileDetails> document.
func (c *Client) FileInfoXML(ctx context.Context, doc []byte) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	return observed(c, EndpointFileInfo, func() (*Response, error) {
		req, err := c.newRequest(ctx, http.MethodPost, EndpointFileInfo, strings.NewReader(string(doc)), "text/xml; charset=utf-8")
		if err != nil {
			return nil, err
		}
		req.ContentLength = int64(len(doc))
		return c.doResponse(EndpointFileInfo, req)
	})
}

// Finish files the report and returns the receipt. Afterwards nothing can be
// added and the report cannot be retracted. A repeated Finish answers 5102
// (IsState): the report was already finished, which is the goal, though the
// receipt of the first call is then not returned again.
func (c *Client) Finish(ctx context.Context, reportID int64) (*DoneResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	return observed(c, EndpointFinish, func() (*DoneResponse, error) {
		req, err := c.idRequest(ctx, EndpointFinish, reportID)
		if err != nil {
			return nil, err
		}
		raw, err := c.send(EndpointFinish, req)
		if err != nil {
			return nil, err
		}
		ans, err := c.interpret(EndpointFinish, raw)
		if err != nil {
			return nil, err
		}
		done, ok := ans.(*DoneResponse)
		if !ok {
			return nil, c.errorf(EndpointFinish, raw, KindRetryable, true, fmt.Errorf("%w: reportResponse with code 0 to finish", ErrMalformedResponse))
		}
		if done.ReportID <= 0 {
			return nil, c.errorf(EndpointFinish, raw, KindRetryable, true, ErrMissingReportID)
		}
		return done, nil
	})
}

// Retract cancels an unfinished report. A repeated Retract answers 5101;
// a finished report answers 5102 (only NCMEC can withdraw it).
func (c *Client) Retract(ctx context.Context, reportID int64) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	return observed(c, EndpointRetract, func() (*Response, error) {
		req, err := c.idRequest(ctx, EndpointRetract, reportID)
		if err != nil {
			return nil, err
		}
		return c.doResponse(EndpointRetract, req)
	})
}

func (c *Client) idRequest(ctx context.Context, ep string, reportID int64) (*http.Request, error) {
	if reportID <= 0 {
		return nil, c.inputError(ep, fmt.Errorf("%w: report id %d", ErrInvalidInput, reportID))
	}
	form := url.Values{"id": {strconv.FormatInt(reportID, 10)}}.Encode()
	return c.newRequest(ctx, http.MethodPost, ep, strings.NewReader(form), "application/x-www-form-urlencoded")
}

func (c *Client) newRequest(ctx context.Context, method, ep string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/"+ep, body)
	if err != nil {
		return nil, c.inputError(ep, err)
	}
	req.SetBasicAuth(c.user, c.pass)
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/xml, text/xml")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

// rawAnswer is a complete HTTP answer whose status is 2xx.
type rawAnswer struct {
	status    int
	requestID string
	body      []byte
}

// send performs req and turns transport failures and non-2xx statuses into
// *Error. A 2xx answer is returned for interpretation.
func (c *Client) send(ep string, req *http.Request) (*rawAnswer, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, &Error{Endpoint: ep, Kind: KindRetryable, Ambiguous: !neverSent(err), Err: err}
	}
	defer resp.Body.Close()
	raw := &rawAnswer{status: resp.StatusCode, requestID: resp.Header.Get("Request-ID")}
	raw.body, err = readCapped(resp.Body, c.maxBody)
	if err != nil {
		return nil, c.errorf(ep, raw, KindRetryable, true, fmt.Errorf("read response: %w", err))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return raw, nil
	}
	e := &Error{Endpoint: ep, HTTPStatus: resp.StatusCode, RequestID: raw.requestID, Description: http.StatusText(resp.StatusCode)}
	// Some gateways and the 2016 server put a reportResponse in error
	// bodies; keep its code and text when there is one.
	if ans, derr := decodeAnswer(raw.body); derr == nil {
		if r, ok := ans.(*Response); ok {
			e.Code, e.Description = r.Code, r.Description
		}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// Whatever the body says (the 2016 server said 1000, which now means
		// "server error"), this is a credentials problem.
		e.Kind, e.Auth = KindPermanent, true
	case resp.StatusCode >= 500:
		e.Kind, e.Ambiguous = KindRetryable, true // a gateway may have forwarded the call
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		e.Kind = KindRetryable
	default:
		e.Kind = KindPermanent
	}
	return nil, e
}

// interpret decodes a 2xx answer; a non-zero responseCode is an *Error.
func (c *Client) interpret(ep string, raw *rawAnswer) (any, error) {
	ans, err := decodeAnswer(raw.body)
	if err != nil {
		// Success status but no answer we can trust: the call may have been
		// applied.
		return nil, c.errorf(ep, raw, KindRetryable, true, err)
	}
	var code int
	var desc string
	switch a := ans.(type) {
	case *Response:
		a.RequestID = raw.requestID
		code, desc = a.Code, a.Description
	case *DoneResponse:
		a.RequestID = raw.requestID
		code = a.Code
	}
	if code != CodeSuccess {
		return nil, &Error{Endpoint: ep, Code: code, Description: desc, HTTPStatus: raw.status,
			RequestID: raw.requestID, Kind: kindOfCode(code), Auth: isAuthCode(code)}
	}
	return ans, nil
}

// doResponse sends req and expects a successful <reportResponse>.
func (c *Client) doResponse(ep string, req *http.Request) (*Response, error) {
	raw, err := c.send(ep, req)
	if err != nil {
		return nil, err
	}
	ans, err := c.interpret(ep, raw)
	if err != nil {
		return nil, err
	}
	resp, ok := ans.(*Response)
	if !ok {
		return nil, c.errorf(ep, raw, KindRetryable, true, fmt.Errorf("%w: unexpected reportDoneResponse", ErrMalformedResponse))
	}
	return resp, nil
}

func (c *Client) errorf(ep string, raw *rawAnswer, kind Kind, ambiguous bool, err error) *Error {
	return &Error{Endpoint: ep, HTTPStatus: raw.status, RequestID: raw.requestID, Kind: kind, Ambiguous: ambiguous, Err: err}
}

func (c *Client) inputError(ep string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Endpoint: ep, Kind: KindPermanent, Err: err}
}

// neverSent reports whether err proves the request never reached the server
// (the connection could not be made), so the call cannot have been applied.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// observed runs call and reports its outcome to the Observe hook.
func observed[T any](c *Client, ep string, call func() (T, error)) (T, error) {
	start := time.Now()
	v, err := call()
	if c.observe != nil {
		c.observe(ep, Outcome(err), time.Since(start))
	}
	return v, err
}
