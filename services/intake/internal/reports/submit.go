package reports

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"takedown/pkg/auth"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/fault"
	"takedown/pkg/filing"
	"takedown/pkg/keyring"
	"takedown/pkg/logging"
	"takedown/pkg/pdq"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// Describe reads the parts of a multipart submission that come before the
// files and returns the report they describe and the first file part (nil
// when there is none). The API sends one JSON part (DescribeJSON); the web
// form sends one part per form field.
type Describe func(mr *multipart.Reader) (*report.Input, *multipart.Part, error)

// Submission is a submission as an adapter received it: a multipart body
// whose first parts describe the report (Describe) and whose further
// parts, named file, are the files.
type Submission struct {
	Staff auth.Staff
	// IdempotencyKey is the submission's name for its submitter (the
	// Idempotency-Key header; empty: none), checked by Submit.
	IdempotencyKey string
	ContentType    string // of the body: multipart/form-data with a boundary
	// Body is the request body, bounded by Limits.MaxBody and the
	// minimum rate; its read errors are already the adapter's faults
	// (a body too large, too slow), which Submit passes on.
	Body     io.Reader
	Length   int64 // of the body; -1 when unknown
	Describe Describe
}

// Submit stores a report submitted by the signed-in staff member; the API
// and the web form share it. Each file streams into S3 as it arrives,
// encrypted under the report's data key and hashed on the way; only then
// are the report, its files and the submitted event written in one
// transaction. Any failure deletes what was stored, so a refused submission
// leaves nothing behind. Errors are *fault.Error for the client's mistakes
// (an Invalid one with Fields for invalid fields) and plain errors for
// ours; on either the rest of the body is not read.
//
// A submission with an idempotency key that names a report the staff
// member stored before is answered with that report (replayed), and
// nothing of the body is read or stored: a client that lost the answer to
// a submission sends it again without filing the incident twice.
func (s *Service) Submit(ctx context.Context, sub Submission) (rep *report.Report, replayed bool, err error) {
	rep, err = s.stored(ctx, sub)
	if err == nil && rep != nil {
		s.submissions.WithLabelValues("replayed").Inc()
		return rep, true, nil
	}
	if err == nil {
		rep, err = s.receive(ctx, sub)
	}
	if err != nil {
		var c coded
		code := "internal"
		if errors.As(err, &c) {
			code = c.CodeName()
		} else {
			logging.FromContext(ctx).Error("submission failed", logging.KeyErr, err)
		}
		s.submissions.WithLabelValues(code).Inc()
		return nil, false, err
	}
	s.submissions.WithLabelValues("created").Inc()
	return rep, false, nil
}

// coded is an error that names itself to the client: a *fault.Error, or an
// adapter's own answer from its Describe (a *server.APIError, such as the
// form's forgery protection refusal).
type coded interface {
	error
	CodeName() string
}

// maxIdempotencyKey bounds the key: a UUID or a hash fits many times over.
const maxIdempotencyKey = 255

// checkIdempotencyKey refuses a key that is not 1 to 255 printable ASCII
// characters (empty is no key, and fine).
func checkIdempotencyKey(k string) error {
	if len(k) > maxIdempotencyKey || strings.IndexFunc(k, func(c rune) bool { return c < '!' || c > '~' }) >= 0 {
		return invalid("invalid_idempotency_key", "", "the Idempotency-Key header must be 1 to %d printable ASCII characters without spaces", maxIdempotencyKey)
	}
	return nil
}

// stored returns the report stored before under sub's idempotency key, or
// nil when there is none.
func (s *Service) stored(ctx context.Context, sub Submission) (*report.Report, error) {
	if err := checkIdempotencyKey(sub.IdempotencyKey); err != nil || sub.IdempotencyKey == "" {
		return nil, err
	}
	id, err := s.store.ByIdempotencyKey(ctx, sub.Staff.Subject, sub.IdempotencyKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		logging.FromContext(ctx).Error("report by idempotency key", logging.KeyErr, err)
		return nil, errDatabase
	}
	return s.store.Get(ctx, id)
}

// errDatabase answers a submission PostgreSQL could not take.
var errDatabase = fault.Errorf(fault.Unavailable, "database_unavailable", "",
	"the report could not be saved; nothing was kept. Try again in a minute")

// bodyReaders and partReaders recycle the read buffers of submissions and
// of their files: allocating (and clearing) a MiB per submission was a
// tenth of intake's CPU time under load.
var (
	bodyReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 1<<20) }}
	partReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
)

func (s *Service) receive(ctx context.Context, sub Submission) (*report.Report, error) {
	staff := sub.Staff
	mt, params, err := mime.ParseMediaType(sub.ContentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, fault.Errorf(fault.Unsupported, "unsupported_media_type", "",
			"send multipart/form-data: a part named report (JSON) followed by one or more parts named file")
	}
	release, err := s.reserve(ctx, sub.Length)
	if err != nil {
		return nil, err
	}
	defer release()
	// multipart reads through a 4 KiB buffer; a large one below it turns a
	// read system call per 4 KiB into one per MiB.
	br := bodyReaders.Get().(*bufio.Reader)
	br.Reset(sub.Body)
	defer func() { br.Reset(nil); bodyReaders.Put(br) }()
	mr := multipart.NewReader(br, params["boundary"])

	in, part, err := sub.Describe(mr)
	if err != nil {
		return nil, err
	}
	if err := validate(in, s.now()); err != nil {
		return nil, err
	}
	if s.HoldForLegal {
		if err := heldForLegal(in); err != nil {
			return nil, err
		}
	}

	rep := &report.Report{
		ID:          events.NewID(),
		SubmittedAt: s.now().UTC(),
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
	dataKey, wrapped, err := s.keys.NewDataKey(rep.ID)
	if err != nil {
		return nil, fmt.Errorf("new data key: %w", err)
	}
	defer clear(dataKey)

	ok := false
	defer func() {
		if !ok {
			s.discard(ctx, rep.Files)
		}
	}()
	for i := 0; part != nil; {
		if part.FormName() != "file" {
			return nil, invalid("invalid", part.FormName(), "unexpected part %q: after the report part, send only parts named file", part.FormName())
		}
		if i >= s.limits.MaxFiles {
			return nil, fault.Errorf(fault.TooLarge, "too_many_files", "file", "at most %d files per report", s.limits.MaxFiles)
		}
		f, err := s.storeFile(ctx, rep.ID, i, part, in, dataKey, sub.Length)
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
			return nil, BodyError(err)
		}
	}
	if len(rep.Files) == 0 {
		return nil, invalid("no_file", "file", "attach at least one file")
	}
	if len(in.Files) > len(rep.Files) {
		return nil, invalid("invalid", "files", "the report describes %d files but %d were attached", len(in.Files), len(rep.Files))
	}

	ev, err := s.submitted(ctx, rep, staff, wrapped)
	if err != nil {
		log.Error("report.submitted event", logging.KeyErr, err)
		return nil, errDatabase
	}
	// The idempotency key was checked before the body was read.
	if err := s.store.Create(ctx, rep, sub.IdempotencyKey, wrapped, ev); errors.Is(err, store.ErrDuplicateKey) {
		// The same submission sent twice at once: the other one stored
		// it, and this one's files go.
		if first, err := s.stored(ctx, sub); err != nil || first != nil {
			return first, err
		}
		return nil, errDatabase
	} else if err != nil {
		log.Error("store report", logging.KeyErr, err)
		return nil, errDatabase
	}
	ok = true
	if s.Stored != nil {
		s.Stored(rep.ID)
	}
	log.Info("report submitted", "files", len(rep.Files), "held_for_legal", ev == nil, logging.KeyEventID, ev.GetEventId())
	return rep, nil
}

// submitted is the event that files a newly stored report, nil for one
// the legal gate holds (its approval sends it: DecideLegal).
func (s *Service) submitted(ctx context.Context, rep *report.Report, staff auth.Staff, wrapped keyring.WrappedKey) (*pb.Envelope, error) {
	if s.HoldForLegal {
		rep.SetLegal(report.Legal{State: report.LegalAwaiting})
		return nil, nil
	}
	rep.SetLegal(report.Legal{State: report.LegalRecorded})
	prior, err := s.store.PriorNCMECReports(ctx, rep.Details)
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
// with Retry-After (fault.Error.RetryAfter); its body is not read (a client sending
// "Expect: 100-continue" does not even send it). Image copies for PDQ
// take their share as they start (imageTee).
func (s *Service) reserve(ctx context.Context, bodyLen int64) (release func(), err error) {
	need := int64(evidence.PutMemory)
	if bodyLen >= 0 {
		// Beyond its 1 MiB head buffer, a Put's read-ahead and part
		// hold at most what the body brings, each.
		need = min(need, 1<<20+2*bodyLen)
	}
	need = min(need+requestBuffers, s.limits.UploadMemory) // one alone always fits
	wait, cancel := context.WithTimeout(ctx, s.limits.UploadMemoryWait)
	defer cancel()
	if err := s.uploads.Acquire(wait, need); err != nil {
		if ctx.Err() != nil {
			return nil, BodyError(ctx.Err())
		}
		busy := fault.Errorf(fault.Unavailable, "busy", "",
			"intake is receiving as many files as its memory allows; nothing was read. Try again in %d s", max(1, int(s.limits.UploadMemoryWait.Seconds())))
		busy.RetryAfter = s.limits.UploadMemoryWait
		return nil, busy
	}
	s.reserved.Add(float64(need))
	return func() { s.uploads.Release(need); s.reserved.Sub(float64(need)) }, nil
}

// storeFile streams one file part into the evidence store. It returns the
// file whenever an object may have been written, so the caller can remove it,
// and neither file nor error for an empty nameless part.
func (s *Service) storeFile(ctx context.Context, reportID string, i int, part *multipart.Part, in *report.Input, dataKey []byte, bodyLen int64) (*report.File, error) {
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
		return nil, invalid("invalid_file_name", fe.Field, "%s", fe.Message)
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
	f.ContentType = evidence.ContentType(head)

	// Images are hashed with PDQ from a copy kept while they stream, so
	// "reported before?" finds resized and re-encoded copies too.
	var src io.Reader = br
	img := newImageTee(f.ContentType, s.similar.MaxImageBytes)
	if img != nil {
		// The copy takes its share of the upload memory, without
		// waiting in the middle of the body: when there is none, the
		// image gets no PDQ hash and the answer says so.
		share := int64(s.similar.MaxImageBytes)
		if bodyLen >= 0 {
			share = min(share, bodyLen)
		}
		if s.uploads.TryAcquire(share) {
			s.reserved.Add(float64(share))
			defer func() { s.uploads.Release(share); s.reserved.Sub(float64(share)) }()
			src = io.TeeReader(br, img)
		} else {
			img, f.PDQSkipped = nil, "no PDQ hash: intake's upload memory (UPLOAD_MEMORY) was taken by other submissions"
		}
	}
	obj, err := s.evidence.Put(ctx, f.ObjectKey, src, dataKey)
	switch {
	case body.err != nil && body.err != io.EOF:
		return f, BodyError(body.err)
	case errors.Is(err, evidence.ErrEmpty):
		return f, invalid("empty_file", field, "%s is empty", name)
	case errors.Is(err, evidence.ErrTooLarge):
		return f, fault.Errorf(fault.TooLarge, "file_too_large", field, "%s is larger than the limit of %d bytes", name, s.limits.MaxFileSize)
	case evidence.IsUnavailable(err):
		logging.FromContext(ctx).Error("evidence store unavailable", logging.KeyErr, err)
		return f, fault.Errorf(fault.Unavailable, "storage_unavailable", "",
			"the evidence store cannot be reached; nothing was kept. Try again in a minute")
	case err != nil:
		return f, fmt.Errorf("store %s: %w", field, err)
	}
	s.bytes.Add(float64(obj.Size))
	f.ObjectVersion, f.Size, f.MD5, f.SHA1, f.SHA256 = obj.VersionID, obj.Size, obj.MD5, obj.SHA1, obj.SHA256
	hash, quality, skipped, err := img.hash(ctx, pdq.Options{MaxPixels: int64(s.similar.MaxPixels), Budget: s.decoding})
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

// BodyError explains a failure to read a submission's body: the adapter's
// own fault as it is (a body too large or too slow: see Submission.Body),
// a canceled upload, or a malformed body.
func BodyError(err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe
	}
	if errors.Is(err, context.Canceled) {
		return invalid("canceled", "", "the upload was canceled")
	}
	return invalid("malformed_body", "", "the multipart body is malformed or was cut off: %v", err)
}

// discard deletes the objects of a submission that failed. What cannot be
// deleted now (S3 away) is recorded for the sweeper.
func (s *Service) discard(ctx context.Context, files []report.File) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var left []string
	var last error
	for _, f := range files {
		if err := s.evidence.Delete(ctx, f.ObjectKey); err != nil {
			left, last = append(left, f.ObjectKey), err
		}
	}
	if len(left) == 0 {
		return
	}
	log := logging.FromContext(ctx)
	if err := s.store.AddOrphans(ctx, left, last); err != nil {
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
