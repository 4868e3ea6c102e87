package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"time"
)

// File is one evidence file to submit: Size bytes from Content, or Data.
type File struct {
	Name    string
	Data    []byte
	Content func() io.Reader // used when Data is nil: a fresh reader of Size bytes
	Size    int64
}

// Report is intake's view of a report (GET /api/v1/reports/{id}), the
// fields the tests check.
type Report struct {
	ID     string       `json:"id"`
	Status string       `json:"status"`
	Files  []ReportFile `json:"files"`
	NCMEC  struct {
		ReportID  int64  `json:"report_id"`
		State     string `json:"state"`
		LastError string `json:"last_error"`
		// AmbiguousSubmits counts /submit attempts whose answer was lost:
		// each may have opened an NCMEC report that NCMEC deletes unfinished.
		AmbiguousSubmits int    `json:"ambiguous_submits"`
		LearnedFrom      string `json:"learned_from"`
	} `json:"ncmec"`
	Case struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Error string `json:"error"`
	} `json:"case"`
	Events []struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Summary string `json:"summary"`
	} `json:"events"`
}

// ReportFile is one file of a Report.
type ReportFile struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	MD5         string `json:"md5"`
	SHA256      string `json:"sha256"`
	NCMECFileID string `json:"ncmec_file_id"`
	NCMECMD5    string `json:"ncmec_md5"`
}

// APIError is a refusal of a service's API.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// Submit posts a report to intake: the report JSON, then one part per file,
// streamed so that large files are never held in memory.
func (s *Stack) Submit(ctx context.Context, report any, files []File) (Report, error) {
	return s.submit(ctx, report, files, "")
}

// submit is Submit with an Idempotency-Key (none when empty).
func (s *Stack) submit(ctx context.Context, report any, files []File, key string) (Report, error) {
	meta, err := json.Marshal(report)
	if err != nil {
		return Report{}, err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeParts(mw, meta, files))
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL("intake")+"/api/v1/reports", pr)
	if err != nil {
		return Report{}, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	var rep Report
	err = s.do(req, http.StatusCreated, &rep)
	pr.CloseWithError(io.ErrClosedPipe) // stops the writer if the request ended early
	return rep, err
}

func writeParts(mw *multipart.Writer, meta []byte, files []File) error {
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="report"`)
	h.Set("Content-Type", "application/json")
	w, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := w.Write(meta); err != nil {
		return err
	}
	for _, f := range files {
		w, err := mw.CreateFormFile("file", f.Name)
		if err != nil {
			return err
		}
		var r io.Reader = bytes.NewReader(f.Data)
		if f.Data == nil {
			r = io.LimitReader(f.Content(), f.Size)
		}
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
	}
	return mw.Close()
}

// Report reads a report's progress from intake.
func (s *Stack) Report(ctx context.Context, id string) (Report, error) {
	var rep Report
	err := s.get(ctx, s.URL("intake")+"/api/v1/reports/"+url.PathEscape(id), &rep)
	return rep, err
}

// AuditEntry is one entry of the audit log.
type AuditEntry struct {
	Seq      int64  `json:"seq"`
	EventID  string `json:"event_id"`
	Type     string `json:"type"`
	ReportID string `json:"report_id"`
	// StreamSeq is the event's sequence in the TAKEDOWN stream.
	StreamSeq uint64 `json:"stream_seq"`
}

// Audit reads every audit entry, of one report or (reportID "") all of them.
func (s *Stack) Audit(ctx context.Context, reportID string) ([]AuditEntry, error) {
	var all []AuditEntry
	after := int64(0)
	for {
		q := url.Values{"limit": {"1000"}, "after": {fmt.Sprint(after)}}
		if reportID != "" {
			q.Set("report_id", reportID)
		}
		var page struct {
			Entries   []AuditEntry `json:"entries"`
			NextAfter *int64       `json:"next_after"`
		}
		if err := s.get(ctx, s.URL("audit-logger")+"/api/v1/audit?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		all = append(all, page.Entries...)
		if page.NextAfter == nil {
			return all, nil
		}
		after = *page.NextAfter
	}
}

// Verification is the answer of /api/v1/audit/verify.
type Verification struct {
	OK       bool  `json:"ok"`
	Entries  int64 `json:"entries"`
	FirstBad *struct {
		Seq     int64  `json:"seq"`
		EventID string `json:"event_id"`
		Reason  string `json:"reason"`
	} `json:"first_bad"`
}

// VerifyAudit walks the audit log's hash chain.
func (s *Stack) VerifyAudit(ctx context.Context) (Verification, error) {
	var v Verification
	err := s.get(ctx, s.URL("audit-logger")+"/api/v1/audit/verify", &v)
	return v, err
}

// Retract asks the retraction service to retract a report.
func (s *Stack) Retract(ctx context.Context, id, reason string) error {
	body, _ := json.Marshal(map[string]string{"reason": reason})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL("retraction")+"/api/v1/reports/"+url.PathEscape(id)+"/retraction", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return s.do(req, http.StatusAccepted, nil)
}

func (s *Stack) get(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return s.do(req, http.StatusOK, v)
}

func (s *Stack) do(req *http.Request, want int, v any) error {
	if req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer after %v: %w", req.Method, req.URL.Path, time.Since(start), err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, &APIError{Status: resp.StatusCode, Body: string(b)})
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// Hold is a legal hold on a report's evidence.
type Hold struct {
	ID string `json:"id"`
}

// PlaceHold places a legal hold on a report (role evidence-admin, which the
// development token holds).
func (s *Stack) PlaceHold(ctx context.Context, reportID, reason string) (Hold, error) {
	var h Hold
	err := s.send(ctx, http.MethodPost, s.URL("intake")+"/api/v1/reports/"+url.PathEscape(reportID)+"/holds",
		map[string]string{"reason": reason}, http.StatusCreated, &h)
	return h, err
}

// LiftHold lifts a legal hold.
func (s *Stack) LiftHold(ctx context.Context, reportID, holdID, reason string) error {
	return s.send(ctx, http.MethodDelete, s.URL("intake")+"/api/v1/reports/"+url.PathEscape(reportID)+"/holds/"+url.PathEscape(holdID),
		map[string]string{"reason": reason}, http.StatusNoContent, nil)
}

// Refile files a retracted report again (POST /api/v1/reports/{id}/refile).
func (s *Stack) Refile(ctx context.Context, reportID string) (Report, error) {
	var rep Report
	err := s.send(ctx, http.MethodPost, s.URL("intake")+"/api/v1/reports/"+url.PathEscape(reportID)+"/refile", nil, http.StatusAccepted, &rep)
	return rep, err
}

// DecideLegal takes legal's decision on a report held for it, as the staff
// member of token (s.Token submits; s.Token2 is a second person).
func (s *Stack) DecideLegal(ctx context.Context, token, reportID string, approve bool, reason string) error {
	b, _ := json.Marshal(map[string]any{"approve": approve, "reason": reason})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		s.URL("intake")+"/api/v1/reports/"+url.PathEscape(reportID)+"/legal-decision", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return s.do(req, http.StatusOK, nil)
}

// send is a request with a JSON body (none when body is nil).
func (s *Stack) send(ctx context.Context, method, url string, body any, want int, v any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return s.do(req, want, v)
}
