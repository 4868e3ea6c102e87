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

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"takedown/pkg/evidence"
	"takedown/pkg/keyring"
	"takedown/pkg/metrics"
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

// maxReportJSON bounds the report part: it holds text, never media.
const maxReportJSON = 1 << 20

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
	log      *slog.Logger
	now      func() time.Time

	submissions *prometheus.CounterVec
	bytes       prometheus.Counter
}

// New returns the API.
func New(st *store.Store, ev Evidence, keys *keyring.Keyring, limits Limits, m *metrics.Factory, log *slog.Logger) *API {
	return &API{
		store: st, evidence: ev, keys: keys, limits: limits, log: log, now: time.Now,
		submissions: m.Counter("submissions_total", "Report submissions, by result (created or the error code).", "result"),
		bytes:       m.Counter("evidence_bytes_total", "Evidence bytes received and stored.").WithLabelValues(),
	}
}

// Routes mounts the endpoints on r; authentication is the caller's.
func (a *API) Routes(r chi.Router) {
	r.Post("/api/v1/reports", a.submit)
	r.Get("/api/v1/reports", a.list)
	r.Get("/api/v1/reports/{id}", a.get)
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
	server.WriteJSON(w, http.StatusOK, rep)
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
