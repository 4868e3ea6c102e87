// Package ncmecsim is a faithful simulator of NCMEC's CyberTipline reporting
// API, for tests (through httptest, see StartTest) and for the local stack
// (cmd/ncmecsim). It reproduces what API.md documents and the 2016
// recordings show: Basic auth, XML answers with application errors under
// HTTP 200, numeric report ids, 32-hex file ids, the MD5 of uploaded bytes,
// the state rules (5001/5002/5101/5102), XSD validation (4100) and the
// expiry of unfinished reports on an injectable clock.
//
// Failures are injected per endpoint and per call (Server.Inject, or POST
// /_sim/faults when Options.Admin is set): response codes, HTTP statuses,
// slow answers, dropped connections, and "applied but the answer was lost".
//
// Uploaded bytes are hashed and counted while they stream in and are never
// kept: the simulator holds only sizes and MD5s.
package ncmecsim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"takedown/pkg/logging"
	"takedown/pkg/ncmec"
	"takedown/pkg/simfault"
)

// BasePath is where the API lives, as on report.cybertip.org.
const BasePath = "/ispws"

// Report states shown by State.
const (
	StatusOpen      = "open"
	StatusFinished  = "finished"
	StatusRetracted = "retracted"
	StatusExpired   = "expired"
)

// NCMEC deletes an unfinished report 24 hours after it was opened or 1 hour
// after its last modification (upload or file details), whichever is later.
const (
	expiryAfterOpen   = 24 * time.Hour
	expiryAfterChange = time.Hour
)

// Options configure a Server. Username and Password are required.
type Options struct {
	Username string
	Password string
	// XSDPath, if set, makes /submit and /fileinfo validate documents
	// against that schema with xmllint (answering 4100 with its message)
	// and /xsd serve it.
	XSDPath string
	// XMLLint is the xmllint binary; default "xmllint" on PATH.
	XMLLint string
	// Admin enables the /_sim/ endpoints (faults, state, latency).
	Admin bool
	// RecordDir, if set, receives a file per request body (upload bodies
	// are recorded as their fields, size and MD5, never the bytes).
	RecordDir string
	// Latency delays every API call, e.g. for benchmarks.
	Latency time.Duration
	// Now is the clock for expiry and the incidentDateTime check;
	// default time.Now.
	Now func() time.Time
	// LegacyAuthBody answers bad credentials as in 2016 (a 401 with an XML
	// reportResponse) instead of the current empty 401.
	LegacyAuthBody bool
	Logger         *slog.Logger
}

// Server is the simulator. It is an http.Handler; the API is under BasePath.
type Server struct {
	opts      Options
	now       func() time.Time
	log       *slog.Logger
	validator *validator
	mux       *http.ServeMux
	closed    chan struct{}
	closeOnce sync.Once
	recordSeq atomic.Int64
	recordTag string
	faults    simfault.Set[Fault] // and latency; locks itself

	mu      sync.Mutex
	nextID  int64
	reports map[int64]*report
	order   []int64
	calls   map[string]int
}

type report struct {
	id       int64
	status   string
	opened   time.Time
	modified time.Time
	xml      []byte
	files    []*file
}

type file struct {
	id       string
	name     string
	size     int64
	md5      string
	details  []byte
	uploaded time.Time
}

// New checks opts and returns a simulator.
func New(opts Options) (*Server, error) {
	if opts.Username == "" || opts.Password == "" {
		return nil, errors.New("ncmecsim: username and password are required")
	}
	s := &Server{
		opts:      opts,
		now:       opts.Now,
		log:       opts.Logger,
		closed:    make(chan struct{}),
		recordTag: time.Now().UTC().Format("20060102T150405"),
		nextID:    7900000, // same magnitude as the recorded exttest ids
		reports:   make(map[int64]*report),
		calls:     make(map[string]int),
	}
	s.faults.SetLatency(opts.Latency)
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.XSDPath != "" {
		if _, err := os.Stat(opts.XSDPath); err != nil {
			return nil, fmt.Errorf("ncmecsim: xsd: %w", err)
		}
		lint := opts.XMLLint
		if lint == "" {
			lint = "xmllint"
		}
		path, err := exec.LookPath(lint)
		if err != nil {
			return nil, fmt.Errorf("ncmecsim: XSD validation needs xmllint (Debian: libxml2-utils): %w", err)
		}
		s.validator = &validator{xmllint: path, xsd: opts.XSDPath}
	}
	if opts.RecordDir != "" {
		if err := os.MkdirAll(opts.RecordDir, 0o700); err != nil {
			return nil, fmt.Errorf("ncmecsim: record dir: %w", err)
		}
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves the API and, if enabled, the admin endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close releases requests held by slow faults or latency, so that a server
// shutting down does not wait for them.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.Handle("GET "+BasePath+"/status", s.api(ncmec.EndpointStatus, s.handleStatus))
	s.mux.Handle("GET "+BasePath+"/xsd", s.api(ncmec.EndpointXSD, s.handleXSD))
	s.mux.Handle("POST "+BasePath+"/submit", s.api(ncmec.EndpointSubmit, s.handleSubmit))
	s.mux.Handle("POST "+BasePath+"/upload", s.api(ncmec.EndpointUpload, s.handleUpload))
	s.mux.Handle("POST "+BasePath+"/fileinfo", s.api(ncmec.EndpointFileInfo, s.handleFileInfo))
	s.mux.Handle("POST "+BasePath+"/finish", s.api(ncmec.EndpointFinish, s.handleFinish))
	s.mux.Handle("POST "+BasePath+"/retract", s.api(ncmec.EndpointRetract, s.handleRetract))
	if s.opts.Admin {
		s.adminRoutes()
	}
}

// api wraps an endpoint handler with what every call goes through, in the
// order a real deployment would apply it: latency, authentication, then any
// injected fault.
func (s *Server) api(ep string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[ep]++
		s.mu.Unlock()
		if latency := s.faults.Latency(); latency > 0 && !s.sleep(r, latency) {
			return
		}
		if !s.authorized(r) {
			s.unauthorized(w)
			return
		}
		w.Header().Set("Request-ID", newRequestID())
		fired, ok := s.faults.Take(ep)
		if !ok {
			h(w, r)
			return
		}
		f := fired.Fault
		s.log.Info("ncmecsim fault", "endpoint", ep, "kind", f.Kind, logging.KeyCode, f.Code, "status", f.Status)
		switch f.Kind {
		case FaultCode:
			s.fail(w, f.Code, "")
		case FaultHTTP:
			http.Error(w, http.StatusText(f.Status), f.Status)
		case FaultRateLimit:
			w.Header().Set("Retry-After", "1")
			http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
		case FaultDrop:
			dropConnection(w)
		case FaultSlow:
			if s.sleep(r, time.Duration(f.DelayMS)*time.Millisecond) {
				h(w, r)
			}
		case FaultLostResponse:
			// Apply the call fully, then lose the answer.
			h(discardWriter{header: make(http.Header)}, r)
			dropConnection(w)
		}
	})
}

// sleep waits d unless the client goes away or the server closes; it
// reports whether the request should go on.
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closed:
		return false
	}
}

func (s *Server) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.Username))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.Password))
	return u&p == 1
}

// legacyAuthBody is the static Apache document the 2016 server answered.
const legacyAuthBody = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<reportResponse>
 <responseCode>1000</responseCode>
 <responseDescription>Authentication Required</responseDescription>
</reportResponse>
`

func (s *Server) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="ESP Web Services"`)
	if s.opts.LegacyAuthBody {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(legacyAuthBody))
		return
	}
	w.WriteHeader(http.StatusUnauthorized)
}

const xmlDecl = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`

// reply writes an answer document (HTTP 200, as NCMEC does for errors too).
func (s *Server) reply(w http.ResponseWriter, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		s.log.Error("ncmecsim marshal", logging.KeyErr, err)
		http.Error(w, "marshal", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(xmlDecl))
	_, _ = w.Write(b)
}

// fail answers an application error: code, NCMEC's text, and detail.
func (s *Server) fail(w http.ResponseWriter, code int, detail string) {
	desc := ncmec.CodeText(code)
	if desc == "" {
		desc = fmt.Sprintf("Error %d", code)
	}
	if detail != "" {
		desc += " - " + detail
	}
	s.reply(w, &ncmec.Response{Code: code, Description: desc})
}

func (s *Server) success(w http.ResponseWriter, r *ncmec.Response) {
	r.Description = ncmec.CodeText(ncmec.CodeSuccess)
	s.reply(w, r)
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset, like a crashed gateway
			}
			_ = conn.Close()
			return
		}
	}
	// Not hijackable (HTTP/2): the closest thing is a gateway error.
	http.Error(w, "connection dropped", http.StatusBadGateway)
}

// discardWriter takes the answer of a call whose answer is to be lost.
type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header         { return d.header }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

func newRequestID() string { return randomHex(16) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
