package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/auth"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/filing"
	"takedown/pkg/keyring"
	"takedown/pkg/logging"
	"takedown/pkg/pdq"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// submit handles POST /api/v1/reports: a multipart body whose first part is
// the report JSON and whose further parts are the files.
func (a *API) submit(w http.ResponseWriter, r *http.Request) {
	rep, err := a.Submit(w, r, DescribeJSON)
	if err != nil {
		server.WriteError(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/reports/"+rep.ID)
	server.WriteJSON(w, http.StatusCreated, rep)
}

// Describe reads the parts of a multipart submission that come before the
// files and returns the report they describe and the first file part (nil
// when there is none). The API sends one JSON part (DescribeJSON); the web
// form sends one part per form field.
type Describe func(mr *multipart.Reader) (*report.Input, *multipart.Part, error)

// DescribeJSON reads the API's report part.
func DescribeJSON(mr *multipart.Reader) (*report.Input, *multipart.Part, error) {
	in, err := readReportPart(mr)
	if err != nil {
		return nil, nil, err
	}
	first, err := mr.NextPart()
	if err == io.EOF {
		return in, nil, nil
	}
	if err != nil {
		return nil, nil, bodyError(err)
	}
	return in, first, nil
}

// Submit stores a report submitted as multipart/form-data by the signed-in
// staff member of r; the API and the web form share it. describe reads the
// report's description. Each file streams into S3 as it arrives, encrypted
// under the report's data key and hashed on the way; only then are the
// report, its files and the submitted event written in one transaction. Any
// failure deletes what was stored, so a refused submission leaves nothing
// behind. Errors are *server.APIError for the client's mistakes (a
// *report.FieldErrors among them for invalid fields) and plain errors for
// ours; on either the rest of the body is not read.
//
// A request with an Idempotency-Key header that names a report the staff
// member stored before is answered with that report, and nothing of the
// body is read or stored: a client that lost the answer to a submission
// sends it again without filing the incident twice.
func (a *API) Submit(w http.ResponseWriter, r *http.Request, describe Describe) (*report.Report, error) {
	rep, err := a.stored(r)
	if err == nil && rep != nil {
		w.Header().Set("Connection", "close") // the body is not read
		a.submissions.WithLabelValues("replayed").Inc()
		return rep, nil
	}
	if err == nil {
		rep, err = a.receive(w, r, describe)
	}
	if err != nil {
		var ae *server.APIError
		code := "internal"
		if errors.As(err, &ae) {
			code = ae.Code
		} else {
			logging.FromContext(r.Context()).Error("submission failed", logging.KeyErr, err)
		}
		// The rest of the body is not read: close the connection rather
		// than drain gigabytes nobody will store.
		w.Header().Set("Connection", "close")
		a.submissions.WithLabelValues(code).Inc()
		return nil, err
	}
	a.submissions.WithLabelValues("created").Inc()
	return rep, nil
}

// IdempotencyKeyHeader names a submission for its submitter (see Submit).
const IdempotencyKeyHeader = "Idempotency-Key"

// maxIdempotencyKey bounds the key: a UUID or a hash fits many times over.
const maxIdempotencyKey = 255

// idempotencyKey is r's key: empty when none is sent, or an error when it
// is not 1 to 255 printable ASCII characters.
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get(IdempotencyKeyHeader)
	if len(k) > maxIdempotencyKey || strings.IndexFunc(k, func(c rune) bool { return c < '!' || c > '~' }) >= 0 {
		return "", badRequest("invalid_idempotency_key", "", "the %s header must be 1 to %d printable ASCII characters without spaces", IdempotencyKeyHeader, maxIdempotencyKey)
	}
	return k, nil
}

// stored returns the report stored before under r's idempotency key, or
// nil when there is none.
func (a *API) stored(r *http.Request) (*report.Report, error) {
	k, err := idempotencyKey(r)
	if err != nil || k == "" {
		return nil, err
	}
	staff, _ := auth.FromContext(r.Context())
	id, err := a.store.ByIdempotencyKey(r.Context(), staff.Subject, k)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		logging.FromContext(r.Context()).Error("report by idempotency key", logging.KeyErr, err)
		return nil, errDatabase
	}
	return a.store.Get(r.Context(), id)
}

// errDatabase answers a submission PostgreSQL could not take.
var errDatabase = server.Errorf(http.StatusServiceUnavailable, "database_unavailable", "",
	"the report could not be saved; nothing was kept. Try again in a minute")

func badRequest(code, field, format string, args ...any) error {
	return server.Errorf(http.StatusBadRequest, code, field, format, args...)
}

// InvalidError is the answer to a submission whose fields break the rules:
// the API's error for the first problem, and all of them for a form to
// list.
type InvalidError struct {
	*server.APIError
	Problems report.FieldErrors
}

func (e *InvalidError) Unwrap() error { return e.APIError }

// bodyReaders and partReaders recycle the read buffers of submissions and
// of their files: allocating (and clearing) a MiB per submission was a
// tenth of intake's CPU time under load.
var (
	bodyReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 1<<20) }}
	partReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
)

func (a *API) receive(w http.ResponseWriter, r *http.Request, describe Describe) (*report.Report, error) {
	ctx := r.Context()
	staff, _ := auth.FromContext(ctx)

	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, server.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "",
			"send multipart/form-data: a part named report (JSON) followed by one or more parts named file")
	}
	release, err := a.reserve(w, r)
	if err != nil {
		return nil, err
	}
	defer release()
	server.MinRateBody(w, r, a.limits.MinRate, a.limits.RateWindow)
	// The whole body is bounded too, so a client cannot stream past the
	// total limit in parts the per-file limit does not see.
	r.Body = http.MaxBytesReader(w, r.Body, a.limits.MaxTotalSize+maxReportJSON+(1<<20))
	// multipart reads through a 4 KiB buffer; a large one below it turns a
	// read system call per 4 KiB into one per MiB.
	br := bodyReaders.Get().(*bufio.Reader)
	br.Reset(r.Body)
	defer func() { br.Reset(nil); bodyReaders.Put(br) }()
	mr := multipart.NewReader(br, params["boundary"])

	in, part, err := describe(mr)
	if err != nil {
		return nil, err
	}
	if err := in.Validate(a.now()); err != nil {
		var fes report.FieldErrors
		if !errors.As(err, &fes) || len(fes) == 0 {
			return nil, badRequest("invalid", "report", "%v", err)
		}
		code := "invalid"
		if errors.Is(fes[0], report.ErrBadFileName) {
			code = "invalid_file_name"
		}
		return nil, &InvalidError{APIError: server.Errorf(http.StatusBadRequest, code, fes[0].Field, "%s", fes[0].Message), Problems: fes}
	}
	if a.HoldForLegal {
		if err := heldForLegal(in); err != nil {
			return nil, err
		}
	}

	rep := &report.Report{
		ID:          events.NewID(),
		SubmittedAt: a.now().UTC(),
		SubmittedBy: staff.Subject,
		// The names as the sign-in gave them now, kept for the pages, the
		// event and the case.
		SubmittedByName:  staff.Name,
		SubmittedByEmail: staff.Email,
		Details:          in.Details(),
		IncidentTime:     in.IncidentAt(),
	}
	rep.SetFiling(filing.New())
	ctx, log := logging.With(ctx, logging.KeyReportID, rep.ID)
	dataKey, wrapped, err := a.keys.NewDataKey(rep.ID)
	if err != nil {
		return nil, fmt.Errorf("new data key: %w", err)
	}
	defer clear(dataKey)

	ok := false
	defer func() {
		if !ok {
			a.discard(ctx, rep.Files)
		}
	}()
	for i := 0; part != nil; {
		if part.FormName() != "file" {
			return nil, badRequest("invalid", part.FormName(), "unexpected part %q: after the report part, send only parts named file", part.FormName())
		}
		if i >= a.limits.MaxFiles {
			return nil, server.Errorf(http.StatusRequestEntityTooLarge, "too_many_files", "file", "at most %d files per report", a.limits.MaxFiles)
		}
		f, err := a.storeFile(ctx, rep.ID, i, part, in, dataKey, r.ContentLength)
		if f != nil {
			rep.Files = append(rep.Files, *f)
			i++
		}
		if err != nil {
			return nil, err
		}
		part, err = mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bodyError(err)
		}
	}
	if len(rep.Files) == 0 {
		return nil, badRequest("no_file", "file", "attach at least one file")
	}
	if len(in.Files) > len(rep.Files) {
		return nil, badRequest("invalid", "files", "the report describes %d files but %d were attached", len(in.Files), len(rep.Files))
	}

	ev, err := a.submitted(ctx, rep, staff, wrapped)
	if err != nil {
		log.Error("report.submitted event", logging.KeyErr, err)
		return nil, errDatabase
	}
	key, _ := idempotencyKey(r) // checked before the body was read
	if err := a.store.Create(ctx, rep, key, wrapped, ev); errors.Is(err, store.ErrDuplicateKey) {
		// The same submission sent twice at once: the other one stored
		// it, and this one's files go.
		if first, err := a.stored(r); err != nil || first != nil {
			return first, err
		}
		return nil, errDatabase
	} else if err != nil {
		log.Error("store report", logging.KeyErr, err)
		return nil, errDatabase
	}
	ok = true
	if a.Stored != nil {
		a.Stored(ctx, rep.ID)
	}
	log.Info("report submitted", "files", len(rep.Files), "held_for_legal", ev == nil, logging.KeyEventID, ev.GetEventId())
	return rep, nil
}

// submitted is the event that files a newly stored report, nil for one
// the legal gate holds (its approval sends it: DecideLegal).
func (a *API) submitted(ctx context.Context, rep *report.Report, staff auth.Staff, wrapped keyring.WrappedKey) (*pb.Envelope, error) {
	if a.HoldForLegal {
		rep.SetLegal(report.Legal{State: report.LegalAwaiting})
		return nil, nil
	}
	rep.SetLegal(report.Legal{State: report.LegalRecorded})
	prior, err := a.store.PriorNCMECReports(ctx, rep.Details)
	if err != nil {
		return nil, err
	}
	return events.New(rep.ID, staff.Actor(), &pb.ReportSubmitted{
		Report:  toProto(rep, prior),
		Files:   filesToProto(rep.Files),
		DataKey: &pb.WrappedKey{MasterKeyId: wrapped.MasterKeyID, Ciphertext: wrapped.Ciphertext},
	})
}

// requestBuffers are the buffers of a submission besides its Puts: the
// body's read buffer (bodyReaders) and a file's (partReaders).
const requestBuffers = 1<<20 + 64<<10

// reserve takes the submission's share of Limits.UploadMemory before its
// body is read: the buffers of one Put at a time (files stream one after
// the other), no more than the body can fill when its length is known. A
// submission that finds no room within UploadMemoryWait is answered 503
// with Retry-After; its body is not read (a client sending
// "Expect: 100-continue" does not even send it). Image copies for PDQ
// take their share as they start (imageTee).
func (a *API) reserve(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	need := int64(evidence.PutMemory)
	if r.ContentLength >= 0 {
		// Beyond its 1 MiB head buffer, a Put's read-ahead and part
		// hold at most what the body brings, each.
		need = min(need, 1<<20+2*r.ContentLength)
	}
	need = min(need+requestBuffers, a.limits.UploadMemory) // one alone always fits
	ctx, cancel := context.WithTimeout(r.Context(), a.limits.UploadMemoryWait)
	defer cancel()
	if err := a.uploads.Acquire(ctx, need); err != nil {
		if r.Context().Err() != nil {
			return nil, bodyError(r.Context().Err())
		}
		retry := max(1, int(a.limits.UploadMemoryWait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		return nil, server.Errorf(http.StatusServiceUnavailable, "busy", "",
			"intake is receiving as many files as its memory allows; nothing was read. Try again in %d s", retry)
	}
	a.reserved.Add(float64(need))
	return func() { a.uploads.Release(need); a.reserved.Sub(float64(need)) }, nil
}

func readReportPart(mr *multipart.Reader) (*report.Input, error) {
	part, err := mr.NextPart()
	if err != nil {
		return nil, bodyError(err)
	}
	if part.FormName() != "report" {
		return nil, badRequest("invalid", "report", "the first part must be named report and hold the report JSON (got %q)", part.FormName())
	}
	raw, err := io.ReadAll(io.LimitReader(part, maxReportJSON+1))
	if err != nil {
		return nil, bodyError(err)
	}
	if len(raw) > maxReportJSON {
		return nil, server.Errorf(http.StatusRequestEntityTooLarge, "report_too_large", "report", "the report JSON is larger than %d bytes", maxReportJSON)
	}
	var in report.Input
	if err := server.DecodeJSON(raw, &in); err != nil {
		return nil, badRequest("invalid_json", "report", "the report JSON is malformed: %v", err)
	}
	return &in, nil
}

// storeFile streams one file part into the evidence store. It returns the
// file whenever an object may have been written, so the caller can remove it,
// and neither file nor error for an empty nameless part.
func (a *API) storeFile(ctx context.Context, reportID string, i int, part *multipart.Part, in *report.Input, dataKey []byte, bodyLen int64) (*report.File, error) {
	field := fmt.Sprintf("files[%d]", i)
	var meta report.FileInput
	if i < len(in.Files) {
		meta = in.Files[i]
	}
	name := meta.Name
	if name == "" {
		name = rawFileName(part)
	}
	if name == "" {
		// A browser sends an empty, nameless part for a file input left
		// empty: skip it, so "attach at least one file" is what the staff
		// member reads.
		if n, _ := part.Read(make([]byte, 1)); n == 0 {
			return nil, nil
		}
	}
	if err := report.CheckFileName(field+".name", name); err != nil {
		var fe *report.FieldError
		errors.As(err, &fe)
		return nil, badRequest("invalid_file_name", fe.Field, "%s", fe.Message)
	}
	f := &report.File{ID: events.NewID(), Index: i, Name: name, FileInput: meta}
	f.FileInput.Name = ""
	// The key is ours; the uploaded name never reaches S3.
	f.ObjectKey = "reports/" + reportID + "/" + f.ID

	body := &trap{r: part}
	br := partReaders.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() { br.Reset(nil); partReaders.Put(br) }()
	head, _ := br.Peek(512)
	f.ContentType = http.DetectContentType(head)

	// Images are hashed with PDQ from a copy kept while they stream, so
	// "reported before?" finds resized and re-encoded copies too.
	var src io.Reader = br
	img := newImageTee(f.ContentType, a.similar.MaxImageBytes)
	if img != nil {
		// The copy takes its share of the upload memory, without
		// waiting in the middle of the body: when there is none, the
		// image gets no PDQ hash and the answer says so.
		share := int64(a.similar.MaxImageBytes)
		if bodyLen >= 0 {
			share = min(share, bodyLen)
		}
		if a.uploads.TryAcquire(share) {
			a.reserved.Add(float64(share))
			defer func() { a.uploads.Release(share); a.reserved.Sub(float64(share)) }()
			src = io.TeeReader(br, img)
		} else {
			img, f.PDQSkipped = nil, "no PDQ hash: intake's upload memory (UPLOAD_MEMORY) was taken by other submissions"
		}
	}
	obj, err := a.evidence.Put(ctx, f.ObjectKey, src, dataKey)
	switch {
	case body.err != nil && body.err != io.EOF:
		return f, bodyError(body.err)
	case errors.Is(err, evidence.ErrEmpty):
		return f, badRequest("empty_file", field, "%s is empty", name)
	case errors.Is(err, evidence.ErrTooLarge):
		return f, server.Errorf(http.StatusRequestEntityTooLarge, "file_too_large", field, "%s is larger than the limit of %d bytes", name, a.limits.MaxFileSize)
	case evidence.IsUnavailable(err):
		logging.FromContext(ctx).Error("evidence store unavailable", logging.KeyErr, err)
		return f, server.Errorf(http.StatusServiceUnavailable, "storage_unavailable", "",
			"the evidence store cannot be reached; nothing was kept. Try again in a minute")
	case err != nil:
		return f, fmt.Errorf("store %s: %w", field, err)
	}
	a.bytes.Add(float64(obj.Size))
	f.ObjectVersion, f.Size, f.MD5, f.SHA1, f.SHA256 = obj.VersionID, obj.Size, obj.MD5, obj.SHA1, obj.SHA256
	hash, quality, skipped, err := img.hash(ctx, pdq.Options{MaxPixels: int64(a.similar.MaxPixels), Budget: a.decoding})
	if err != nil {
		return f, fmt.Errorf("pdq %s: %w", field, err)
	}
	if img != nil {
		f.PDQ, f.PDQQuality, f.PDQSkipped = hash, quality, skipped
	}
	return f, nil
}

// rawFileName is the part's file name as the client sent it. Part.FileName
// would strip a path down to its last element, hiding a name we refuse.
func rawFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// trap remembers the error reading the request body gave, to tell a
// client's broken body apart from a failing S3 when the upload fails.
type trap struct {
	r   io.Reader
	err error
}

func (t *trap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil {
		t.err = err
	}
	return n, err
}

// BodyError explains a failure to read the request body.
func BodyError(err error) error { return bodyError(err) }

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return server.Errorf(http.StatusRequestEntityTooLarge, "request_too_large", "", "the submission is larger than the limit of %d bytes in all", mbe.Limit)
	}
	if errors.Is(err, server.ErrTooSlow) {
		return server.Errorf(http.StatusRequestTimeout, "too_slow", "", "the upload was cut off: %v. Nothing was kept", err)
	}
	if errors.Is(err, context.Canceled) {
		return server.Errorf(http.StatusBadRequest, "canceled", "", "the upload was canceled")
	}
	return badRequest("malformed_body", "", "the multipart body is malformed or was cut off: %v", err)
}

// discard deletes the objects of a submission that failed. What cannot be
// deleted now (S3 away) is recorded for the sweeper.
func (a *API) discard(ctx context.Context, files []report.File) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var left []string
	var last error
	for _, f := range files {
		if err := a.evidence.Delete(ctx, f.ObjectKey); err != nil {
			left, last = append(left, f.ObjectKey), err
		}
	}
	if len(left) == 0 {
		return
	}
	log := logging.FromContext(ctx)
	if err := a.store.AddOrphans(ctx, left, last); err != nil {
		log.Error("objects of a failed submission could be neither deleted nor recorded; delete them by hand", "keys", left, logging.KeyErr, err)
		return
	}
	log.Warn("objects of a failed submission left for the sweeper", "keys", left, logging.KeyErr, last)
}

// toProto is the report as the event carries it; prior are the NCMEC report
// ids of earlier finished reports about the same uploader.
func toProto(r *report.Report, prior []int64) *pb.Report {
	return &pb.Report{
		Id:                r.ID,
		IncidentType:      r.IncidentType,
		IncidentTime:      timestamppb.New(r.IncidentTime),
		Platform:          r.Platform,
		Urls:              r.URLs,
		Uploader:          &pb.Uploader{Username: r.Uploader.Username, Email: r.Uploader.Email, Ip: r.Uploader.IP, PriorNcmecReportIds: prior},
		LegalApproved:     r.LegalApproved,
		Approver:          r.Approver,
		NotApprovedReason: r.NotApprovedReason,
		ActionsTaken:      r.ActionsTaken,
		Notes:             r.Notes,
		PrivateNote:       r.PrivateNote, // for the case; the reporter never reads it
		Escalate:          r.Escalate,
		Test:              r.Test,
		SubmittedBy:       r.SubmittedBy,
		SubmittedByName:   r.SubmittedByName,
		SubmittedByEmail:  r.SubmittedByEmail,
		SubmittedAt:       timestamppb.New(r.SubmittedAt),
		Filing:            uint32(r.Filing),
		LegalDecidedAt:    legalDecidedAt(r.Legal),
	}
}

// legalDecidedAt is when a second person approved the report, nil where
// the submitter recorded legal's decision.
func legalDecidedAt(l report.Legal) *timestamppb.Timestamp {
	if l.State != report.LegalApproved || l.DecidedAt == nil {
		return nil
	}
	return timestamppb.New(*l.DecidedAt)
}

func filesToProto(files []report.File) []*pb.File {
	out := make([]*pb.File, len(files))
	for i, f := range files {
		p := &pb.File{
			Id: f.ID, Index: uint32(f.Index), Name: f.Name, ObjectKey: f.ObjectKey, ObjectVersion: f.ObjectVersion,
			Size: f.Size, ContentType: f.ContentType, Md5: f.MD5, Sha1: f.SHA1, Sha256: f.SHA256,
			Pdq: f.PDQ, PdqQuality: int32(f.PDQQuality),
			LocationUrl: f.LocationURL, UploaderIp: f.UploaderIP, IndustryClassification: f.Classification,
			Annotations: f.Annotations,
		}
		if t, err := time.Parse(time.RFC3339, f.UploadTime); err == nil {
			p.OriginalUploadTime = timestamppb.New(t)
		}
		if f.ViewedByStaff != nil {
			p.ViewedByStaff = *f.ViewedByStaff
		}
		if f.PubliclyAvailable != nil {
			p.PubliclyAvailable = *f.PubliclyAvailable
		}
		out[i] = p
	}
	return out
}
