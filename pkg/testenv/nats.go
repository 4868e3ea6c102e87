package testenv

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an embedded NATS server with JetStream, of one test's own, storing
// in a temporary directory. It can be stopped and restarted on the same port
// and store, as a broker outage would.
type NATS struct {
	tb   testing.TB
	opts server.Options
	srv  *server.Server
}

// StartNATS starts a JetStream server for tb, shut down when the test ends.
func StartNATS(tb testing.TB) *NATS {
	tb.Helper()
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	n := &NATS{tb: tb, opts: server.Options{
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   tb.TempDir(),
		NoLog:      true,
		NoSigs:     true,
		ServerName: "test-" + randomHex(4),
		// Always sync, as production does (RELIABILITY.md): a restart test
		// must not pass only because nothing was flushed.
		SyncAlways: true,
	}}
	n.Start()
	tb.Cleanup(n.Stop)
	return n
}

// URL is the client URL; it stays the same across restarts.
func (n *NATS) URL() string {
	return "nats://" + net.JoinHostPort(n.opts.Host, strconv.Itoa(n.opts.Port))
}

// StoreDir is where JetStream keeps its data.
func (n *NATS) StoreDir() string { return n.opts.StoreDir }

// Start starts the server (again) and waits until it takes clients.
func (n *NATS) Start() {
	n.tb.Helper()
	opts := n.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		n.tb.Fatalf("testenv: nats: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.tb.Fatal("testenv: nats did not start within 10s")
	}
	n.srv = srv
}

// Stop shuts the server down and waits until it is gone; Start brings it back.
func (n *NATS) Stop() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}
