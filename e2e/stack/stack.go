// Package stack runs the whole takedown system for end-to-end tests, as
// production runs it: the five services as separate OS processes built
// from this workspace, a NATS server process on its own store directory,
// versitygw, PostgreSQL, and the NCMEC and Salesforce simulators inside the
// test process so that faults are injected from Go. Any service, NATS and
// S3 can be killed and started again while the test runs.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"takedown/pkg/localstack"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/salesforce/sfsim"
	"takedown/pkg/testenv"
)

// Options tune a stack.
type Options struct {
	// NCMECLatency delays every NCMEC call (benchmarks); SetLatency changes it later.
	NCMECLatency time.Duration
	// ValidateXSD makes the NCMEC simulator validate every document against
	// the real schema (../shared), which costs an xmllint process per call.
	ValidateXSD bool
	// Env is added to (and overrides) every service's environment; ServiceEnv
	// to one service's.
	Env        []string
	ServiceEnv map[string][]string
}

// Stack is a running system.
type Stack struct {
	tb     testing.TB
	Token  string // development token of every service's API
	DBURL  string
	logDir string

	NCMEC    *ncmecsim.Server
	NCMECURL string
	SF       *sfsim.Server
	S3       *testenv.S3Server

	nats     *proc
	natsURL  string
	services map[string]*proc
	addrs    map[string]string // service name → host:port
	client   *http.Client
}

// Start starts everything and waits until every service is ready. All of it
// is stopped when the test ends; the processes' logs are kept (and their
// path logged) when the test failed.
func Start(tb testing.TB, opts Options) *Stack {
	tb.Helper()
	bin, natsBin, err := binaries()
	if err != nil {
		tb.Fatalf("stack: %v", err)
	}
	logDir, err := os.MkdirTemp("", "takedown-e2e-logs-")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Stack{
		tb: tb, Token: randomHex(16), logDir: logDir,
		services: map[string]*proc{}, addrs: map[string]string{},
		client: &http.Client{Timeout: 2 * time.Minute},
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("stack: process logs kept in %s", logDir)
			s.logTails(40)
			return
		}
		os.RemoveAll(logDir)
	})

	s.DBURL = testenv.Postgres(tb)
	s.S3 = testenv.StartS3Server(tb)
	bucket := s.S3.Bucket(tb)

	// The simulators live in this process: faults and state are Go calls.
	simOpts := ncmecsim.Options{Latency: opts.NCMECLatency}
	if opts.ValidateXSD {
		if xsd := sharedXSD(); xsd != "" {
			simOpts.XSDPath = xsd
		}
	}
	s.NCMEC, s.NCMECURL = ncmecsim.StartTest(tb, simOpts)
	s.SF = sfsim.Start(tb, sfsim.Config{ClientID: "e2e", ClientSecret: "e2e-secret"})

	natsPort, err := localstack.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	s.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	conf := filepath.Join(tb.TempDir(), "nats.conf")
	// Every write synced, as RELIABILITY.md asks of a single node: a
	// restart test must not pass only because nothing was lost in a buffer.
	store := tb.TempDir()
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listen: 127.0.0.1:%d\nserver_name: e2e\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", natsPort, store), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.nats = &proc{name: "nats", bin: filepath.Join(natsBin, "nats-server"), args: []string{"-c", conf}, logPath: filepath.Join(logDir, "nats.log")}
	tb.Cleanup(s.nats.stop)
	s.StartNATS()

	masterKey := base64.StdEncoding.EncodeToString(randomBytes(32))
	common := []string{
		"DATABASE_URL=" + s.DBURL, "NATS_URL=" + s.natsURL, "TAKEDOWN_DEV_TOKEN=" + s.Token,
		"LOG_LEVEL=info", "SHUTDOWN_TIMEOUT=10s",
		"S3_ENDPOINT=" + s.S3.Endpoint(), "S3_ACCESS_KEY=" + bucket.AccessKey, "S3_SECRET_KEY=" + bucket.SecretKey,
		"S3_TLS=false", "S3_BUCKET=" + bucket.Bucket, "S3_REGION=" + testenv.S3Region,
		"MASTER_KEYS=e2e:" + masterKey, "MASTER_KEY_ID=e2e",
		"NCMEC_URL=" + s.NCMECURL, "NCMEC_USERNAME=" + ncmecsim.TestUsername, "NCMEC_PASSWORD=" + ncmecsim.TestPassword,
		"NCMEC_TEST_URL=" + s.NCMECURL, "NCMEC_TEST_USERNAME=" + ncmecsim.TestUsername, "NCMEC_TEST_PASSWORD=" + ncmecsim.TestPassword,
		"NCMEC_REPORTER_FIRST_NAME=Trust", "NCMEC_REPORTER_LAST_NAME=Safety", "NCMEC_REPORTER_EMAIL=trust-safety@example.com",
		"SALESFORCE_URL=" + s.SF.URL(), "SALESFORCE_CLIENT_ID=e2e", "SALESFORCE_CLIENT_SECRET=e2e-secret",
		// Short retry delays, so that a test waits seconds, not minutes, for
		// a report to get past a transient fault.
		"RETRY_MIN_DELAY=100ms", "RETRY_MAX_DELAY=2s", "FILING_POLL_INTERVAL=200ms", "FILING_LEASE=20s",
		"NCMEC_CALL_TIMEOUT=15s",
		"RETRACTION_POLL_INTERVAL=200ms", "RETRACTION_LEASE=20s",
		// Leases as short as the calls they cover allow: a service killed
		// holding one leaves its work idle until the lease ends (the case
		// writer's default, 10 min, outlasts the chaos suite's settle wait).
		"CASE_SYNC_LEASE=20s", "CASE_SYNC_POLL_INTERVAL=500ms", "CASE_RETRY_BACKOFF=200ms", "CASE_RETRY_MAX_BACKOFF=3s",
		"SALESFORCE_RETRY_BACKOFF=50ms", "SALESFORCE_RETRY_MAX_BACKOFF=1s", "SALESFORCE_TIMEOUT=15s",
	}
	common = append(common, opts.Env...)
	for _, name := range Services {
		port, err := localstack.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		s.addrs[name] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	for _, name := range Services {
		addr := s.addrs[name]
		env := append(append([]string{}, common...), "LISTEN_ADDR="+addr)
		if name == "intake" {
			// Where its pages send a browser: itself (the OIDC callback)
			// and the retraction service.
			env = append(env, "PUBLIC_URL="+s.URL("intake"), "RETRACTION_URL="+s.URL("retraction"))
		}
		env = append(env, opts.ServiceEnv[name]...)
		p := &proc{name: name, bin: filepath.Join(bin, name), env: env, logPath: filepath.Join(logDir, name+".log")}
		s.services[name] = p
		tb.Cleanup(p.stop)
	}
	// Started one after the other: each migrates its schema and may create
	// the stream; the first start is also when intake creates the bucket.
	for _, name := range Services {
		s.StartService(name)
	}
	return s
}

// URL is a service's base URL.
func (s *Stack) URL(service string) string { return "http://" + s.addrs[service] }

// StartService starts a service (again) and waits until its /readyz answers 200.
func (s *Stack) StartService(name string) {
	s.tb.Helper()
	p := s.services[name]
	if err := p.start(); err != nil {
		s.tb.Fatalf("stack: %v", err)
	}
	s.waitReady(name, 2*time.Minute)
}

// KillService is kill -9 of a service.
func (s *Stack) KillService(name string) { s.services[name].kill() }

// StopService stops a service gracefully (SIGTERM).
func (s *Stack) StopService(name string) { s.services[name].stop() }

// RestartService kills a service with SIGKILL and starts it again.
func (s *Stack) RestartService(name string) {
	s.tb.Helper()
	s.KillService(name)
	s.StartService(name)
}

// StartNATS starts the NATS server (again) on its store and waits for it.
func (s *Stack) StartNATS() {
	s.tb.Helper()
	if err := s.nats.start(); err != nil {
		s.tb.Fatalf("stack: %v", err)
	}
	addr := strings.TrimPrefix(s.natsURL, "nats://")
	testenv.Eventually(s.tb, 30*time.Second, "nats-server answers on "+addr, func() bool {
		resp, err := s.client.Get("http://" + addr) // the client port refuses HTTP, but only once it listens
		if err == nil {
			resp.Body.Close()
		}
		return err == nil || !strings.Contains(err.Error(), "connection refused")
	})
}

// KillNATS is kill -9 of the NATS server; StopNATS a graceful stop.
func (s *Stack) KillNATS() { s.nats.kill() }
func (s *Stack) StopNATS() { s.nats.stop() }

// StopS3 and StartS3 stop and restart versitygw on the same data.
func (s *Stack) StopS3()  { s.S3.Stop(s.tb) }
func (s *Stack) StartS3() { s.S3.Start(s.tb) }

// Crashes counts the exits of each process nobody asked for.
func (s *Stack) Crashes() map[string]int {
	out := map[string]int{"nats": s.nats.crashCount()}
	for name, p := range s.services {
		out[name] = p.crashCount()
	}
	return out
}

// EnsureRunning starts every process that is not running (one that crashed).
func (s *Stack) EnsureRunning() {
	s.tb.Helper()
	if !s.nats.isRunning() {
		s.StartNATS()
	}
	for _, name := range Services {
		if !s.services[name].isRunning() {
			s.StartService(name)
		}
	}
}

func (s *Stack) waitReady(name string, timeout time.Duration) {
	s.tb.Helper()
	url := s.URL(name) + "/readyz"
	testenv.Eventually(s.tb, timeout, name+" ready at "+url, func() bool {
		if !s.services[name].isRunning() {
			s.tb.Fatalf("stack: %s exited while starting; see %s", name, s.services[name].logPath)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := s.client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// logTails logs the last lines of every process's log, for a failed test.
func (s *Stack) logTails(n int) {
	names := append([]string{"nats"}, Services...)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(s.logDir, name+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		s.tb.Logf("--- last %d lines of %s:\n%s", len(lines), name, strings.Join(lines, "\n"))
	}
}

func sharedXSD() string {
	for _, dir := range []string{os.Getenv("TAKEDOWN_SHARED"), "../../shared", "../../../shared"} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, "ncmec", "cyber_tipline.xsd")
		if _, err := os.Stat(p); err == nil {
			abs, _ := filepath.Abs(p)
			return abs
		}
	}
	return ""
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// LogLines returns the last n lines of every process's log that mention
// substr (a report id), prefixed by the process name: what each service did
// with one report, for a report that did not settle.
func (s *Stack) LogLines(substr string, n int) []string {
	var out []string
	for _, name := range Services {
		b, err := os.ReadFile(filepath.Join(s.logDir, name+".log"))
		if err != nil {
			continue
		}
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, substr) {
				lines = append(lines, name+": "+l)
			}
		}
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		out = append(out, lines...)
	}
	return out
}

// LogTails logs the last n lines of every process's log.
func (s *Stack) LogTails(n int) { s.logTails(n) }
