// Command sfsim runs the Salesforce simulator (package
// takedown/pkg/salesforce/sfsim) as a process for the local stack, on :8091
// by default. Its URL is both the login URL and the instance URL.
//
// Configuration: flags, each defaulting to an environment variable.
//
//	-addr           SFSIM_ADDR                listen address (default ":8091")
//	-client-id      SFSIM_CLIENT_ID           consumer key (required)
//	-client-secret  SFSIM_CLIENT_SECRET       consumer secret: enables client credentials (or
//	                SFSIM_CLIENT_SECRET_FILE  a file holding it)
//	-jwt-public-key SFSIM_JWT_PUBLIC_KEY_FILE PEM certificate or public key: enables JWT bearer
//	-jwt-username   SFSIM_JWT_USERNAME        the only JWT "sub" accepted (default: any)
//	-schema         SFSIM_SCHEMA_FILE         JSON array of objects (sfsim.ObjectSchema);
//	                                          default: Case + Evidence_File__c (-print-schema)
//	-instance-url   SFSIM_INSTANCE_URL        instance_url to hand out (default: the request's host)
//	-api-limit      SFSIM_API_LIMIT           daily API allocation (default 15000)
//	-admin          SFSIM_ADMIN               enable /_sim/faults and /_sim/state ("true")
//	-print-schema                             print the default schema as JSON and exit
//
// At least one of the client secret and the JWT public key must be set.
package main

import (
	"context"
	"encoding/json"
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
	"takedown/pkg/salesforce/sfsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout, logger, nil); err != nil {
		logger.Error("sfsim", logging.KeyErr, err)
		os.Exit(1)
	}
}

// config is the process configuration; the secret is never logged.
type config struct {
	addr        string
	printSchema bool
	sim         sfsim.Config
}

func loadConfig(args []string, getenv func(string) string) (config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var c config
	var secretFile, keyFile, schemaFile, admin, limit string
	fs := flag.NewFlagSet("sfsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "addr", env("SFSIM_ADDR", ":8091"), "listen address")
	fs.StringVar(&c.sim.ClientID, "client-id", getenv("SFSIM_CLIENT_ID"), "consumer key")
	fs.StringVar(&c.sim.ClientSecret, "client-secret", getenv("SFSIM_CLIENT_SECRET"), "consumer secret")
	fs.StringVar(&secretFile, "client-secret-file", getenv("SFSIM_CLIENT_SECRET_FILE"), "file holding the consumer secret")
	fs.StringVar(&keyFile, "jwt-public-key", getenv("SFSIM_JWT_PUBLIC_KEY_FILE"), "PEM certificate or public key for JWT bearer")
	fs.StringVar(&c.sim.JWTUsername, "jwt-username", getenv("SFSIM_JWT_USERNAME"), "accepted JWT subject")
	fs.StringVar(&schemaFile, "schema", getenv("SFSIM_SCHEMA_FILE"), "schema JSON file")
	fs.StringVar(&c.sim.InstanceURL, "instance-url", getenv("SFSIM_INSTANCE_URL"), "instance_url to hand out")
	fs.StringVar(&limit, "api-limit", env("SFSIM_API_LIMIT", "15000"), "daily API allocation")
	fs.StringVar(&admin, "admin", env("SFSIM_ADMIN", "false"), "enable the /_sim admin endpoints")
	fs.BoolVar(&c.printSchema, "print-schema", false, "print the default schema and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.printSchema {
		return c, nil
	}
	var errs []error
	if c.sim.ClientID == "" {
		errs = append(errs, errors.New("SFSIM_CLIENT_ID (-client-id) is required"))
	}
	if c.sim.ClientSecret == "" && secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("SFSIM_CLIENT_SECRET_FILE: %w", err))
		}
		c.sim.ClientSecret = strings.TrimSpace(string(b))
	}
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err == nil {
			c.sim.JWTPublicKey, err = sfsim.ParsePublicKeyPEM(b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("SFSIM_JWT_PUBLIC_KEY_FILE: %w", err))
		}
	}
	if c.sim.ClientSecret == "" && keyFile == "" {
		errs = append(errs, errors.New("set SFSIM_CLIENT_SECRET (or _FILE) for client credentials, SFSIM_JWT_PUBLIC_KEY_FILE for JWT bearer, or both"))
	}
	if schemaFile != "" {
		b, err := os.ReadFile(schemaFile)
		if err == nil {
			err = json.Unmarshal(b, &c.sim.Objects)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("SFSIM_SCHEMA_FILE: %w", err))
		}
	}
	if len(c.sim.Objects) == 0 {
		c.sim.Objects = sfsim.DefaultSchema()
	}
	var err error
	if c.sim.APILimit, err = strconv.Atoi(limit); err != nil || c.sim.APILimit <= 0 {
		errs = append(errs, fmt.Errorf("SFSIM_API_LIMIT (-api-limit) %q: want a positive number", limit))
	}
	if c.sim.Admin, err = strconv.ParseBool(admin); err != nil {
		errs = append(errs, fmt.Errorf("SFSIM_ADMIN (-admin) %q: want true or false", admin))
	}
	return c, errors.Join(errs...)
}

// realMain serves until ctx ends, then shuts down gracefully. If ready is
// not nil it receives the bound address once the listener is up (tests).
func realMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, logger *slog.Logger, ready chan<- string) error {
	cfg, err := loadConfig(args, getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.printSchema {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sfsim.DefaultSchema())
	}
	sim, err := sfsim.New(cfg.sim)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Request contexts derive from base, so cancelling it at shutdown
	// releases answers held by slow faults instead of waiting them out.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           sim,
		ReadHeaderTimeout: 10 * time.Second,
		// No write timeout: slow faults hold answers on purpose.
		ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return base },
	}
	objects := make([]string, 0, len(cfg.sim.Objects))
	for _, o := range cfg.sim.Objects {
		objects = append(objects, o.Name)
	}
	logger.Info("sfsim listening", "addr", ln.Addr().String(), "client_id", cfg.sim.ClientID,
		"client_credentials", cfg.sim.ClientSecret != "", "jwt_bearer", cfg.sim.JWTPublicKey != nil,
		"objects", objects, "admin", cfg.sim.Admin)
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
	logger.Info("sfsim shutting down")
	cancelBase()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
