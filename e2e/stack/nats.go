package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"takedown/pkg/events"
	"takedown/pkg/localstack"
	"takedown/pkg/testenv"
)

// natsNode is one NATS server process (localnats: nats-server with the
// shipped deploy/nats/nats.conf) with its ports and store.
//
// The issue speaks of embedded servers on loopback; these are separate
// processes on loopback instead, as the single node always was:
// kill -9 of a process drops its sockets and its unsynced state the way a
// crashed host does, which an embedded server's Shutdown inside the test
// process would not, and the services are separate processes too.
type natsNode struct {
	proc       *proc
	serverName string // server_name, as JetStream names a stream's leader
	url        string // nats://127.0.0.1:port, the client port
	monitor    string // host:port of the HTTP monitoring endpoint
}

// startNATSCluster starts n nodes of the shipped configuration: one
// node alone as before (server_name e2e, log nats.log), or a cluster of n
// routed to each other, node i named e2e-i with log nats-i.log.
func (s *Stack) startNATSCluster(tb testing.TB, natsBin string, n int) {
	tb.Helper()
	ports := func() (client, monitor, route int) {
		var p [3]int
		for i := range p {
			var err error
			if p[i], err = localstack.FreePort(); err != nil {
				tb.Fatal(err)
			}
		}
		return p[0], p[1], p[2]
	}
	type node struct{ client, monitor, route int }
	nodes := make([]node, n)
	for i := range nodes {
		nodes[i].client, nodes[i].monitor, nodes[i].route = ports()
	}
	// The shipped configuration with its per-service users and
	// permissions (a permission a service lacks fails the tests as it
	// would production), loaded by localnats; this run's passwords in the
	// environment, as docker-compose passes them.
	conf, err := shippedNATSConf()
	if err != nil {
		tb.Fatal(err)
	}
	env := []string{"NATS_ADMIN_PASSWORD=" + s.natsAdminPassword}
	for svc, pw := range s.natsPasswords {
		env = append(env, localstack.NATSPasswordVar(svc)+"="+pw)
	}
	for i, nd := range nodes {
		name, serverName := "nats", "e2e"
		if n > 1 {
			name, serverName = fmt.Sprintf("nats-%d", i+1), fmt.Sprintf("e2e-%d", i+1)
		}
		// The file syncs every write, as RELIABILITY.md asks of a single
		// node: a restart test must not pass only because nothing was lost
		// in a buffer. A cluster keeps it, so that a node killed and
		// restarted comes back with all it acknowledged.
		args := []string{"-conf", conf, "-port", fmt.Sprint(nd.client), "-http-port", fmt.Sprint(nd.monitor),
			"-store", tb.TempDir(), "-name", serverName}
		if n > 1 {
			var routes []string
			for j, other := range nodes {
				if j != i {
					routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", other.route))
				}
			}
			args = append(args, "-cluster", "e2e", "-cluster-port", fmt.Sprint(nd.route), "-routes", strings.Join(routes, ","))
		}
		p := &proc{name: name, bin: filepath.Join(natsBin, "localnats"), args: args, env: env, logPath: filepath.Join(s.logDir, name+".log")}
		tb.Cleanup(p.stop)
		s.nats = append(s.nats, &natsNode{proc: p, serverName: serverName,
			url: fmt.Sprintf("nats://127.0.0.1:%d", nd.client), monitor: fmt.Sprintf("127.0.0.1:%d", nd.monitor)})
	}
	s.StartNATS()
}

// NATSNodes is the number of NATS servers.
func (s *Stack) NATSNodes() int { return len(s.nats) }

// NATSURLs are the client URLs of every NATS node.
func (s *Stack) NATSURLs() []string {
	out := make([]string, len(s.nats))
	for i, n := range s.nats {
		out[i] = n.url
	}
	return out
}

// StartNATS starts every NATS node that is not running, on its store, and
// waits until each serves (in a cluster: until each is current).
func (s *Stack) StartNATS() {
	s.tb.Helper()
	all := make([]int, len(s.nats))
	for i := range all {
		all[i] = i + 1
	}
	s.startNATSNodes(all...)
}

// KillNATS is kill -9 of every NATS node; StopNATS a graceful stop.
func (s *Stack) KillNATS() {
	for _, n := range s.nats {
		n.proc.kill()
	}
}
func (s *Stack) StopNATS() {
	for _, n := range s.nats {
		n.proc.stop()
	}
}

// KillNATSNode is kill -9 of node i (from 1); StopNATSNode a graceful stop.
func (s *Stack) KillNATSNode(i int) { s.node(i).proc.kill() }
func (s *Stack) StopNATSNode(i int) { s.node(i).proc.stop() }

// StartNATSNode starts node i (from 1) again on its store and waits until
// it serves and, in a cluster, has caught up.
func (s *Stack) StartNATSNode(i int) {
	s.tb.Helper()
	s.startNATSNodes(i)
}

// NATSNodeName is node i's process (and log) name.
func (s *Stack) NATSNodeName(i int) string { return s.node(i).proc.name }

func (s *Stack) node(i int) *natsNode {
	if i < 1 || i > len(s.nats) {
		s.tb.Fatalf("stack: no NATS node %d of %d", i, len(s.nats))
	}
	return s.nats[i-1]
}

// startNATSNodes starts the nodes first, then waits for them: a cluster's
// nodes need each other (a quorum) before any of them is current.
func (s *Stack) startNATSNodes(nodes ...int) {
	s.tb.Helper()
	for _, i := range nodes {
		if err := s.node(i).proc.start(); err != nil {
			s.tb.Fatalf("stack: %v", err)
		}
	}
	for _, i := range nodes {
		n := s.node(i)
		addr := strings.TrimPrefix(n.url, "nats://")
		testenv.Eventually(s.tb, 30*time.Second, n.proc.name+" answers on "+addr, func() bool {
			resp, err := s.client.Get("http://" + addr) // the client port refuses HTTP, but only once it listens
			if err == nil {
				resp.Body.Close()
			}
			return err == nil || !strings.Contains(err.Error(), "connection refused")
		})
		if len(s.nats) > 1 {
			// /healthz answers 200 once the node has a JetStream meta
			// leader and every stream and consumer it holds is current.
			testenv.Eventually(s.tb, time.Minute, n.proc.name+" JetStream current", func() bool {
				return s.natsHealthy(n) == nil
			})
		}
	}
}

func (s *Stack) natsHealthy(n *natsNode) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.monitor+"/healthz", nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return fmt.Errorf("%s /healthz: %s %s", n.proc.name, resp.Status, b.Error)
	}
	return nil
}

// StreamReplica is one node's view of a stream, from its monitoring
// endpoint (/jsz): its own copy's state and the cluster as it sees it.
type StreamReplica struct {
	Node     int    // from 1
	Leader   string // server_name of the stream's leader, "" on a single node
	Messages uint64
	FirstSeq uint64
	LastSeq  uint64
	Peers    []StreamPeer // the other replicas, as this node sees them
	// AckFloors is each durable consumer's ack floor as this node sees it:
	// every message up to that stream sequence is acknowledged.
	AckFloors map[string]uint64
}

// StreamPeer is a replica as another node sees it.
type StreamPeer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Lag     uint64 `json:"lag"`
}

// StreamReplica asks node i for its copy of stream.
func (s *Stack) StreamReplica(ctx context.Context, i int, stream string) (StreamReplica, error) {
	n := s.node(i)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.monitor+"/jsz?accounts=true&streams=true&consumers=true", nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return StreamReplica{}, fmt.Errorf("%s /jsz: %w", n.proc.name, err)
	}
	defer resp.Body.Close()
	var jsz struct {
		AccountDetails []struct {
			Streams []struct {
				Name    string `json:"name"`
				Cluster *struct {
					Leader   string       `json:"leader"`
					Replicas []StreamPeer `json:"replicas"`
				} `json:"cluster"`
				State struct {
					Messages uint64 `json:"messages"`
					FirstSeq uint64 `json:"first_seq"`
					LastSeq  uint64 `json:"last_seq"`
				} `json:"state"`
				Consumers []struct {
					Name     string `json:"name"`
					AckFloor struct {
						StreamSeq uint64 `json:"stream_seq"`
					} `json:"ack_floor"`
				} `json:"consumer_detail"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if resp.StatusCode != http.StatusOK {
		return StreamReplica{}, fmt.Errorf("%s /jsz: %s", n.proc.name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return StreamReplica{}, fmt.Errorf("%s /jsz: %w", n.proc.name, err)
	}
	for _, acc := range jsz.AccountDetails {
		for _, st := range acc.Streams {
			if st.Name != stream {
				continue
			}
			r := StreamReplica{Node: i, Messages: st.State.Messages, FirstSeq: st.State.FirstSeq, LastSeq: st.State.LastSeq,
				AckFloors: map[string]uint64{}}
			for _, c := range st.Consumers {
				r.AckFloors[c.Name] = c.AckFloor.StreamSeq
			}
			if st.Cluster != nil {
				r.Leader, r.Peers = st.Cluster.Leader, st.Cluster.Replicas
			}
			return r, nil
		}
	}
	return StreamReplica{}, fmt.Errorf("%s holds no stream %s", n.proc.name, stream)
}

// WaitAudited waits until the audit logger has handled every message the
// stream held when it was called: the audit logger gathers events into
// batches, so its log may be a moment behind a report that has settled.
// A node that is behind sees an older ack floor, never a newer one.
func (s *Stack) WaitAudited(ctx context.Context) error {
	const consumer = events.AuditLogger // the audit logger's durable consumer
	var target uint64
	for i := range s.nats {
		if r, err := s.StreamReplica(ctx, i+1, events.Stream); err == nil {
			target = max(target, r.LastSeq)
		}
	}
	deadline := time.Now().Add(time.Minute)
	var floor uint64
	for {
		for i := range s.nats {
			if r, err := s.StreamReplica(ctx, i+1, events.Stream); err == nil {
				floor = max(floor, r.AckFloors[consumer])
			}
		}
		if floor >= target {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the audit logger has handled the stream up to %d of %d after a minute", floor, target)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StreamLeader is the node (from 1) leading stream, as the first running
// node that knows a leader says; 0 when none does.
func (s *Stack) StreamLeader(ctx context.Context, stream string) (int, error) {
	var last error
	for i, n := range s.nats {
		if !n.proc.isRunning() {
			continue
		}
		r, err := s.StreamReplica(ctx, i+1, stream)
		if err != nil {
			last = err
			continue
		}
		for j, m := range s.nats {
			if r.Leader != "" && m.serverName == r.Leader {
				return j + 1, nil
			}
		}
	}
	if last == nil {
		last = fmt.Errorf("no node knows a leader of %s", stream)
	}
	return 0, last
}

// NATSAdmin is the user and password of a connection that may do what no
// service may (inspect or purge streams): a user the local stack adds to the
// shipped configuration, never in deploy/nats/nats.conf.
func (s *Stack) NATSAdmin() (user, password string) {
	return localstack.NATSAdmin, s.natsAdminPassword
}

// shippedNATSConf is deploy/nats/nats.conf of the repository the test runs
// in.
func shippedNATSConf() (string, error) {
	root, err := localstack.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "deploy", "nats", "nats.conf"), nil
}

// PermissionViolations are the lines of every NATS node's and every
// instance's log that tell of a refused permission: the server logs
// "Publish Violation" / "Subscription Violation", a client is told
// "Permissions Violation" (pkg/service logs the server's errors). A
// service whose user lacks a permission it uses shows here.
func (s *Stack) PermissionViolations() []string {
	var names []string
	for _, n := range s.nats {
		names = append(names, n.proc.name)
	}
	var out []string
	for _, name := range append(names, s.instanceNames()...) {
		b, err := os.ReadFile(filepath.Join(s.logDir, name+".log"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, " Violation") {
				out = append(out, name+": "+l)
			}
		}
	}
	return out
}
