package httpapi

// The evidence-admin endpoints over package lifecycle: holds, destruction
// requests and the evidence reports.

import (
	"io"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"takedown/pkg/auth"
	"takedown/pkg/logging"
	"takedown/pkg/server"
	"takedown/services/intake/internal/lifecycle"
)

// EvidenceAdmin serves the evidence-admin endpoints.
type EvidenceAdmin struct {
	m   *lifecycle.Manager
	log *slog.Logger
}

// NewEvidenceAdmin returns the endpoints of m.
func NewEvidenceAdmin(m *lifecycle.Manager, log *slog.Logger) *EvidenceAdmin {
	return &EvidenceAdmin{m: m, log: log}
}

// Routes mounts the evidence-admin endpoints on r behind guard.
func (m *EvidenceAdmin) Routes(r chi.Router, guard Guard) {
	r.Group(func(r chi.Router) {
		r.Use(guard(auth.RoleEvidenceAdmin))
		r.Post("/api/v1/reports/{id}/holds", m.placeHold)
		r.Delete("/api/v1/reports/{id}/holds/{hold}", m.liftHold)
		r.Post("/api/v1/reports/{id}/destruction-requests", m.requestDestruction)
		r.Post("/api/v1/destruction-requests/{req}/approve", m.approveDestruction)
		r.Get("/api/v1/evidence/expiry", m.expiryReport)
		r.Get("/api/v1/evidence/keys", m.keysReport)
	})
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil {
		err = server.DecodeJSON(raw, v)
	}
	if err != nil {
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid_json", "", "the body is not the expected JSON: %v", err))
		return false
	}
	return true
}

func uuidParam(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	v := chi.URLParam(r, name)
	if _, err := uuid.Parse(v); err != nil {
		server.WriteError(w, lifecycle.ErrNotFound)
		return "", false
	}
	return v, true
}

// writeErr answers err: a kind of failure as its kind, anything else as
// 503 (the database or S3 failed; the operation can be repeated).
func (m *EvidenceAdmin) writeErr(w http.ResponseWriter, op string, err error) {
	if _, ok := server.AsAPIError(err); ok {
		server.WriteError(w, err)
		return
	}
	m.log.Error(op, logging.KeyErr, err)
	server.WriteError(w, server.Errorf(http.StatusServiceUnavailable, "unavailable", "", "%s failed; try again in a minute", op))
}

func (m *EvidenceAdmin) placeHold(w http.ResponseWriter, r *http.Request) {
	id, ok := uuidParam(w, r, "id")
	var in struct {
		Reason string `json:"reason"`
	}
	if !ok || !decodeBody(w, r, &in) {
		return
	}
	s, _ := auth.FromContext(r.Context())
	h, err := m.m.PlaceHold(r.Context(), s, id, in.Reason)
	if err != nil {
		m.writeErr(w, "placing the hold", err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, h)
}

func (m *EvidenceAdmin) liftHold(w http.ResponseWriter, r *http.Request) {
	id, ok := uuidParam(w, r, "id")
	if !ok {
		return
	}
	hold, ok := uuidParam(w, r, "hold")
	var in struct {
		Reason string `json:"reason"`
	}
	if !ok || !decodeBody(w, r, &in) {
		return
	}
	s, _ := auth.FromContext(r.Context())
	if err := m.m.LiftHold(r.Context(), s, id, hold, in.Reason); err != nil {
		m.writeErr(w, "lifting the hold", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (m *EvidenceAdmin) requestDestruction(w http.ResponseWriter, r *http.Request) {
	id, ok := uuidParam(w, r, "id")
	var in struct {
		Agency      string `json:"agency"`
		Reference   string `json:"reference"`
		RequestedOn string `json:"requested_on"`
	}
	if !ok || !decodeBody(w, r, &in) {
		return
	}
	s, _ := auth.FromContext(r.Context())
	d, err := m.m.RequestDestruction(r.Context(), s, id, in.Agency, in.Reference, in.RequestedOn)
	if err != nil {
		m.writeErr(w, "recording the destruction request", err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, d)
}

func (m *EvidenceAdmin) approveDestruction(w http.ResponseWriter, r *http.Request) {
	req, ok := uuidParam(w, r, "req")
	if !ok {
		return
	}
	s, _ := auth.FromContext(r.Context())
	d, err := m.m.ApproveDestruction(r.Context(), s, req)
	if err != nil {
		m.writeErr(w, "destroying the evidence", err)
		return
	}
	server.WriteJSON(w, http.StatusOK, d)
}

func (m *EvidenceAdmin) expiryReport(w http.ResponseWriter, r *http.Request) {
	c, err := m.m.Expire(r.Context(), true)
	if err != nil {
		m.writeErr(w, "listing expired evidence", err)
		return
	}
	if c == nil {
		c = []lifecycle.Candidate{}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"would_delete": c})
}

func (m *EvidenceAdmin) keysReport(w http.ResponseWriter, r *http.Request) {
	k, err := m.m.KeysInUse(r.Context())
	if err != nil {
		m.writeErr(w, "listing master keys", err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"master_keys": k})
}
