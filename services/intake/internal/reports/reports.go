// Package reports is intake's application layer: the use cases both HTTP
// adapters (httpapi, the JSON API; web, the staff pages) call — submit a
// report with its files, get one with what was reported before, file it
// again (corrected), close it, legal's decision, search it, the attention
// queue, the CSV export's rows, and record a staff action. It returns
// error kinds (pkg/fault), never HTTP statuses: pkg/server maps them.
package reports

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"takedown/pkg/auth"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/fault"
	"takedown/pkg/filing"
	"takedown/pkg/keyring"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/pkg/pdq"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// Limits bound a submission. Video evidence can be several GiB.
type Limits struct {
	MaxFileSize  int64 // per file
	MaxFiles     int
	MaxTotalSize int64 // all files of one submission

	// MinRate is the slowest a client may send a submission, in bytes a
	// second over each RateWindow (server.MinRateBody); a slower one is
	// cut off and nothing of its submission kept. 0: no minimum.
	MinRate    int64
	RateWindow time.Duration
	// UploadMemory is what all submissions at once may hold in buffers
	// (default DefaultUploadMemory); a submission waits up to
	// UploadMemoryWait (default 10 s) for its share, then is answered 503
	// with Retry-After, before its body is read.
	UploadMemory     int64
	UploadMemoryWait time.Duration
}

// DefaultUploadMemory is Limits.UploadMemory's default: three large files
// streaming at once (evidence.PutMemory each, with the request's own
// buffers), which is already all two cores can encrypt and hash.
const DefaultUploadMemory = 128 << 20

func (l Limits) withDefaults() Limits {
	if l.UploadMemory == 0 {
		l.UploadMemory = DefaultUploadMemory
	}
	if l.UploadMemoryWait == 0 {
		l.UploadMemoryWait = 10 * time.Second
	}
	if l.RateWindow == 0 {
		l.RateWindow = 30 * time.Second
	}
	return l
}

// MaxBody bounds a whole submission's body: the files, the report part
// and room for the multipart framing. The adapters cut the body there, so
// a client cannot stream past the total limit in parts the per-file limit
// does not see.
func (l Limits) MaxBody() int64 { return l.MaxTotalSize + MaxDescription + (1 << 20) }

// MaxDescription bounds the report part (or a form's fields): it holds
// text, never media. A correction's report JSON has the same bound.
const MaxDescription = 1 << 20

// Evidence is what the use cases need of the evidence store.
type Evidence interface {
	Put(ctx context.Context, key string, r io.Reader, dataKey []byte) (evidence.Object, error)
	Delete(ctx context.Context, key string) error
}

var _ Evidence = (*evidence.Store)(nil)

// Service runs intake's use cases on reports.
type Service struct {
	store    *store.Store
	evidence Evidence
	keys     *keyring.Keyring
	limits   Limits
	similar  Similar
	decoding *pdq.Budget         // shared by the PDQ decodes of all submissions
	uploads  *semaphore.Weighted // Limits.UploadMemory, shared by all submissions
	log      *slog.Logger
	now      func() time.Time

	// AttentionPolicy is the attention queue's.
	AttentionPolicy store.AttentionPolicy

	// HoldForLegal holds each submitted report for a second person's legal
	// decision (LEGAL_APPROVAL=required; legal.go).
	HoldForLegal bool

	// Stored, when set, is told of each report a submission stored, after
	// its transaction (intake's lifecycle job then locks its objects). It
	// must not block.
	Stored func(reportID string)

	submissions *prometheus.CounterVec
	bytes       prometheus.Counter
	reserved    prometheus.Gauge // of UploadMemory
}

// Limits returns the bounds of a submission.
func (s *Service) Limits() Limits { return s.limits }

// Similar configures "reported before?": PDQ hashing of images and the
// search for earlier reports of the same or a similar file.
type Similar struct {
	MaxImageBytes int // images up to this size are PDQ-hashed as they stream (default 32 MiB)
	MaxPixels     int // larger images are refused by the decoder without allocating (default 50 megapixels)
	// DecodeMemory is the memory all PDQ decodes at once may take (default
	// 128 MiB); an image whose decode alone needs more gets no PDQ hash.
	DecodeMemory int64
	Distance     int // PDQ hashes at most this many bits apart match (default 31)
}

func (s Similar) withDefaults() Similar {
	if s.MaxImageBytes == 0 {
		s.MaxImageBytes = 32 << 20
	}
	if s.MaxPixels == 0 {
		s.MaxPixels = 50_000_000
	}
	if s.DecodeMemory == 0 {
		s.DecodeMemory = DefaultDecodeMemory
	}
	if s.Distance == 0 {
		s.Distance = pdq.MatchThreshold
	}
	return s
}

// DefaultDecodeMemory is Similar.DecodeMemory's default: a 48-megapixel
// phone photo (JPEG, 4:2:0) fits, and so does any image of 12 megapixels.
const DefaultDecodeMemory = 128 << 20

// New returns the service.
func New(st *store.Store, ev Evidence, keys *keyring.Keyring, limits Limits, similar Similar, m *metrics.Factory, log *slog.Logger) *Service {
	similar, limits = similar.withDefaults(), limits.withDefaults()
	return &Service{
		uploads: semaphore.NewWeighted(limits.UploadMemory),
		store:   st, evidence: ev, keys: keys, limits: limits, similar: similar, log: log, now: time.Now,
		decoding:    pdq.NewBudget(similar.DecodeMemory),
		submissions: m.Counter("submissions_total", "Report submissions, by result (created or the error code).", "result"),
		bytes:       m.Counter("evidence_bytes_total", "Evidence bytes received and stored.").WithLabelValues(),
		reserved:    m.Gauge("upload_memory_reserved_bytes", "Bytes of UPLOAD_MEMORY the submissions in progress hold.").WithLabelValues(),
	}
}

// ReadRoles may read reports and their progress; evidence-admin staff read
// the reports whose evidence they hold or destroy.
var ReadRoles = []string{auth.RoleReporter, auth.RoleRetractor, auth.RoleAuditor, auth.RoleLegal, auth.RoleEvidenceAdmin}

// Correction changes a report before it is filed again: the report JSON of
// a submission (report.Input), with only the fields to change. Fields left
// out keep their stored values; "files" corrects each file's metadata in
// order. Whether the report is a test stays as submitted.
type Correction struct{ raw []byte }

// NewCorrection returns a correction of the given fields of report.Input
// (for the web form).
func NewCorrection(fields map[string]any) (*Correction, error) {
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	return &Correction{raw: raw}, nil
}

// CorrectionJSON returns a correction of the report JSON raw, which the
// caller checked is one JSON object (the API's refile body).
func CorrectionJSON(raw []byte) *Correction { return &Correction{raw: raw} }

// correct applies c to r, under the same rules as a submission.
func (s *Service) correct(r *report.Report, c *Correction) error {
	in := report.Input{
		IncidentType: r.IncidentType, IncidentTime: r.IncidentTime.UTC().Format(time.RFC3339), Platform: r.Platform,
		URLs: r.URLs, Uploader: r.Uploader, LegalApproved: r.LegalApproved, Approver: r.Approver,
		NotApprovedReason: r.NotApprovedReason, ActionsTaken: r.ActionsTaken, Notes: r.Notes, PrivateNote: r.PrivateNote, Escalate: r.Escalate, Test: r.Test,
	}
	for _, f := range r.Files {
		in.Files = append(in.Files, f.FileInput)
	}
	// Decoding over the stored values changes only the fields sent (and
	// merges each file's entry into the stored one).
	if err := json.Unmarshal(c.raw, &in); err != nil {
		return invalid("invalid", "", "the corrections are not a report JSON object: %v", err)
	}
	in.Test = r.Test
	if len(in.Files) > len(r.Files) {
		return invalid("invalid", "files", "the report has %d files; the corrections describe %d", len(r.Files), len(in.Files))
	}
	if err := validate(&in, s.now()); err != nil {
		return err
	}
	r.Details = in.Details()
	r.IncidentTime = in.IncidentAt()
	for i := range in.Files {
		in.Files[i].Name = r.Files[i].FileInput.Name // the original name is a fact, not a correction
		r.Files[i].FileInput = in.Files[i]
	}
	return nil
}

// validate checks in against the report rules: an Invalid fault naming
// the first problem and listing them all (code invalid_file_name when the
// first is a refused file name).
func validate(in *report.Input, now time.Time) error {
	err := in.Validate(now)
	if err == nil {
		return nil
	}
	var fes report.FieldErrors
	if !errors.As(err, &fes) || len(fes) == 0 {
		return invalid("invalid", "report", "%v", err)
	}
	code := "invalid"
	if errors.Is(fes[0], report.ErrBadFileName) {
		code = "invalid_file_name"
	}
	fe := fault.Errorf(fault.Invalid, code, fes[0].Field, "%s", fes[0].Message)
	for _, p := range fes {
		fe.Fields = append(fe.Fields, fault.FieldProblem{Field: p.Field, Message: p.Message})
	}
	return fe
}

// Refile files a report again, as its next filing, when its filing allows
// it (filing.FileAgain: retracted, closed, or failed before NCMEC opened
// anything): takedown.report.submitted announces it again with filing + 1,
// through the outbox, with the report as corrected by corr (nil: as it
// is). An open or finished NCMEC report is never duplicated: the refusal
// is a Conflict with the reason.
func (s *Service) Refile(ctx context.Context, staff auth.Staff, id string, corr *Correction) (*report.Report, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errNotFound(id)
	}
	ctx, log := logging.With(ctx, logging.KeyReportID, id)
	var eventID string
	rep, err := s.store.Change(ctx, id, func(r *report.Report, key keyring.WrappedKey) (*pb.Envelope, error) {
		if err := refused(r.FilingStatus.Allows(filing.FileAgain)); err != nil {
			return nil, err
		}
		if corr != nil {
			if err := s.correct(r, corr); err != nil {
				return nil, err
			}
		}
		r.Filing = r.FilingStatus.Filing + 1
		// Earlier finished reports of the uploader; the filing being
		// replaced, never finished, is not among them.
		prior, err := s.store.PriorNCMECReports(ctx, r.Details)
		if err != nil {
			return nil, err
		}
		ev, err := events.New(r.ID, staff.Actor(), &pb.ReportSubmitted{
			Report:  toProto(r, prior),
			Files:   filesToProto(r.Files),
			DataKey: &pb.WrappedKey{MasterKeyId: key.MasterKeyID, Ciphertext: key.Ciphertext},
		})
		if ev != nil {
			eventID = ev.EventId
		}
		return ev, err
	})
	if err := changeError(log, id, "filed again", err); err != nil {
		return nil, err
	}
	log.Info("report filed again", logging.KeyFiling, rep.Filing, "corrected", corr != nil, logging.KeyEventID, eventID)
	return rep, nil
}

// maxReason bounds the reason of a close or of legal's decision.
const maxReason = 1000

// Close settles a failed filing that staff resolved outside the tool
// (filing.Close): takedown.report.closed, with staff's reason, is committed
// with the report's new state through the outbox.
func (s *Service) Close(ctx context.Context, staff auth.Staff, id, reason string) (*report.Report, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errNotFound(id)
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, invalid("invalid", "reason", "say why the report is closed (e.g. how it was settled with NCMEC)")
	}
	if len(reason) > maxReason {
		return nil, invalid("invalid", "reason", "the reason is longer than %d bytes", maxReason)
	}
	ctx, log := logging.With(ctx, logging.KeyReportID, id)
	rep, err := s.store.Change(ctx, id, func(r *report.Report, _ keyring.WrappedKey) (*pb.Envelope, error) {
		if err := refused(r.FilingStatus.Allows(filing.Close)); err != nil {
			return nil, err
		}
		return events.New(r.ID, staff.Actor(),
			&pb.ReportClosed{Filing: uint32(r.FilingStatus.Filing), Reason: reason})
	})
	if err := changeError(log, id, "closed", err); err != nil {
		return nil, err
	}
	log.Info("report closed", logging.KeyFiling, rep.Filing)
	return rep, nil
}

// refused turns a filing.Refusal into a Conflict.
func refused(err error) error {
	var no *filing.Refusal
	if errors.As(err, &no) {
		return fault.Errorf(fault.Conflict, "conflict", "", "%s", no.Reason)
	}
	return err
}

// changeError is the caller's error of a change to report id: not found,
// the rules' own fault, or the database's failure (logged).
func changeError(log *slog.Logger, id, what string, err error) error {
	var fe *fault.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return errNotFound(id)
	case errors.As(err, &fe):
		return err
	}
	log.Error("report could not be "+what, logging.KeyErr, err)
	return fault.Errorf(fault.Unavailable, "database_unavailable", "", "the report could not be %s; try again in a minute", what)
}

// Get returns report id with each file's earlier reports (ReportedBefore).
func (s *Service) Get(ctx context.Context, id string) (*report.Report, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errNotFound(id)
	}
	rep, err := s.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound(id)
	}
	if err != nil {
		s.log.Error("get report", logging.KeyReportID, id, logging.KeyErr, err)
		return nil, err
	}
	if err := s.ReportedBefore(ctx, rep); err != nil {
		s.log.Error("reported before", logging.KeyReportID, id, logging.KeyErr, err)
		return nil, err
	}
	return rep, nil
}

// ReportedBefore fills each file's earlier reports of the same bytes or a
// similar image.
func (s *Service) ReportedBefore(ctx context.Context, rep *report.Report) error {
	matches, err := s.store.ReportedBefore(ctx, rep, s.similar.Distance)
	if err != nil {
		return err
	}
	for i := range rep.Files {
		rep.Files[i].ReportedBefore = matches[rep.Files[i].ID]
	}
	return nil
}

func errNotFound(id string) error {
	return fault.Errorf(fault.NotFound, "", "", "no report %q", id)
}

// invalid is an Invalid fault with code naming field.
func invalid(code, field, format string, args ...any) error {
	return fault.Errorf(fault.Invalid, code, field, format, args...)
}
