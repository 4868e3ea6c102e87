// Package stack runs the whole takedown system for end-to-end tests, as
// production runs it: the five services as separate OS processes built
// from this workspace (one or more replicas each), a NATS server process on
// its own store directory (or a cluster of them), versitygw, PostgreSQL, and
// the NCMEC and Salesforce simulators inside the test process so that
// faults are injected from Go. Any service replica, any NATS node and S3 can
// be killed and started again while the test runs.
//
// A replica is addressed by its instance name: the service's name for
// replica 1 (so that a test written for one replica of each keeps working)
// and "<service>-<k>" for replica k, e.g. "ncmec-reporter-2"; each has its
// own LISTEN_ADDR and log file <instance>.log.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
	// Replicas runs that many processes of a service (default 1), sharing
	// the service's durable consumers, schema and leases, as replicas on
	// several hosts would. ServiceEnv applies to each.
	Replicas map[string]int
	// NATSNodes is the number of NATS servers (default 1). Above 1 they form
	// a cluster on loopback, every service gets all of their URLs and
	// STREAM_REPLICAS=min(3, NATSNodes).
	NATSNodes int
}

// Stack is a running system.
type Stack struct {
	tb    testing.TB
	Token string // development token of every service's API
	// Token2 is the second development token: another person, who may take
	// legal's decision on a report Token submitted.
	Token2 string
	DBURL  string // the database as its administrator
	// Logins are the services' own PostgreSQL logins, by service.
	Logins map[string]localstack.ServiceLogin
	logDir string

	NCMEC    *ncmecsim.Server
	NCMECURL string
	SF       *sfsim.Server
	S3       *testenv.S3Server

	nats []*natsNode
	// NATS passwords of this run: each service's user (the service's
	// name, as in deploy/nats/nats.conf) and the local admin's.
	natsPasswords     map[string]string
	natsAdminPassword string
	services          map[string]*proc    // instance name → process
	instances         map[string][]string // service → its instance names, replica 1 first
	addrs             map[string]string   // instance name → host:port
	client            *http.Client
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
		tb: tb, Token: randomHex(16), Token2: randomHex(16), logDir: logDir,
		services: map[string]*proc{}, instances: map[string][]string{}, addrs: map[string]string{},
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
	// Each service on a PostgreSQL login of its own, as in production: a
	// statement it lacks the privilege for fails here too.
	s.Logins = testenv.ServiceLogins(tb, s.DBURL, Services...)
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

	s.natsPasswords, s.natsAdminPassword = map[string]string{}, randomHex(16)
	for _, service := range Services {
		s.natsPasswords[service] = randomHex(16)
	}
	s.startNATSCluster(tb, natsBin, max(1, opts.NATSNodes))

	masterKey := base64.StdEncoding.EncodeToString(randomBytes(32))
	common := []string{
		// Every node's URL: the client tries them in turn when one is away
		// (nats.Connect takes a comma-separated list).
		"NATS_URL=" + strings.Join(s.NATSURLs(), ","), "TAKEDOWN_DEV_TOKEN=" + s.Token,
		"TAKEDOWN_DEV_TOKEN_2=" + s.Token2, "LOG_LEVEL=info", "SHUTDOWN_TIMEOUT=10s",
		"S3_ENDPOINT=" + s.S3.Endpoint(), "S3_ACCESS_KEY=" + bucket.AccessKey, "S3_SECRET_KEY=" + bucket.SecretKey,
		"S3_TLS=false", "S3_BUCKET=" + bucket.Bucket, "S3_REGION=" + testenv.S3Region,
		"MASTER_KEYS=e2e:" + masterKey, "MASTER_KEY_ID=e2e",
		"NCMEC_URL=" + s.NCMECURL, "NCMEC_USERNAME=" + ncmecsim.TestUsername, "NCMEC_PASSWORD=" + ncmecsim.TestPassword,
		"NCMEC_TEST_URL=" + s.NCMECURL, "NCMEC_TEST_USERNAME=" + ncmecsim.TestUsername, "NCMEC_TEST_PASSWORD=" + ncmecsim.TestPassword,
		"NCMEC_REPORTER_FIRST_NAME=Trust", "NCMEC_REPORTER_LAST_NAME=Safety", "NCMEC_REPORTER_EMAIL=trust-safety@example.com",
		"SALESFORCE_URL=" + s.SF.URL(), "SALESFORCE_CLIENT_ID=e2e", "SALESFORCE_CLIENT_SECRET=e2e-secret",
		// The simulators, the test identity provider and the services
		// listen on loopback without TLS.
		"DEV_ALLOW_HTTP=true",
		// Short retry delays, so that a test waits seconds, not minutes, for
		// a report to get past a transient fault.
		"RETRY_MIN_DELAY=100ms", "RETRY_MAX_DELAY=2s", "FILING_POLL_INTERVAL=200ms",
		"NCMEC_CALL_TIMEOUT=15s",
		"RETRACTION_POLL_INTERVAL=200ms", "RETRACTION_LEASE=20s",
		// Leases as short as the calls they cover allow: a service killed
		// holding one leaves its work idle until the lease ends (the case
		// writer's default, 10 min, outlasts the chaos suite's settle wait).
		"CASE_SYNC_LEASE=20s", "CASE_SYNC_POLL_INTERVAL=500ms", "CASE_RETRY_BACKOFF=200ms", "CASE_RETRY_MAX_BACKOFF=3s",
		"SALESFORCE_RETRY_BACKOFF=50ms", "SALESFORCE_RETRY_MAX_BACKOFF=1s", "SALESFORCE_TIMEOUT=15s",
	}
	if len(s.nats) > 1 {
		common = append(common, fmt.Sprintf("STREAM_REPLICAS=%d", min(3, len(s.nats))))
	}
	common = append(common, opts.Env...)
	for _, service := range Services {
		for k := 1; k <= max(1, opts.Replicas[service]); k++ {
			name := Instance(service, k)
			port, err := localstack.FreePort()
			if err != nil {
				tb.Fatal(err)
			}
			s.addrs[name] = fmt.Sprintf("127.0.0.1:%d", port)
			s.instances[service] = append(s.instances[service], name)
		}
	}
	for _, service := range Services {
		for _, name := range s.instances[service] {
			// INSTANCE_ID: a restarted instance is the same one, as a
			// restarted container keeps its host name.
			env := append(append([]string{}, common...), "LISTEN_ADDR="+s.addrs[name],
				"NATS_USER="+service, "NATS_PASSWORD="+s.natsPasswords[service], "INSTANCE_ID="+name)
			env = append(env, s.Logins[service].Env()...)
			if service == "intake" {
				// Where its pages send a browser: itself (the OIDC callback)
				// and the retraction service.
				env = append(env, "PUBLIC_URL="+s.URL(name), "RETRACTION_URL="+s.URL("retraction"))
				// The load and most tests submit with legal's decision
				// recorded, as a team without an in-tool legal step does;
				// the legal gate's test sets LEGAL_APPROVAL=required
				// (ServiceEnv comes later and wins).
				env = append(env, "LEGAL_APPROVAL=recorded")
			}
			env = append(env, opts.ServiceEnv[service]...)
			p := &proc{name: name, bin: filepath.Join(bin, service), env: env, logPath: filepath.Join(logDir, name+".log")}
			s.services[name] = p
			tb.Cleanup(p.stop)
		}
	}
	// Started one after the other: each migrates its schema and may create
	// the stream; the first start is also when intake creates the bucket.
	for _, service := range Services {
		for _, name := range s.instances[service] {
			s.StartService(name)
		}
	}
	return s
}

// Instance is the instance name of a service's replica k (from 1): the
// service's name for replica 1, "<service>-<k>" for the others.
func Instance(service string, k int) string {
	if k <= 1 {
		return service
	}
	return fmt.Sprintf("%s-%d", service, k)
}

// Instances are the instance names of a service's replicas, replica 1 first.
func (s *Stack) Instances(service string) []string {
	return append([]string(nil), s.instances[service]...)
}

// instanceNames are every instance, in start order.
func (s *Stack) instanceNames() []string {
	var out []string
	for _, service := range Services {
		out = append(out, s.instances[service]...)
	}
	return out
}

// URL is an instance's base URL; a service's name is its replica 1.
func (s *Stack) URL(instance string) string { return "http://" + s.addrs[instance] }

// StartService starts an instance (a service's name: its replica 1) again
// and waits until its /readyz answers 200.
func (s *Stack) StartService(name string) {
	s.tb.Helper()
	p := s.services[name]
	if err := p.start(); err != nil {
		s.tb.Fatalf("stack: %v", err)
	}
	s.waitReady(name, 2*time.Minute)
}

// KillService is kill -9 of an instance (a service's name: its replica 1).
func (s *Stack) KillService(name string) { s.services[name].kill() }

// StopService stops an instance gracefully (SIGTERM).
func (s *Stack) StopService(name string) { s.services[name].stop() }

// RestartService kills an instance with SIGKILL and starts it again.
func (s *Stack) RestartService(name string) {
	s.tb.Helper()
	s.KillService(name)
	s.StartService(name)
}

// StopS3 and StartS3 stop and restart versitygw on the same data.
func (s *Stack) StopS3()  { s.S3.Stop(s.tb) }
func (s *Stack) StartS3() { s.S3.Start(s.tb) }

// Crashes counts the exits of each process nobody asked for, by instance
// and NATS node name.
func (s *Stack) Crashes() map[string]int {
	out := map[string]int{}
	for _, n := range s.nats {
		out[n.proc.name] = n.proc.crashCount()
	}
	for name, p := range s.services {
		out[name] = p.crashCount()
	}
	return out
}

// EnsureRunning starts every process that is not running (one that crashed
// or was killed): NATS nodes first, then every instance.
func (s *Stack) EnsureRunning() {
	s.tb.Helper()
	var down []int
	for i, n := range s.nats {
		if !n.proc.isRunning() {
			down = append(down, i+1)
		}
	}
	s.startNATSNodes(down...)
	for _, name := range s.instanceNames() {
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
	var names []string
	for _, node := range s.nats {
		names = append(names, node.proc.name)
	}
	for _, name := range append(names, s.instanceNames()...) {
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

// LogLines returns the last n lines of every instance's log that mention
// substr (a report id), prefixed by the instance name: what each service did
// with one report, for a report that did not settle.
func (s *Stack) LogLines(substr string, n int) []string {
	var out []string
	for _, name := range s.instanceNames() {
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

// InstanceLog returns the lines of an instance's log, over all its starts,
// that contain every one of substrs: what one replica did.
func (s *Stack) InstanceLog(instance string, substrs ...string) []string {
	b, err := os.ReadFile(filepath.Join(s.logDir, instance+".log"))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if all(substrs, func(sub string) bool { return strings.Contains(l, sub) }) && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// LogCount counts the lines of an instance's log that contain every one of
// substrs (e.g. `"msg":"NCMEC report finished"`).
func (s *Stack) LogCount(instance string, substrs ...string) int {
	return len(s.InstanceLog(instance, substrs...))
}

// Metric sums the samples of a metric on an instance's /metrics whose
// labels include every one of labels (`outcome="finished"`), since its
// last start.
func (s *Stack) Metric(ctx context.Context, instance, name string, labels ...string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL(instance)+"/metrics", nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		series := line[:i]
		if !all(labels, func(l string) bool { return strings.Contains(series, l) }) {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("%s /metrics: %q: %w", instance, line, err)
		}
		sum += v
	}
	return sum, nil
}

func all[T any](xs []T, f func(T) bool) bool {
	for _, x := range xs {
		if !f(x) {
			return false
		}
	}
	return true
}
