package ncmecsim

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"takedown/pkg/logging"
	"takedown/pkg/ncmec"
)

// maxDocumentBytes bounds /submit and /fileinfo bodies; reports are small.
const maxDocumentBytes = 16 << 20

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	user, _, _ := r.BasicAuth()
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	s.reply(w, &ncmec.Response{Description: fmt.Sprintf("Remote User : %s, Remote Ip : %s", user, ip)})
}

func (s *Server) handleXSD(w http.ResponseWriter, r *http.Request) {
	if s.opts.XSDPath == "" {
		s.fail(w, ncmec.CodeResourceNotFound, "no schema configured")
		return
	}
	f, err := os.Open(s.opts.XSDPath)
	if err != nil {
		s.log.Error("ncmecsim xsd", logging.KeyErr, err)
		s.fail(w, ncmec.CodeServerError, "")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/xml")
	_, _ = io.Copy(w, f)
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readDocument(w, r, ncmec.EndpointSubmit)
	if !ok {
		return
	}
	var doc struct {
		XMLName         xml.Name
		IncidentSummary struct {
			IncidentDateTime string `xml:"incidentDateTime"`
		} `xml:"incidentSummary"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		s.fail(w, ncmec.CodeMalformedXML, err.Error())
		return
	}
	if !s.validate(w, r, body) {
		return
	}
	if doc.XMLName.Local != "report" {
		s.fail(w, ncmec.CodeValidationFailed, fmt.Sprintf("root element is %q, expected report", doc.XMLName.Local))
		return
	}
	at, err := parseDateTime(doc.IncidentSummary.IncidentDateTime)
	if err != nil {
		s.fail(w, ncmec.CodeValidationFailed, "incidentSummary/incidentDateTime: "+err.Error())
		return
	}
	now := s.now()
	if at.After(now) {
		// What exttest answered to a future date in SkynetLabs' live test.
		s.fail(w, ncmec.CodeValidationFailed, "incidentDateTime must be a past date")
		return
	}
	s.mu.Lock()
	s.nextID++
	rep := &report{id: s.nextID, status: StatusOpen, opened: now, modified: now, xml: body}
	s.reports[rep.id] = rep
	s.order = append(s.order, rep.id)
	s.mu.Unlock()
	s.success(w, &ncmec.Response{ReportID: rep.id})
}

// handleUpload hashes and counts the file part as it streams in and keeps
// nothing else of it, so memory stays flat for any file size.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		s.fail(w, ncmec.CodeMalformedFile, "expected multipart/form-data with fields id and file")
		return
	}
	var (
		id        int64
		haveFile  bool
		name, sum string
		size      int64
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.fail(w, ncmec.CodeMalformedFile, err.Error())
			return
		}
		switch part.FormName() {
		case "id":
			v, err := io.ReadAll(io.LimitReader(part, 32))
			if err == nil {
				id, err = strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
			}
			if err != nil || id <= 0 {
				s.fail(w, ncmec.CodeInvalidRequest, "id must be a report id")
				return
			}
			// Refuse before reading a file that would be thrown away.
			s.mu.Lock()
			code := s.stateCode(s.reports[id])
			s.mu.Unlock()
			if code != 0 {
				s.fail(w, code, "")
				return
			}
		case "file":
			if haveFile {
				s.fail(w, ncmec.CodeMalformedFile, "more than one file part")
				return
			}
			h := md5.New()
			n, err := io.Copy(h, part)
			if err != nil {
				s.fail(w, ncmec.CodeFileUploadFailed, err.Error())
				return
			}
			haveFile, name, size, sum = true, part.FileName(), n, hex.EncodeToString(h.Sum(nil))
		default:
			_, _ = io.Copy(io.Discard, part)
		}
	}
	if id == 0 {
		s.fail(w, ncmec.CodeInvalidRequest, "missing id")
		return
	}
	if !haveFile {
		s.fail(w, ncmec.CodeMalformedFile, "missing file part")
		return
	}
	s.record(ncmec.EndpointUpload, "txt", fmt.Appendf(nil, "id=%d\nname=%q\nsize=%d\nmd5=%s\n", id, name, size, sum))
	f := &file{id: randomHex(16), name: name, size: size, md5: sum}
	s.mu.Lock()
	rep := s.reports[id]
	code := s.stateCode(rep) // the report may have changed during the upload
	if code == 0 {
		f.uploaded = s.now()
		rep.files = append(rep.files, f)
		rep.modified = f.uploaded
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, code, "")
		return
	}
	s.success(w, &ncmec.Response{ReportID: id, FileID: f.id, Hash: sum})
}

func (s *Server) handleFileInfo(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readDocument(w, r, ncmec.EndpointFileInfo)
	if !ok {
		return
	}
	var doc struct {
		XMLName  xml.Name
		ReportID string `xml:"reportId"`
		FileID   string `xml:"fileId"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		s.fail(w, ncmec.CodeMalformedXML, err.Error())
		return
	}
	if !s.validate(w, r, body) {
		return
	}
	if doc.XMLName.Local != "fileDetails" {
		s.fail(w, ncmec.CodeValidationFailed, fmt.Sprintf("root element is %q, expected fileDetails", doc.XMLName.Local))
		return
	}
	id, err := strconv.ParseInt(strings.TrimSpace(doc.ReportID), 10, 64)
	if err != nil {
		s.fail(w, ncmec.CodeValidationFailed, "reportId must be a number")
		return
	}
	fileID := strings.TrimSpace(doc.FileID)
	s.mu.Lock()
	rep := s.reports[id]
	code := s.stateCode(rep)
	if code == 0 {
		code = ncmec.CodeFileNotFound
		for _, f := range rep.files {
			if f.id == fileID {
				// Undocumented whether a second fileinfo replaces or adds;
				// the simulator keeps the latest.
				f.details = body
				rep.modified = s.now()
				code = 0
				break
			}
		}
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, code, "")
		return
	}
	s.success(w, &ncmec.Response{ReportID: id, FileID: fileID})
}

func (s *Server) handleFinish(w http.ResponseWriter, r *http.Request) {
	id, ok := s.formID(w, r, ncmec.EndpointFinish)
	if !ok {
		return
	}
	s.mu.Lock()
	rep := s.reports[id]
	code := s.stateCode(rep)
	var files []string
	if code == 0 {
		rep.status = StatusFinished
		rep.modified = s.now()
		for _, f := range rep.files {
			files = append(files, f.id)
		}
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, code, "")
		return
	}
	s.reply(w, &ncmec.DoneResponse{ReportID: id, Files: ncmec.FileIDSet{IDs: files}})
}

func (s *Server) handleRetract(w http.ResponseWriter, r *http.Request) {
	id, ok := s.formID(w, r, ncmec.EndpointRetract)
	if !ok {
		return
	}
	s.mu.Lock()
	rep := s.reports[id]
	code := s.stateCode(rep)
	if code == 0 {
		rep.status = StatusRetracted
		rep.modified = s.now()
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, code, "")
		return
	}
	s.success(w, &ncmec.Response{ReportID: id})
}

// stateCode is the answer to a call that changes rep: 0 if rep is open, else
// the state code. It marks expired reports. s.mu must be held.
func (s *Server) stateCode(rep *report) int {
	if rep == nil {
		return ncmec.CodeReportNotFound
	}
	s.expire(rep)
	switch rep.status {
	case StatusFinished:
		return ncmec.CodeAlreadyFinished
	case StatusRetracted:
		return ncmec.CodeAlreadyRetracted
	case StatusExpired:
		// NCMEC has deleted it: it no longer exists.
		return ncmec.CodeReportNotFound
	}
	return 0
}

// expire marks rep expired once its deadline has passed. s.mu must be held.
func (s *Server) expire(rep *report) {
	if rep.status == StatusOpen && s.now().After(deadline(rep)) {
		rep.status = StatusExpired
	}
}

func deadline(rep *report) time.Time {
	d := rep.opened.Add(expiryAfterOpen)
	if m := rep.modified.Add(expiryAfterChange); m.After(d) {
		d = m
	}
	return d
}

// readDocument reads an XML request body and records it.
func (s *Server) readDocument(w http.ResponseWriter, r *http.Request, ep string) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDocumentBytes))
	if err != nil {
		s.fail(w, ncmec.CodeInvalidRequest, "cannot read body: "+err.Error())
		return nil, false
	}
	s.record(ep, "xml", body)
	return body, true
}

// formID reads the id field of /finish and /retract, url-encoded or
// multipart, as both are in production use.
func (s *Server) formID(w http.ResponseWriter, r *http.Request, ep string) (int64, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	v := r.FormValue("id")
	s.record(ep, "txt", []byte("id="+v+"\n"))
	id, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, ncmec.CodeInvalidRequest, "id must be a report id")
		return 0, false
	}
	return id, true
}

// validate runs the XSD validator if configured; on failure it answers
// 4100 with the validator's message, as NCMEC does.
func (s *Server) validate(w http.ResponseWriter, r *http.Request, doc []byte) bool {
	if s.validator == nil {
		return true
	}
	problem, err := s.validator.validate(r.Context(), doc)
	if err != nil {
		s.log.Error("ncmecsim validate", logging.KeyErr, err)
		s.fail(w, ncmec.CodeServerError, "")
		return false
	}
	if problem != "" {
		s.fail(w, ncmec.CodeValidationFailed, problem)
		return false
	}
	return true
}

// parseDateTime parses an xs:dateTime; one without a zone is taken as UTC.
func parseDateTime(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, errors.New("missing")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an xs:dateTime", v)
}

// record writes one request body into RecordDir, named so that a listing
// shows the calls in order.
func (s *Server) record(ep, ext string, body []byte) {
	if s.opts.RecordDir == "" {
		return
	}
	name := fmt.Sprintf("%s/%s-%06d-%s.%s", s.opts.RecordDir, s.recordTag, s.recordSeq.Add(1), ep, ext)
	if err := os.WriteFile(name, body, 0o600); err != nil {
		s.log.Error("ncmecsim record", logging.KeyErr, err)
	}
}
