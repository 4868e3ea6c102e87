// Command localnats is nats-server running the shipped configuration
// (deploy/nats/nats.conf: its accounts, per-service users and
// permissions) on a developer's machine or in the end-to-end tests, with
// only the addresses, the store and the local admin user changed
// (localstack.NATSOptions). It is a process of its own so that a test can
// kill -9 it like a crashed host.
//
// The services' passwords come from the environment as in production
// ($NATS_PASSWORD_<SERVICE>), the admin's from $NATS_ADMIN_PASSWORD.
package main

import (
	"flag"
	"log"
	"os"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"takedown/pkg/localstack"
)

func main() {
	var l localstack.NATSLocal
	conf := flag.String("conf", "deploy/nats/nats.conf", "the shipped NATS configuration")
	flag.StringVar(&l.Host, "host", "127.0.0.1", "address of the client, monitoring and route ports")
	flag.IntVar(&l.Port, "port", 4222, "client port")
	flag.IntVar(&l.HTTPPort, "http-port", 0, "monitoring port (0: off)")
	flag.StringVar(&l.StoreDir, "store", "", "JetStream store directory")
	flag.StringVar(&l.ServerName, "name", "", "server_name (default: the file's)")
	flag.StringVar(&l.Cluster, "cluster", "", "cluster name; empty runs a single node")
	flag.IntVar(&l.ClusterPort, "cluster-port", 0, "route port")
	routes := flag.String("routes", "", "comma-separated nats-route:// URLs of the other nodes")
	flag.Parse()
	if *routes != "" {
		l.Routes = strings.Split(*routes, ",")
	}
	l.AdminPassword = os.Getenv("NATS_ADMIN_PASSWORD")
	if l.StoreDir == "" {
		log.Fatal("localnats: -store is required")
	}
	opts, err := localstack.NATSOptions(*conf, l)
	if err != nil {
		log.Fatalf("localnats: %v", err)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		log.Fatalf("localnats: %v", err)
	}
	// Logs to stderr, as nats-server does: the tests look for permission
	// violations there.
	s.ConfigureLogger()
	if err := server.Run(s); err != nil {
		log.Fatalf("localnats: %v", err)
	}
	s.WaitForShutdown()
}
