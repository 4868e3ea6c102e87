// Command devstack runs the whole takedown system on one machine for
// `make run` (DESIGN.md §6): PostgreSQL (DATABASE_URL, or a cluster of its
// own under var/pg), an embedded NATS JetStream server, versitygw as the S3
// server, the two simulators and the five services, each a process of its
// own with its output prefixed by its name. Ctrl-C stops all of it.
//
// NATS runs deploy/nats/nats.conf itself: each service signs in as its own
// user, with the permissions it has in production. In PostgreSQL too each
// service has a login of its own that owns its schema and reads no other.
//
// Secrets of the local stack (the development token, the master key, the
// S3 keys, the NATS passwords) are made once and kept under var/, so a restart keeps its data
// readable.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"

	"takedown/pkg/localstack"
)

func main() {
	root := flag.String("root", ".", "repository root: binaries in bin/, data in var/")
	natsPort := flag.Int("nats-port", 4223, "port of the embedded NATS server (4222 is often taken by a system NATS)")
	s3Port := flag.Int("s3-port", 9000, "port of versitygw")
	pgPort := flag.Int("pg-port", 5433, "port of the local PostgreSQL cluster when DATABASE_URL is unset")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *root, *natsPort, *s3Port, *pgPort); err != nil {
		log.Fatalf("devstack: %v", err)
	}
}

func run(ctx context.Context, root string, natsPort, s3Port, pgPort int) error {
	root, _ = filepath.Abs(root)
	bin, data := filepath.Join(root, "bin"), filepath.Join(root, "var")
	// 0755: as root, the PostgreSQL cluster under var/pg runs as the postgres user, who must reach it.
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	secret := func(name string, mk func() string) string {
		p := filepath.Join(data, name)
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b))
		}
		v := mk()
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			log.Fatalf("devstack: %v", err)
		}
		return v
	}
	token := secret("dev-token", func() string { return randomHex(16) })
	// A second person (subject dev-2, every role): the legal gate refuses
	// the submitter's own approval (LEGAL_APPROVAL=required, the default).
	token2 := secret("dev-token-2", func() string { return randomHex(16) })
	masterKey := secret("master-key", func() string { return base64.StdEncoding.EncodeToString(randomBytes(32)) })
	ncmecUser, ncmecPass := "devstack", secret("ncmec-password", func() string { return randomHex(12) })
	sfClient, sfSecret := "devstack", secret("salesforce-secret", func() string { return randomHex(16) })
	s3Access, s3Secret := secret("s3-access-key", func() string { return "dev" + randomHex(6) }), secret("s3-secret-key", func() string { return randomHex(20) })

	// PostgreSQL.
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		log.Printf("devstack: starting PostgreSQL under var/pg on port %d", pgPort)
		pg, err := localstack.StartPostgres(filepath.Join(data, "pg"), pgPort)
		if err != nil {
			return err
		}
		defer pg.Stop()
		if err := ensureDatabase(ctx, pg.URL("postgres"), "takedown"); err != nil {
			return err
		}
		dbURL = pg.URL("takedown")
	}
	// Each service on a login of its own that owns its schema and reads no
	// other (takedown_intake, ...), as in production, so that a privilege a
	// service lacks fails here too. DATABASE_URL's user makes them.
	var names []string
	for _, s := range services {
		names = append(names, s.name)
	}
	logins, err := localstack.ServiceLogins(ctx, dbURL, names...)
	if err != nil {
		return fmt.Errorf("postgresql: %w", err)
	}

	// NATS JetStream, in this process, with the shipped configuration
	// (deploy/nats/nats.conf: every write synced, one user per service
	// with the least it needs), so that a service's missing permission
	// shows here as it would in production. Each service's password, and
	// the local admin's for inspecting the stream, are kept under var/.
	natsPasswords := map[string]string{}
	for _, s := range services {
		natsPasswords[s.name] = secret("nats-password-"+s.name, func() string { return randomHex(16) })
	}
	natsOpts, err := localstack.NATSOptions(filepath.Join(root, "deploy", "nats", "nats.conf"), localstack.NATSLocal{
		Port: natsPort, StoreDir: filepath.Join(data, "nats"), ServerName: "devstack", Passwords: natsPasswords,
		AdminPassword: secret("nats-admin-password", func() string { return randomHex(16) }),
	})
	if err != nil {
		return err
	}
	natsOpts.NoSigs = true
	ns, err := server.NewServer(natsOpts)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	ns.ConfigureLogger() // a refused permission is logged as "Publish Violation"
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats did not start")
	}
	defer ns.Shutdown()
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)

	procs := &group{}
	defer procs.stop()

	// S3.
	s3Dir := filepath.Join(data, "s3")
	for _, d := range []string{"data", "versions"} {
		if err := os.MkdirAll(filepath.Join(s3Dir, d), 0o700); err != nil {
			return err
		}
	}
	s3Addr := fmt.Sprintf("127.0.0.1:%d", s3Port)
	if err := procs.start(ctx, "s3", filepath.Join(bin, "versitygw"), []string{"ROOT_ACCESS_KEY_ID=" + s3Access, "ROOT_SECRET_ACCESS_KEY=" + s3Secret},
		"--port", s3Addr, "--region", "us-east-1", "posix", "--versioning-dir", filepath.Join(s3Dir, "versions"), filepath.Join(s3Dir, "data")); err != nil {
		return err
	}
	if err := waitHTTP(ctx, "http://"+s3Addr+"/", 15*time.Second); err != nil {
		return fmt.Errorf("s3: %w", err)
	}

	// Simulators, with their fault injection on so a failure can be shown.
	// The NCMEC simulator validates what it receives against the real XSD
	// when ../shared holds it.
	ncmecEnv := []string{"NCMECSIM_ADDR=127.0.0.1:8090", "NCMECSIM_USERNAME=" + ncmecUser, "NCMECSIM_PASSWORD=" + ncmecPass, "NCMECSIM_ADMIN=true"}
	if xsd := filepath.Join(root, "..", "shared", "ncmec", "cyber_tipline.xsd"); fileExists(xsd) {
		if _, err := exec.LookPath("xmllint"); err == nil {
			ncmecEnv = append(ncmecEnv, "NCMECSIM_XSD="+xsd)
		}
	}
	if err := procs.start(ctx, "ncmecsim", filepath.Join(bin, "ncmecsim"), ncmecEnv); err != nil {
		return err
	}
	if err := procs.start(ctx, "sfsim", filepath.Join(bin, "sfsim"), []string{"SFSIM_ADDR=127.0.0.1:8091",
		"SFSIM_CLIENT_ID=" + sfClient, "SFSIM_CLIENT_SECRET=" + sfSecret, "SFSIM_ADMIN=true"}); err != nil {
		return err
	}

	common := []string{
		"NATS_URL=" + natsURL, "TAKEDOWN_DEV_TOKEN=" + token, "TAKEDOWN_DEV_TOKEN_2=" + token2,
		"S3_ENDPOINT=" + s3Addr, "S3_ACCESS_KEY=" + s3Access, "S3_SECRET_KEY=" + s3Secret, "S3_TLS=false",
		"S3_BUCKET=evidence", "S3_CREATE_BUCKET=true",
		"MASTER_KEYS=dev1:" + masterKey, "MASTER_KEY_ID=dev1",
		"NCMEC_URL=http://127.0.0.1:8090/ispws", "NCMEC_USERNAME=" + ncmecUser, "NCMEC_PASSWORD=" + ncmecPass,
		"NCMEC_TEST_URL=http://127.0.0.1:8090/ispws", "NCMEC_TEST_USERNAME=" + ncmecUser, "NCMEC_TEST_PASSWORD=" + ncmecPass,
		"NCMEC_REPORTER_FIRST_NAME=Trust", "NCMEC_REPORTER_LAST_NAME=Safety", "NCMEC_REPORTER_EMAIL=trust-safety@example.com",
		"SALESFORCE_URL=http://127.0.0.1:8091", "SALESFORCE_CLIENT_ID=" + sfClient, "SALESFORCE_CLIENT_SECRET=" + sfSecret,
		// The simulators and the services listen on loopback without TLS.
		"DEV_ALLOW_HTTP=true",
	}
	for _, s := range services {
		env := append(common, "LISTEN_ADDR=127.0.0.1"+s.addr, "NATS_USER="+s.name, "NATS_PASSWORD="+natsPasswords[s.name])
		env = append(env, logins[s.name].Env()...)
		if s.name == "intake" {
			// The development sign-in: the browser form has no identity
			// provider on one machine.
			env = append(env, "DEV_SIGN_IN=true", "PUBLIC_URL=http://127.0.0.1:8080", "RETRACTION_URL=http://127.0.0.1:8081")
		}
		if err := procs.start(ctx, s.name, filepath.Join(bin, s.name), env); err != nil {
			return err
		}
	}
	if err := waitHTTP(ctx, "http://127.0.0.1:8080/readyz", 30*time.Second); err != nil {
		return fmt.Errorf("intake: %w", err)
	}
	fmt.Printf(`
takedown is running.
  intake (form and API):  http://127.0.0.1:8080/
  development token:      %s
      curl -H "Authorization: Bearer %s" http://127.0.0.1:8080/api/v1/reports
  second person's token:  %s (var/dev-token-2): a report waits for legal's
      approval by someone other than its submitter; approve it as this one:
      curl -H "Authorization: Bearer $(cat var/dev-token-2)" -d '{"approve": true, "reason": "…"}' \
        http://127.0.0.1:8080/api/v1/reports/<id>/legal-decision
  retraction:             http://127.0.0.1:8081/    audit log: http://127.0.0.1:8082/
  NCMEC simulator:        http://127.0.0.1:8090/_sim/state    Salesforce simulator: http://127.0.0.1:8091/_sim/state
  NATS:                   %s (user %s, password in var/nats-admin-password)
  data:                   %s
Press Ctrl-C to stop.
`, token, token, token2, natsURL, localstack.NATSAdmin, data)
	select {
	case <-ctx.Done():
	case name := <-procs.exited:
		return fmt.Errorf("%s exited; stopping the stack", name)
	}
	fmt.Println("\nstopping…")
	return nil
}

// services are the five services and their addresses; each signs in to
// NATS as the user of its name in deploy/nats/nats.conf.
var services = []struct{ name, addr string }{
	{"intake", ":8080"}, {"retraction", ":8081"}, {"audit-logger", ":8082"}, {"ncmec-reporter", ":8083"}, {"case-writer", ":8084"},
}

// group runs child processes and stops them together.
type group struct {
	stopping atomic.Bool
	mu       sync.Mutex
	cmds     []*exec.Cmd
	done     []chan struct{}
	exited   chan string
}

func (g *group) start(ctx context.Context, name, path string, env []string, args ...string) error {
	if g.exited == nil {
		g.exited = make(chan string, 16)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w (run make build first)", name, err)
	}
	done := make(chan struct{})
	go prefix(name, out)
	go func() {
		err := cmd.Wait()
		close(done)
		if !g.stopping.Load() && ctx.Err() == nil {
			log.Printf("devstack: %s exited: %v", name, err)
			g.exited <- name
		}
	}()
	g.mu.Lock()
	g.cmds, g.done = append(g.cmds, cmd), append(g.done, done)
	g.mu.Unlock()
	return nil
}

// stop sends SIGTERM to every process, newest first, and waits for each.
func (g *group) stop() {
	g.stopping.Store(true)
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := len(g.cmds) - 1; i >= 0; i-- {
		_ = g.cmds[i].Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done[i]:
		case <-time.After(35 * time.Second):
			_ = g.cmds[i].Process.Kill()
			<-g.done[i]
		}
	}
}

func prefix(name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Printf("%-15s %s\n", name, sc.Text())
	}
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering after %v: %v", url, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ensureDatabase(ctx context.Context, adminURL, name string) error {
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil || exists {
		return err
	}
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
