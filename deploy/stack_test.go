package deploy_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/salesforce/sfsim"
	"takedown/pkg/testenv"
)

// services are the five services and the metric prefix of each.
var services = []string{"intake", "ncmec-reporter", "case-writer", "audit-logger", "retraction"}

// stack is the five services as processes, built from this workspace,
// against real PostgreSQL, NATS JetStream and S3 (pkg/testenv) and the two
// simulators in this process: what the dashboard and the alerts watch.
type stack struct {
	t     *testing.T
	addr  map[string]string // service → host:port of its HTTP server
	ncmec *ncmecsim.Server
	token string
	// token2 is a second person: legal's approval of what token submits.
	token2 string
}

var built struct {
	once sync.Once
	dir  string
	err  error
}

// buildServices builds the five binaries once per test binary.
func buildServices(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "takedown-deploy-bin-")
		if built.err != nil {
			return
		}
		args := []string{"build", "-o", built.dir + "/"}
		for _, s := range services {
			args = append(args, "takedown/services/"+s)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

func startStack(t *testing.T) *stack {
	t.Helper()
	bin := buildServices(t)
	db, nats, s3 := testenv.Postgres(t), testenv.StartNATS(t), testenv.S3(t)

	ncmec, err := ncmecsim.New(ncmecsim.Options{Username: "isp", Password: "isp-pw", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	ncmecSrv := httptest.NewServer(ncmec)
	t.Cleanup(ncmecSrv.Close)
	sf, err := sfsim.New(sfsim.Config{ClientID: "cw", ClientSecret: "cw-secret"})
	if err != nil {
		t.Fatal(err)
	}
	sfSrv := httptest.NewServer(sf)
	t.Cleanup(sfSrv.Close)

	key := make([]byte, 32)
	rand.Read(key)
	st := &stack{t: t, addr: map[string]string{}, ncmec: ncmec, token: "deploy-test-token", token2: "deploy-test-token-2"}
	common := []string{
		"LISTEN_ADDR=127.0.0.1:0", "NATS_URL=" + nats.URL(), "SHUTDOWN_TIMEOUT=5s",
		"TAKEDOWN_DEV_TOKEN=" + st.token, "TAKEDOWN_DEV_TOKEN_2=" + st.token2,
		"S3_ENDPOINT=" + s3.Endpoint, "S3_ACCESS_KEY=" + s3.AccessKey, "S3_SECRET_KEY=" + s3.SecretKey,
		"S3_TLS=false", "S3_BUCKET=" + s3.Bucket, "S3_REGION=" + s3.Region,
		"MASTER_KEYS=k1:" + base64.StdEncoding.EncodeToString(key), "MASTER_KEY_ID=k1",
		"NCMEC_URL=" + ncmecSrv.URL + ncmecsim.BasePath, "NCMEC_USERNAME=isp", "NCMEC_PASSWORD=isp-pw",
		"NCMEC_TEST_URL=" + ncmecSrv.URL + ncmecsim.BasePath, "NCMEC_TEST_USERNAME=isp", "NCMEC_TEST_PASSWORD=isp-pw",
		"NCMEC_REPORTER_FIRST_NAME=Trust", "NCMEC_REPORTER_LAST_NAME=Safety", "NCMEC_REPORTER_EMAIL=ts@example.com",
		"RETRY_MIN_DELAY=200ms", "RETRY_MAX_DELAY=1s", "FILING_POLL_INTERVAL=200ms",
		"SALESFORCE_URL=" + sfSrv.URL, "SALESFORCE_CLIENT_ID=cw", "SALESFORCE_CLIENT_SECRET=cw-secret",
		"CASE_SYNC_POLL_INTERVAL=200ms",
		"DEV_ALLOW_HTTP=true", // the simulators are httptest servers without TLS
	}
	// Each on a PostgreSQL login of its own, as in production.
	logins := testenv.ServiceLogins(t, db, services...)
	// One after the other: each migrates its schema at start.
	for _, s := range services {
		st.addr[s] = st.run(filepath.Join(bin, s), s, append(append([]string{}, common...), logins[s].Env()...))
	}
	return st
}

// run starts one service and returns the address it logged as serving.
func (st *stack) run(path, name string, env []string) string {
	t := st.t
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				select {
				case addr <- line.Addr:
				default:
				}
			}
			if testing.Verbose() {
				t.Logf("%s: %s", name, sc.Text())
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case a := <-addr:
		return a
	case <-done:
		t.Fatalf("%s exited at start (run with -v for its log)", name)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start serving within 60s", name)
	}
	return ""
}

// metricNames scrapes every service's /metrics and returns the names it
// exports (histograms and summaries with their _bucket, _sum, _count).
func (st *stack) metricNames() map[string]bool {
	names := map[string]bool{}
	for _, s := range services {
		resp, err := http.Get("http://" + st.addr[s] + "/metrics")
		if err != nil {
			st.t.Fatalf("%s /metrics: %v", s, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			st.t.Fatalf("%s /metrics: %s", s, resp.Status)
		}
		for _, line := range strings.Split(string(body), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, _, _ := strings.Cut(line, "{")
			name, _, _ = strings.Cut(name, " ")
			names[name] = true
		}
	}
	return names
}

// submit files a report with one small file and returns its id: under the
// shipped default (LEGAL_APPROVAL=required) it submits as one person and
// approves as another.
func (st *stack) submit() string {
	t := st.t
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	p, _ := w.CreatePart(map[string][]string{"Content-Disposition": {`form-data; name="report"`}, "Content-Type": {"application/json"}})
	p.Write([]byte(`{"incident_time": "2026-01-02T15:04:05Z", "platform": "Example"}`))
	f, _ := w.CreateFormFile("file", "evidence.bin")
	data := make([]byte, 4096)
	rand.Read(data)
	f.Write(data)
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, "http://"+st.addr["intake"]+"/api/v1/reports", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+st.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated || out.ID == "" {
		t.Fatalf("submit: %s", resp.Status)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://"+st.addr["intake"]+"/api/v1/reports/"+out.ID+"/legal-decision",
		strings.NewReader(`{"approve": true, "reason": "deploy test"}`))
	req.Header.Set("Authorization", "Bearer "+st.token2)
	approval, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	approval.Body.Close()
	if approval.StatusCode != http.StatusOK {
		t.Fatalf("legal approval: %s", approval.Status)
	}
	return out.ID
}

// status returns the report's overall status and its Salesforce case state.
func (st *stack) status(id string) (status, caseState string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+st.addr["intake"]+"/api/v1/reports/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+st.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", ""
	}
	defer resp.Body.Close()
	var out struct {
		Status string
		Case   struct{ State string }
	}
	json.NewDecoder(resp.Body).Decode(&out)
	return out.Status, out.Case.State
}
