// Package staffaction turns a staff request into the StaffAction event the
// audit log keeps for ever, and keeps what a client that is refused can make
// the log hold bounded.
//
// The audit log is hash-chained and append-only: whatever goes into it
// stays. So a request's method, path and query go in cut to a fixed size,
// an unauthenticated request's query values never (they are the client's
// words, not a staff member's action), and refusals are recorded one by one
// only up to PerClient per client per Window; the rest of a client's
// refusals in that window become one aggregate entry ("N more denied
// requests from X in the last minute") when the window closes.
package staffaction

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"takedown/pkg/events"
	"takedown/pkg/logging"
	pb "takedown/pkg/proto/takedown/v1"
)

// Bounds of what one entry keeps of a request, in bytes.
const (
	MaxMethod = 16
	MaxPath   = 256 // path, and the query after it, each
	MaxDetail = 256
)

// Limits of the record of refusals.
const (
	// PerClient refusals of one client are recorded one by one per Window.
	PerClient = 5
	Window    = time.Minute
	// MaxClients bounds the clients tracked at once (and so the memory and
	// the aggregate entries of a flood from many addresses); refusals from
	// clients beyond it are counted together.
	MaxClients = 1024
)

// ActionDenied is the action of a refused request.
const ActionDenied = "denied"

// Anonymous is the actor of a request whose credentials name nobody.
func Anonymous() *pb.Actor { return &pb.Actor{Kind: pb.Actor_KIND_UNSPECIFIED, Id: "anonymous"} }

// authenticated reports whether actor is a staff member named by valid credentials.
func authenticated(actor *pb.Actor) bool {
	return actor.GetKind() == pb.Actor_KIND_STAFF && actor.GetId() != ""
}

// Of returns the StaffAction of r by actor, bounded: method, path, query
// and detail cut to their maximum sizes, and the query reduced to its
// parameter names unless actor is an authenticated staff member.
func Of(r *http.Request, actor *pb.Actor, action, detail string) *pb.StaffAction {
	return &pb.StaffAction{
		Action:     action,
		Method:     cut(r.Method, MaxMethod),
		Path:       requestPath(r, authenticated(actor)),
		Detail:     cut(detail, MaxDetail),
		RemoteAddr: r.RemoteAddr,
	}
}

func requestPath(r *http.Request, withValues bool) string {
	p := cut(r.URL.EscapedPath(), MaxPath)
	q := r.URL.RawQuery
	if q == "" {
		return p
	}
	if !withValues {
		names := strings.Split(q, "&")
		for i, kv := range names {
			if k, _, ok := strings.Cut(kv, "="); ok {
				names[i] = k + "="
			}
		}
		q = strings.Join(names, "&")
	}
	return p + "?" + cut(q, MaxPath)
}

// cut shortens s to at most n bytes (on a rune boundary), marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	i := n - len(mark)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + mark
}

// Sink stores an event for the audit log (through the service's outbox).
type Sink func(ctx context.Context, env *pb.Envelope) error

// Denials records refused requests through a Sink, at most PerClient per
// client per Window one by one and the rest as one aggregate entry per
// client and window. Run must run for the aggregates to be written. It is
// safe for concurrent use.
type Denials struct {
	sink Sink
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	clients map[string]*window
}

// window is one client's refusals since start.
type window struct {
	start      time.Time
	actor      *pb.Actor
	recorded   int
	suppressed int
}

// overflow is the key of the refusals of clients beyond MaxClients.
const overflow = "clients beyond those tracked"

// NewDenials returns a recorder of refusals writing to sink.
func NewDenials(sink Sink, log *slog.Logger) *Denials {
	return &Denials{sink: sink, log: log, now: time.Now, clients: map[string]*window{}}
}

// Record records that r by actor (Anonymous when its credentials name
// nobody) was refused, for why, or counts it when its client has had
// PerClient refusals recorded in the current window. It does not depend on
// the request's context staying alive: the answer may be sent already.
func (d *Denials) Record(r *http.Request, actor *pb.Actor, why string) {
	if actor == nil {
		actor = Anonymous()
	}
	ctx := context.WithoutCancel(r.Context())
	key := clientKey(r, actor)
	d.mu.Lock()
	now := d.now()
	w, ok := d.clients[key]
	var closed *window
	closedKey := key
	if ok && now.Sub(w.start) >= Window {
		closed, ok = w, false
		delete(d.clients, key)
	}
	if !ok {
		if len(d.clients) >= MaxClients {
			key = overflow
			w, ok = d.clients[key]
		}
		if !ok {
			w = &window{start: now, actor: actor}
			d.clients[key] = w
		}
	}
	record := key != overflow && w.recorded < PerClient
	if record {
		w.recorded++
	} else {
		w.suppressed++
	}
	d.mu.Unlock()
	if closed != nil {
		d.aggregate(ctx, closedKey, closed)
	}
	if record {
		d.write(ctx, actor, Of(r, actor, ActionDenied, why))
	}
}

// Run writes the aggregate entries of the windows that close, until ctx
// ends; then it writes those still open.
func (d *Denials) Run(ctx context.Context) error {
	t := time.NewTicker(Window / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.Flush(context.WithoutCancel(ctx), true)
			return nil
		case <-t.C:
			d.Flush(ctx, false)
		}
	}
}

// Flush writes the aggregate entries of the windows that have closed, or
// of every window when all is true (at shutdown), and forgets them.
func (d *Denials) Flush(ctx context.Context, all bool) {
	d.mu.Lock()
	now := d.now()
	closed := map[string]*window{}
	for k, w := range d.clients {
		if all || now.Sub(w.start) >= Window {
			closed[k] = w
			delete(d.clients, k)
		}
	}
	d.mu.Unlock()
	for k, w := range closed {
		d.aggregate(ctx, k, w)
	}
}

func (d *Denials) aggregate(ctx context.Context, key string, w *window) {
	if w.suppressed == 0 {
		return
	}
	actor := w.actor
	if key == overflow {
		actor = Anonymous()
	}
	d.write(ctx, actor, &pb.StaffAction{
		Action: ActionDenied,
		Detail: fmt.Sprintf("%d more denied requests from %s in the minute from %s, not recorded one by one",
			w.suppressed, key, w.start.UTC().Format(time.RFC3339)),
		RemoteAddr: key,
	})
}

func (d *Denials) write(ctx context.Context, actor *pb.Actor, a *pb.StaffAction) {
	env, err := events.New("", actor, a)
	if err == nil {
		err = d.sink(ctx, env)
	}
	if err != nil {
		d.log.Error("record a denied request", logging.KeyErr, err)
	}
}

// clientKey names who a refusal counts against: the staff member when the
// credentials name one, else the client's address (an IPv6 client by its
// /64, which one machine commonly holds whole).
func clientKey(r *http.Request, actor *pb.Actor) string {
	if authenticated(actor) {
		return "staff " + actor.GetId()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return cut(host, 64)
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}
