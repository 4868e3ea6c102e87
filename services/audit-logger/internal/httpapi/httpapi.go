// Package httpapi serves the audit log to auditors (DESIGN.md §8):
// GET /api/v1/audit lists entries, GET /api/v1/audit/verify walks the chain.
//
// Reading the audit log is itself audited: every read, every verify and
// every refused request becomes a takedown.staff.action event, published
// through this service's outbox and so recorded in the log like any other.
// A read whose record cannot be written is not answered.
package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"

	"takedown/pkg/auth"
	"takedown/pkg/database"
	"takedown/pkg/events"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/pkg/outbox"
	pb "takedown/pkg/proto/takedown/v1"
	"takedown/pkg/server"
	"takedown/pkg/staffaction"
	"takedown/services/audit-logger/internal/auditlog"
)

// Page sizes of GET /api/v1/audit.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Staff actions this API records.
const (
	ActionRead   = "read_audit_log"
	ActionVerify = "verify_audit_log"
	ActionDenied = staffaction.ActionDenied
)

// API is the audit log's HTTP API.
type API struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	verifies *prometheus.CounterVec
	batch    int
	denials  *staffaction.Denials
}

// New returns the API over pool (the service's schema and role).
func New(pool *pgxpool.Pool, m *metrics.Factory, log *slog.Logger) *API {
	a := &API{pool: pool, log: log, batch: 1000,
		verifies: m.Counter("verify_total", "Walks of the audit chain, by result (ok, bad, error).", "result")}
	a.denials = staffaction.NewDenials(func(ctx context.Context, env *pb.Envelope) error {
		return database.InTx(ctx, pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, env) })
	}, log)
	return a
}

// RecordDenials writes the aggregate entries of refused requests (package
// staffaction) until ctx ends.
func (a *API) RecordDenials(ctx context.Context) error { return a.denials.Run(ctx) }

// Routes mounts the API on r, open to staff holding the auditor role.
func (a *API) Routes(r chi.Router, authn ...auth.Authenticator) {
	r.Group(func(r chi.Router) {
		r.Use(a.recordDenials(authn), auth.Require(auth.RoleAuditor, authn...))
		r.Get("/api/v1/audit", a.list)
		r.Get("/api/v1/audit/verify", a.verify)
	})
}

// Entry is an entry as the API shows it.
type Entry struct {
	Seq        int64          `json:"seq"`
	EventID    string         `json:"event_id"`
	Type       string         `json:"type"`
	ReportID   string         `json:"report_id,omitempty"`
	Actor      auditlog.Actor `json:"actor"`
	OccurredAt *time.Time     `json:"occurred_at,omitempty"`
	RecordedAt time.Time      `json:"recorded_at"`
	StreamSeq  uint64         `json:"stream_seq"`
	// Refused says why no service acted on the event ("<reason>: <detail>"):
	// its subject, type, payload or publisher disagreed with the ownership
	// table (a forgery or a bug). Absent for ordinary entries.
	Refused string `json:"refused,omitempty"`
	// Event is the recorded event for reading (protobuf JSON).
	Event json.RawMessage `json:"event,omitempty"`
	// Content is the canonical content exactly as hashed: anyone can check
	// hash == SHA-256(hex-decoded prev_hash || content).
	Content  string `json:"content"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Page is the answer of GET /api/v1/audit.
type Page struct {
	Entries []Entry `json:"entries"`
	// NextAfter is the cursor of the next page (?after=), absent on the last.
	NextAfter *int64 `json:"next_after,omitempty"`
}

func view(e auditlog.Entry) Entry {
	v := Entry{Seq: e.Seq, EventID: e.EventID, Type: e.Type, ReportID: e.ReportID, Actor: e.Actor,
		RecordedAt: e.RecordedAt, StreamSeq: e.StreamSeq, Refused: e.Refused, Content: string(e.Content),
		PrevHash: auditlog.HexHash(e.PrevHash), Hash: auditlog.HexHash(e.Hash)}
	if !e.OccurredAt.IsZero() {
		t := e.OccurredAt
		v.OccurredAt = &t
	}
	// A tampered entry may not decode; it is still listed, and verify says why.
	if env, err := e.Event(); err == nil {
		if b, err := protojson.Marshal(env); err == nil {
			v.Event = b
		}
	}
	return v
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	reportID := q.Get("report_id")
	if reportID != "" {
		if _, err := uuid.Parse(reportID); err != nil {
			server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "report_id", "not a report id (UUID)"))
			return
		}
	}
	limit, err := intParam(q.Get("limit"), DefaultLimit, 1, MaxLimit)
	if err != nil {
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "limit", "%v", err))
		return
	}
	after, err := intParam(q.Get("after"), 0, 0, 1<<62)
	if err != nil {
		server.WriteError(w, server.Errorf(http.StatusBadRequest, "invalid", "after", "%v", err))
		return
	}
	staff, _ := auth.FromContext(r.Context())
	var entries []auditlog.Entry
	// The read and its record commit together: no unrecorded read.
	err = database.InTx(r.Context(), a.pool, func(tx pgx.Tx) error {
		var err error
		if entries, err = auditlog.List(r.Context(), tx, reportID, int64(after), limit); err != nil {
			return err
		}
		detail := fmt.Sprintf("%d entries after %d", len(entries), after)
		return record(r.Context(), tx, reportID, staff.Actor(), ActionRead, r, detail)
	})
	if err != nil {
		logging.FromContext(r.Context()).Error("audit list", logging.KeyErr, err)
		server.WriteError(w, err)
		return
	}
	page := Page{Entries: make([]Entry, 0, len(entries))}
	for _, e := range entries {
		page.Entries = append(page.Entries, view(e))
	}
	if len(entries) == limit {
		next := entries[len(entries)-1].Seq
		page.NextAfter = &next
	}
	server.WriteJSON(w, http.StatusOK, page)
}

func (a *API) verify(w http.ResponseWriter, r *http.Request) {
	res, err := auditlog.Verify(r.Context(), a.pool, a.batch)
	if err != nil {
		a.verifies.WithLabelValues("error").Inc()
		logging.FromContext(r.Context()).Error("audit verify", logging.KeyErr, err)
		server.WriteError(w, err)
		return
	}
	result := "ok"
	detail := fmt.Sprintf("ok: %d entries", res.Entries)
	if !res.OK {
		result = "bad"
		detail = fmt.Sprintf("not ok: %d entries; first bad entry %d (%s): %s", res.Entries, res.FirstBad.Seq, res.FirstBad.EventID, res.FirstBad.Reason)
		logging.FromContext(r.Context()).Error("audit chain does not verify", "seq", res.FirstBad.Seq,
			logging.KeyEventID, res.FirstBad.EventID, "reason", res.FirstBad.Reason)
	}
	a.verifies.WithLabelValues(result).Inc()
	staff, _ := auth.FromContext(r.Context())
	err = database.InTx(r.Context(), a.pool, func(tx pgx.Tx) error {
		return record(r.Context(), tx, "", staff.Actor(), ActionVerify, r, detail)
	})
	if err != nil {
		logging.FromContext(r.Context()).Error("audit verify: record the action", logging.KeyErr, err)
		server.WriteError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, res)
}

// recordDenials records every request auth.Require refuses (401, 403),
// bounded and rate-limited per client (package staffaction): an anonymous
// client must not be able to grow the audit log without bound. The handlers
// behind it never answer those themselves, so such a status means a
// refusal. The caller is named when its credentials say who it is.
func (a *API) recordDenials(authn []auth.Authenticator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.status != http.StatusUnauthorized && sw.status != http.StatusForbidden {
				return
			}
			actor, why := caller(r, authn)
			a.denials.Record(r, actor, fmt.Sprintf("%d %s: %s", sw.status, http.StatusText(sw.status), why))
		})
	}
}

// caller names who sent a refused request, as far as its credentials tell.
func caller(r *http.Request, authn []auth.Authenticator) (*pb.Actor, string) {
	for _, a := range authn {
		s, ok, err := a(r)
		if err != nil {
			return staffaction.Anonymous(), "invalid credentials"
		}
		if ok {
			return s.Actor(), "lacks the " + auth.RoleAuditor + " role"
		}
	}
	return staffaction.Anonymous(), "no credentials"
}

// record adds a StaffAction event to the outbox within tx.
func record(ctx context.Context, tx pgx.Tx, reportID string, actor *pb.Actor, action string, r *http.Request, detail string) error {
	env, err := events.New(reportID, actor, staffaction.Of(r, actor, action, detail))
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, env)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func intParam(s string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not a whole number in %d..%d", s, lo, hi)
	}
	return n, nil
}
