// Command ncmecsim runs the CyberTipline simulator (package
// takedown/pkg/ncmec/ncmecsim) as a process for the local stack, on
// :8090 under /ispws by default.
//
// Configuration: flags, each defaulting to an environment variable.
//
//	-addr       NCMECSIM_ADDR           listen address (default ":8090")
//	-username   NCMECSIM_USERNAME       Basic auth user (required)
//	-password   NCMECSIM_PASSWORD       Basic auth password (required; or
//	            NCMECSIM_PASSWORD_FILE  a file holding it)
//	-xsd        NCMECSIM_XSD            schema to validate /submit and /fileinfo with (needs xmllint)
//	-admin      NCMECSIM_ADMIN          enable /_sim/faults, /_sim/state, /_sim/latency ("true")
//	-record-dir NCMECSIM_RECORD_DIR     write every request body there
//	-latency    NCMECSIM_LATENCY        delay every API call (e.g. "50ms")
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"takedown/pkg/logging"
	"takedown/pkg/ncmec/ncmecsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := realMain(ctx, os.Args[1:], os.Getenv, logger, nil); err != nil {
		logger.Error("ncmecsim", logging.KeyErr, err)
		os.Exit(1)
	}
}

// config is the process configuration; the password is never logged.
type config struct {
	addr      string
	username  string
	password  string
	xsd       string
	admin     bool
	recordDir string
	latency   time.Duration
}

func loadConfig(args []string, getenv func(string) string) (config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var c config
	var admin, latency, passwordFile string
	fs := flag.NewFlagSet("ncmecsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "addr", env("NCMECSIM_ADDR", ":8090"), "listen address")
	fs.StringVar(&c.username, "username", getenv("NCMECSIM_USERNAME"), "Basic auth user")
	fs.StringVar(&c.password, "password", getenv("NCMECSIM_PASSWORD"), "Basic auth password")
	fs.StringVar(&passwordFile, "password-file", getenv("NCMECSIM_PASSWORD_FILE"), "file holding the password")
	fs.StringVar(&c.xsd, "xsd", getenv("NCMECSIM_XSD"), "XSD to validate documents with")
	fs.StringVar(&admin, "admin", env("NCMECSIM_ADMIN", "false"), "enable the /_sim admin endpoints")
	fs.StringVar(&c.recordDir, "record-dir", getenv("NCMECSIM_RECORD_DIR"), "directory to record request bodies into")
	fs.StringVar(&latency, "latency", env("NCMECSIM_LATENCY", "0"), "delay for every API call")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	if c.username == "" {
		errs = append(errs, errors.New("NCMECSIM_USERNAME (-username) is required"))
	}
	if c.password == "" && passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("NCMECSIM_PASSWORD_FILE: %w", err))
		}
		c.password = strings.TrimSpace(string(b))
	}
	if c.password == "" {
		errs = append(errs, errors.New("NCMECSIM_PASSWORD (-password) or NCMECSIM_PASSWORD_FILE is required"))
	}
	var err error
	if c.admin, err = strconv.ParseBool(admin); err != nil {
		errs = append(errs, fmt.Errorf("NCMECSIM_ADMIN (-admin) %q: want true or false", admin))
	}
	if c.latency, err = parseLatency(latency); err != nil {
		errs = append(errs, fmt.Errorf("NCMECSIM_LATENCY (-latency) %q: want a duration such as 50ms", latency))
	}
	return c, errors.Join(errs...)
}

func parseLatency(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	return d, err
}

// realMain serves until ctx ends, then shuts down gracefully. If ready is
// not nil it receives the bound address once the listener is up (tests).
func realMain(ctx context.Context, args []string, getenv func(string) string, logger *slog.Logger, ready chan<- string) error {
	cfg, err := loadConfig(args, getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	sim, err := ncmecsim.New(ncmecsim.Options{
		Username:  cfg.username,
		Password:  cfg.password,
		XSDPath:   cfg.xsd,
		Admin:     cfg.admin,
		RecordDir: cfg.recordDir,
		Latency:   cfg.latency,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           sim,
		ReadHeaderTimeout: 10 * time.Second,
		// No read or write timeout: uploads are unbounded in size and slow
		// faults hold answers on purpose.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("ncmecsim listening", "addr", ln.Addr().String(), "base_path", ncmecsim.BasePath,
		"admin", cfg.admin, "xsd", cfg.xsd, "record_dir", cfg.recordDir, "latency", cfg.latency.String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("ncmecsim shutting down")
	sim.Close() // release slow answers so in-flight requests can finish
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
