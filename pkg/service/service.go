// Package service wires what every takedown service has: configuration of
// its dependencies, the logger, the database pool with its migrations, the
// NATS connection and stream, the outbox relay, the HTTP server with
// /healthz, /readyz and /metrics, and a graceful stop on SIGINT/SIGTERM.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"takedown/pkg/config"
	"takedown/pkg/database"
	"takedown/pkg/logging"
	"takedown/pkg/metrics"
	"takedown/pkg/outbox"
	"takedown/pkg/server"
	"takedown/pkg/stream"
)

// Config is the configuration every service shares.
type Config struct {
	ListenAddr  string
	DatabaseURL config.Secret // may carry a password
	NATSURL     string
	// NATSUser and NATSPassword sign in to a server with one user per
	// service (deploy/nats/nats.conf); empty for a server without users.
	NATSUser        string
	NATSPassword    config.Secret
	StreamReplicas  int
	ShutdownTimeout time.Duration
	// HSTS sends Strict-Transport-Security: the service is reached over
	// https only (intake, when PUBLIC_URL is https).
	HSTS bool
	// TrustedProxies are the reverse proxies whose ClientIPHeader names
	// the client (server.ClientAddr); none: the connection's address is
	// the client's.
	TrustedProxies []netip.Prefix
	ClientIPHeader string
}

// LoadConfig reads the shared variables; defaultAddr is the service's port.
func LoadConfig(l *config.Loader, defaultAddr string) Config {
	return Config{
		ListenAddr:      l.String("LISTEN_ADDR", defaultAddr),
		DatabaseURL:     l.Secret("DATABASE_URL", config.Required),
		NATSURL:         l.String("NATS_URL", "nats://127.0.0.1:4222"),
		NATSUser:        l.String("NATS_USER", ""),
		NATSPassword:    l.Secret("NATS_PASSWORD", config.Optional),
		StreamReplicas:  l.Int("STREAM_REPLICAS", 1, 1, 5),
		ShutdownTimeout: l.Duration("SHUTDOWN_TIMEOUT", 30*time.Second),
		TrustedProxies:  l.Prefixes("TRUSTED_PROXIES"),
		ClientIPHeader:  l.String("CLIENT_IP_HEADER", "X-Forwarded-For"),
	}
}

// Base holds a running service's shared dependencies.
type Base struct {
	Name    string
	Log     *slog.Logger
	Pool    *pgxpool.Pool
	NC      *nats.Conn
	JS      jetstream.JetStream
	Metrics *metrics.Factory
	cfg     Config
	checks  map[string]server.Check
}

// Open connects to PostgreSQL (applying the schema's migrations, the outbox
// and inbox tables included) and to NATS, and provisions the stream.
func Open(ctx context.Context, name, schema string, cfg Config, log *slog.Logger, migrations ...database.Migrations) (*Base, error) {
	pool, err := database.Open(ctx, cfg.DatabaseURL.Reveal(), schema)
	if err != nil {
		return nil, err
	}
	sets := append([]database.Migrations{outbox.Migrations, stream.Migrations}, migrations...)
	if err := database.Migrate(ctx, pool, schema, sets...); err != nil {
		pool.Close()
		return nil, err
	}
	natsOpts := []nats.Option{
		// The server's asynchronous errors, above all a permission it
		// refuses: without this handler nats.go drops them, and a refused
		// publish shows only as a publish that never gets its ack.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("nats error", logging.KeyErr, err, logging.KeySubject, sub.Subject)
				return
			}
			log.Error("nats error", logging.KeyErr, err)
		}),
	}
	if cfg.NATSUser != "" {
		natsOpts = append(natsOpts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword.Reveal()))
	}
	nc, js, err := stream.Connect(cfg.NATSURL, name, natsOpts...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	b := &Base{Name: name, Log: log, Pool: pool, NC: nc, JS: js, Metrics: metrics.New(metricName(name)), cfg: cfg}
	b.checks = map[string]server.Check{
		"postgres": func(ctx context.Context) error { return pool.Ping(ctx) },
		"nats": func(ctx context.Context) error {
			if !nc.IsConnected() {
				return errors.New("not connected")
			}
			return nil
		},
	}
	// The stream is provisioned in the background when NATS is not there
	// yet: the service still starts, and its outbox holds events meanwhile.
	if err := b.provision(ctx); err != nil {
		log.Warn("stream not provisioned yet; NATS unreachable?", logging.KeyErr, err)
	}
	return b, nil
}

func (b *Base) provision(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := stream.Provision(ctx, b.JS, stream.Config{Replicas: b.cfg.StreamReplicas})
	return err
}

// Ready adds a readiness check.
func (b *Base) Ready(name string, c server.Check) { b.checks[name] = c }

// Router returns a router with the operational endpoints mounted.
func (b *Base) Router() chi.Router {
	r := chi.NewRouter()
	r.Use(server.SecurityHeaders(b.cfg.HSTS), server.ClientAddr(b.cfg.ClientIPHeader, b.cfg.TrustedProxies), middleware.RequestID, middleware.Recoverer, func(next http.Handler) http.Handler {
		// Handlers log through the request's context.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(logging.WithLogger(r.Context(), b.Log)))
		})
	})
	server.MountOps(r, b.Metrics.Registry, b.checks)
	return r
}

// Listen binds the configured address (":0" in tests).
func (b *Base) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", b.cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", b.cfg.ListenAddr, err)
	}
	return ln, nil
}

// Run serves h on ln and runs the outbox relay and the given workers until
// ctx ends, then stops them all and returns the first error.
func (b *Base) Run(ctx context.Context, ln net.Listener, h http.Handler, workers ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	relay := outbox.NewRelay(b.Pool, b.JS, b.Metrics, b.Log, outbox.RelayOptions{})
	workers = append(workers, relay.Run, func(ctx context.Context) error {
		return server.Serve(ctx, ln, h, b.cfg.ShutdownTimeout)
	})
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w(ctx); err != nil {
				once.Do(func() { first = err })
				cancel() // one part failing stops the service, visibly
			}
		}()
	}
	b.Log.Info("serving", "addr", ln.Addr().String())
	wg.Wait()
	return first
}

// Consume is the worker that runs the consumer cfg with h: each service
// states only its consumer and handler. It begins once NATS is there.
func (b *Base) Consume(cfg stream.ConsumerConfig, h stream.BatchHandler) func(context.Context) error {
	return func(ctx context.Context) error {
		return stream.Consume(ctx, b.JS, b.Pool, b.Metrics, b.Log, cfg, h)
	}
}

// Close releases the connections.
func (b *Base) Close() {
	if b.NC != nil {
		_ = b.NC.Drain()
	}
	if b.Pool != nil {
		b.Pool.Close()
	}
}

// Main runs a service's main function with a context that ends on SIGINT or
// SIGTERM and a JSON logger in it, and exits non-zero when it fails.
//
// "<binary> healthcheck" instead asks the running service's /healthz and
// exits 0 when it answers 200: container images without a shell or curl
// (distroless) use it as their health check.
func Main(name string, run func(ctx context.Context) error) {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		if err := Healthcheck(os.Getenv("LISTEN_ADDR")); err != nil {
			fmt.Fprintf(os.Stderr, "%s healthcheck: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	log := logging.New(os.Stderr, name, os.Getenv("LOG_LEVEL"))
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		if _, err := servePprof(addr, log); err != nil {
			log.Error("profiling stays off", logging.KeyErr, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx = logging.WithLogger(ctx, log)
	err := run(ctx)
	stop()
	if err != nil {
		log.Error("stopped", logging.KeyErr, err)
		os.Exit(1)
	}
	log.Info("stopped cleanly")
}

// servePprof serves Go's profiles on their own listener, never on the
// service's port: they show the process's memory, which holds keys and file
// bytes, so PPROF_ADDR must be a loopback address. Profiling is off unless
// it is set.
func servePprof(addr string, log *slog.Logger) (net.Addr, error) {
	if host, _, err := net.SplitHostPort(addr); err != nil || !(host == "localhost" || net.ParseIP(host).IsLoopback()) {
		return nil, fmt.Errorf("PPROF_ADDR %q: must be a loopback address such as 127.0.0.1:6060", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PPROF_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Warn("profiling endpoint on", "addr", ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { log.Error("profiling endpoint", logging.KeyErr, srv.Serve(ln)) }()
	return ln.Addr(), nil
}

// Healthcheck GETs /healthz of the service listening on addr (LISTEN_ADDR;
// an empty or wildcard host means this machine).
func Healthcheck(addr string) error {
	if addr == "" {
		return errors.New("LISTEN_ADDR is not set: it names the port to check")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz answered %s", resp.Status)
	}
	return nil
}

// metricName turns "ncmec-reporter" into "ncmec_reporter".
func metricName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

// App is what a service's wiring offers its main: bind, serve until the
// context ends, release.
type App interface {
	Listen() (net.Listener, error)
	Run(ctx context.Context, ln net.Listener) error
	Close()
}

// Serve is the run function of a service: it loads the configuration with
// load (reporting every bad variable at once), opens the service with open,
// and serves until ctx ends.
func Serve[C any, A App](load func(*config.Loader) C, open func(context.Context, C, *slog.Logger) (A, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		l := config.FromEnv()
		cfg := load(l)
		if err := l.Err(); err != nil {
			return err
		}
		a, err := open(ctx, cfg, logging.FromContext(ctx))
		if err != nil {
			return err
		}
		defer a.Close()
		ln, err := a.Listen()
		if err != nil {
			return err
		}
		return a.Run(ctx, ln)
	}
}
