package lifecycle

import (
	"errors"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"takedown/pkg/auth"
	"takedown/pkg/logging"
	"takedown/pkg/server"
)

// Routes mounts the evidence-admin endpoints on r behind guard.
func (m *Manager) Routes(r chi.Router, guard func(roles ...string) func(http.Handler) http.Handler) {
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

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
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
		server.WriteError(w, ErrNotFound)
		return "", false
	}
	return v, true
}

// writeErr answers err: an API error as is, anything else as 503 (the
// database or S3 failed; the operation can be repeated).
func (m *Manager) writeErr(w http.ResponseWriter, op string, err error) {
	var ae *server.APIError
	if errors.As(err, &ae) {
		server.WriteError(w, err)
		return
	}
	m.log.Error(op, logging.KeyErr, err)
	server.WriteError(w, server.Errorf(http.StatusServiceUnavailable, "unavailable", "", "%s failed; try again in a minute", op))
}

func (m *Manager) placeHold(w http.ResponseWriter, r *http.Request) {
	id, ok := uuidParam(w, r, "id")
	var in struct {
		Reason string `json:"reason"`
	}
	if !ok || !decode(w, r, &in) {
		return
	}
	s, _ := auth.FromContext(r.Context())
	h, err := m.PlaceHold(r.Context(), s, id, in.Reason)
	if err != nil {
		m.writeErr(w, "placing the hold", err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, h)
}

func (m *Manager) liftHold(w http.ResponseWriter, r *http.Request) {
	id, ok := uuidParam(w, r, "id")
	if !ok {
		return
	}
	hold, ok := uuidParam(w, r, "hold")
	var in struct {
		Reason string `json:"reason"`
	}
	if !ok || !decode(w, r, &in) {
		return
	}
	s, _ := auth.FromContext(r.Context())
	if err := m.LiftHold(r.Context(), s, id, hold, in.Reason); err != nil {
		m.writeErr(w, "lifting the hold", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (m *Manager) requestDestruction(w http.ResponseWriter, r *http.Request) {
	id, ok := uuidParam(w, r, "id")
	var in struct {
		Agency      string `json:"agency"`
		Reference   string `json:"reference"`
		RequestedOn string `json:"requested_on"`
	}
	if !ok || !decode(w, r, &in) {
		return
	}
	s, _ := auth.FromContext(r.Context())
	d, err := m.RequestDestruction(r.Context(), s, id, in.Agency, in.Reference, in.RequestedOn)
	if err != nil {
		m.writeErr(w, "recording the destruction request", err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, d)
}

func (m *Manager) approveDestruction(w http.ResponseWriter, r *http.Request) {
	req, ok := uuidParam(w, r, "req")
	if !ok {
		return
	}
	s, _ := auth.FromContext(r.Context())
	d, err := m.ApproveDestruction(r.Context(), s, req)
	if err != nil {
		m.writeErr(w, "destroying the evidence", err)
		return
	}
	server.WriteJSON(w, http.StatusOK, d)
}

func (m *Manager) expiryReport(w http.ResponseWriter, r *http.Request) {
	c, err := m.Expire(r.Context(), true)
	if err != nil {
		m.writeErr(w, "listing expired evidence", err)
		return
	}
	if c == nil {
		c = []Candidate{}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"would_delete": c})
}

func (m *Manager) keysReport(w http.ResponseWriter, r *http.Request) {
	k, err := m.KeysInUse(r.Context())
	if err != nil {
		m.writeErr(w, "listing master keys", err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"master_keys": k})
}
