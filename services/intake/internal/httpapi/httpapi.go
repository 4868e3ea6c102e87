// Package httpapi is intake's JSON API (DESIGN.md §8): submit a report with
// its files, read one report with its progress, and list recent reports.
package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"takedown/pkg/auth"
	"takedown/pkg/events"
	"takedown/pkg/evidence"
	"takedown/pkg/keyring"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/pkg/pdq"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/server"
	"takedown/services/intake/internal/report"
	"takedown/services/intake/internal/store"
)

// Limits bound a submission. Video evidence can be several GiB.
type Limits struct {
	MaxFileSize  int64 // per file
	MaxFiles     int
	MaxTotalSize int64 // all files of one submission
}

// MaxDescription bounds the report part (or a form's fields): it holds
// text, never media.
const MaxDescription = 1 << 20

const maxReportJSON = MaxDescription

// Evidence is what the API needs of the evidence store.
type Evidence interface {
	Put(ctx context.Context, key string, r io.Reader, dataKey []byte) (evidence.Object, error)
	Delete(ctx context.Context, key string) error
}

var _ Evidence = (*evidence.Store)(nil)

// API serves intake's endpoints.
type API struct {
	store    *store.Store
	evidence Evidence
	keys     *keyring.Keyring
	limits   Limits
	similar  Similar
	log      *slog.Logger
	now      func() time.Time

	// Stored, when set, runs after a submission is stored (intake locks
	// the new objects with it).
	Stored func(ctx context.Context)

	submissions *prometheus.CounterVec
	bytes       prometheus.Counter
}

// Limits returns the bounds of a submission.
func (a *API) Limits() Limits { return a.limits }

// Similar configures "reported before?": PDQ hashing of images and the
// search for earlier reports of the same or a similar file.
type Similar struct {
	MaxImageBytes int // images up to this size are PDQ-hashed as they stream (default 32 MiB)
	MaxPixels     int // larger images are refused by the decoder without allocating (default 50 megapixels)
	Distance      int // PDQ hashes at most this many bits apart match (default 31)
}

func (s Similar) withDefaults() Similar {
	if s.MaxImageBytes == 0 {
		s.MaxImageBytes = 32 << 20
	}
	if s.MaxPixels == 0 {
		s.MaxPixels = 50_000_000
	}
	if s.Distance == 0 {
		s.Distance = pdq.MatchThreshold
	}
	return s
}

// New returns the API.
func New(st *store.Store, ev Evidence, keys *keyring.Keyring, limits Limits, similar Similar, m *metrics.Factory, log *slog.Logger) *API {
	return &API{
		store: st, evidence: ev, keys: keys, limits: limits, similar: similar.withDefaults(), log: log, now: time.Now,
		submissions: m.Counter("submissions_total", "Report submissions, by result (created or the error code).", "result"),
		bytes:       m.Counter("evidence_bytes_total", "Evidence bytes received and stored.").WithLabelValues(),
	}
}

// Guard returns the middleware that admits staff holding one of roles;
// the caller decides how requests authenticate.
type Guard func(roles ...string) func(http.Handler) http.Handler

// ReadRoles may read reports and their progress.
var ReadRoles = []string{auth.RoleReporter, auth.RoleRetractor, auth.RoleAuditor}

// Routes mounts the endpoints on r behind guard.
func (a *API) Routes(r chi.Router, guard Guard) {
	r.With(guard(auth.RoleReporter)).Post("/api/v1/reports", a.submit)
	r.With(guard(ReadRoles...)).Get("/api/v1/reports", a.list)
	r.With(guard(ReadRoles...)).Get("/api/v1/reports/{id}", a.get)
	r.With(guard(auth.RoleReporter)).Post("/api/v1/reports/{id}/refile", a.refile)
}

func (a *API) refile(w http.ResponseWriter, r *http.Request) {
	staff, _ := auth.FromContext(r.Context())
	rep, err := a.Refile(r.Context(), staff, chi.URLParam(r, "id"))
	if err != nil {
		server.WriteError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusAccepted, rep)
}

// Refile files a retracted report again, as its next filing: the report
// goes back to submitted and takedown.report.submitted announces it again
// with filing + 1, through the outbox. Only a retracted report may be filed
// again: an open or finished NCMEC report must not be duplicated.
func (a *API) Refile(ctx context.Context, staff auth.Staff, id string) (*report.Report, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errNotFound(id)
	}
	ctx, log := logging.With(ctx, logging.KeyReportID, id)
	var eventID string
	rep, err := a.store.Refile(ctx, id, func(r *report.Report, key keyring.WrappedKey) (*pb.Envelope, error) {
		if r.Status != report.StatusRetracted {
			return nil, server.Errorf(http.StatusConflict, "conflict", "",
				"only a retracted report can be filed again; this one is %s", strings.ReplaceAll(string(r.Status), "_", " "))
		}
		r.Filing++
		r.Status = report.StatusSubmitted
		// Earlier finished reports of the uploader; the retracted filing,
		// never finished, is not among them.
		prior, err := a.store.PriorNCMECReports(ctx, r.Details)
		if err != nil {
			return nil, err
		}
		ev, err := events.New(r.ID, events.Staff(staff.Subject, staff.Name), &pb.ReportSubmitted{
			Report:  toProto(r, prior),
			Files:   filesToProto(r.Files),
			DataKey: &pb.WrappedKey{MasterKeyId: key.MasterKeyID, Ciphertext: key.Ciphertext},
		})
		if ev != nil {
			eventID = ev.EventId
		}
		return ev, err
	})
	var ae *server.APIError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errNotFound(id)
	case errors.As(err, &ae):
		return nil, err
	case err != nil:
		log.Error("refile report", "err", err)
		return nil, server.Errorf(http.StatusServiceUnavailable, "database_unavailable", "", "the report could not be filed again; try again in a minute")
	}
	log.Info("report filed again", "filing", rep.Filing, "event_id", eventID)
	return rep, nil
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if _, err := uuid.Parse(id); err != nil {
		server.WriteError(w, errNotFound(id))
		return
	}
	rep, err := a.store.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		server.WriteError(w, errNotFound(id))
		return
	}
	if err != nil {
		a.log.Error("get report", "report_id", id, "err", err)
		server.WriteError(w, err)
		return
	}
	if err := a.ReportedBefore(r.Context(), rep); err != nil {
		a.log.Error("reported before", "report_id", id, "err", err)
		server.WriteError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, rep)
}

// ReportedBefore fills each file's earlier reports of the same bytes or a
// similar image.
func (a *API) ReportedBefore(ctx context.Context, rep *report.Report) error {
	matches, err := a.store.ReportedBefore(ctx, rep.ID, a.similar.Distance)
	if err != nil {
		return err
	}
	for i := range rep.Files {
		rep.Files[i].ReportedBefore = matches[rep.Files[i].ID]
	}
	return nil
}

func errNotFound(id string) error {
	return server.Errorf(http.StatusNotFound, "not_found", "", "no report %q", id)
}

// listPage is the answer of GET /api/v1/reports.
type listPage struct {
	Reports []report.Report `json:"reports"`
	// Next is the query for the following (older) page; empty on the last.
	Next string `json:"next,omitempty"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "limit", "limit must be a number from 1 to 200"))
			return
		}
		limit = n
	}
	before := q.Get("before")
	if before != "" {
		if _, err := uuid.Parse(before); err != nil {
			server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "before", "before must be a report id"))
			return
		}
	}
	reps, err := a.store.List(r.Context(), before, limit)
	if err != nil {
		a.log.Error("list reports", "err", err)
		server.WriteError(w, err)
		return
	}
	page := listPage{Reports: reps}
	if page.Reports == nil {
		page.Reports = []report.Report{}
	}
	if len(reps) == limit {
		page.Next = "/api/v1/reports?limit=" + strconv.Itoa(limit) + "&before=" + reps[len(reps)-1].ID
	}
	server.WriteJSON(w, http.StatusOK, page)
}
