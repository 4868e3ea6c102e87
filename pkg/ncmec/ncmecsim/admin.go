package ncmecsim

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"
)

// State is everything the simulator holds, as GET /_sim/state shows it.
type State struct {
	Reports   []ReportState  `json:"reports"`
	Calls     map[string]int `json:"calls"` // API calls received per endpoint
	LatencyMS int64          `json:"latency_ms"`
}

// ReportState is one report.
type ReportState struct {
	ID           int64     `json:"id"`
	Status       string    `json:"status"` // open, finished, retracted, expired
	Opened       time.Time `json:"opened"`
	LastModified time.Time `json:"last_modified"`
	// ExpiresAt is when an open report will be deleted.
	ExpiresAt *time.Time  `json:"expires_at,omitempty"`
	XML       string      `json:"xml"` // the <report> received
	Files     []FileState `json:"files"`
}

// FileState is one uploaded file: what was measured, never the bytes.
type FileState struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	MD5      string    `json:"md5"`
	Uploaded time.Time `json:"uploaded"`
	Details  string    `json:"details,omitempty"` // the last <fileDetails> received
}

// State returns a snapshot of every report in the order they were opened.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Reports: make([]ReportState, 0, len(s.order)), Calls: maps.Clone(s.calls), LatencyMS: s.faults.Latency().Milliseconds()}
	for _, id := range s.order {
		st.Reports = append(st.Reports, s.reportState(s.reports[id]))
	}
	return st
}

// Report returns one report's state.
func (s *Server) Report(id int64) (ReportState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep, ok := s.reports[id]
	if !ok {
		return ReportState{}, false
	}
	return s.reportState(rep), true
}

func (s *Server) reportState(rep *report) ReportState {
	s.expire(rep)
	rs := ReportState{ID: rep.id, Status: rep.status, Opened: rep.opened, LastModified: rep.modified,
		XML: string(rep.xml), Files: make([]FileState, 0, len(rep.files))}
	if rep.status == StatusOpen {
		d := deadline(rep)
		rs.ExpiresAt = &d
	}
	for _, f := range rep.files {
		rs.Files = append(rs.Files, FileState{ID: f.id, Name: f.name, Size: f.size, MD5: f.md5,
			Uploaded: f.uploaded, Details: string(f.details)})
	}
	return rs
}

// adminRoutes exposes faults and state over HTTP (DESIGN §8), through the
// same methods tests call directly.
func (s *Server) adminRoutes() {
	s.mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if !decodeJSON(w, r, &f) {
			return
		}
		if err := s.Inject(f); err != nil {
			jsonError(w, http.StatusBadRequest, "invalid_fault", strings.TrimPrefix(err.Error(), "ncmecsim: "), "")
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"faults": s.Faults()})
	})
	s.mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"faults": s.Faults(), "latency_ms": s.faults.Latency().Milliseconds()})
	})
	s.mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("POST /_sim/latency", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			LatencyMS *int64 `json:"latency_ms"`
		}
		if !decodeJSON(w, r, &body) {
			return
		}
		if body.LatencyMS == nil || *body.LatencyMS < 0 {
			jsonError(w, http.StatusBadRequest, "invalid_latency", "latency_ms must be a non-negative number", "latency_ms")
			return
		}
		s.SetLatency(time.Duration(*body.LatencyMS) * time.Millisecond)
		writeJSON(w, http.StatusOK, map[string]any{"latency_ms": *body.LatencyMS})
	})
	s.mux.HandleFunc("GET /_sim/state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.State())
	})
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		jsonError(w, http.StatusBadRequest, "invalid_json", err.Error(), "")
		return false
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		jsonError(w, http.StatusBadRequest, "invalid_json", "one JSON object expected", "")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// jsonError writes the project's error shape (DESIGN §8).
func jsonError(w http.ResponseWriter, status int, code, msg, field string) {
	e := map[string]string{"code": code, "message": msg}
	if field != "" {
		e["field"] = field
	}
	writeJSON(w, status, map[string]any{"error": e})
}
