package localstack

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSAdmin is the user the local stack and the tests add to the shipped
// NATS configuration, with every permission, for what no service does:
// inspecting streams, purging. It exists only in the local process's
// options, never in deploy/nats/nats.conf, so production has no such user.
const NATSAdmin = "local-admin"

// NATSPasswordVar is the environment variable nats.conf reads a service's
// password from: NATS_PASSWORD_<SERVICE>, e.g. NATS_PASSWORD_NCMEC_REPORTER.
func NATSPasswordVar(service string) string {
	return "NATS_PASSWORD_" + strings.ToUpper(strings.ReplaceAll(service, "-", "_"))
}

// NATSLocal is what a local NATS process changes of the shipped
// configuration: where it listens and keeps its store, and the admin user.
type NATSLocal struct {
	Host          string // default 127.0.0.1
	Port          int    // client port; -1 picks a free one
	HTTPPort      int    // monitoring (/healthz, /jsz); 0 turns it off
	StoreDir      string // JetStream store
	ServerName    string
	AdminPassword string // NATSAdmin's password; required
	// Cluster, when set, routes this node to Routes (nats-route://host:port)
	// and listens for routes on ClusterPort.
	Cluster     string
	ClusterPort int
	Routes      []string
	// Passwords, service → password, are put into the environment while
	// the file is read, for its $NATS_PASSWORD_<SERVICE> references, and
	// taken out again, so child processes do not inherit every service's
	// password. Nil when the environment already holds them.
	Passwords map[string]string
}

// NATSOptions loads the shipped NATS configuration (deploy/nats/nats.conf)
// with nats-server's own loader, so that the local stack and the tests run
// its very users and permissions, and changes only what cannot work on a
// developer's machine: addresses, store, server name. It adds NATSAdmin to
// the account of the file's users.
func NATSOptions(conf string, l NATSLocal) (*server.Options, error) {
	if l.AdminPassword == "" {
		return nil, errors.New("nats: no password for the local admin user")
	}
	for svc, pw := range l.Passwords {
		v := NATSPasswordVar(svc)
		old, had := os.LookupEnv(v)
		os.Setenv(v, pw)
		defer func() {
			if had {
				os.Setenv(v, old)
			} else {
				os.Unsetenv(v)
			}
		}()
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	// The admin joins the services' account: a stream is seen only from
	// inside its account.
	var acc *server.Account
	for _, u := range opts.Users {
		if u.Username == NATSAdmin {
			return nil, fmt.Errorf("nats: %s already defines user %s, which the local stack adds", conf, NATSAdmin)
		}
		if acc != nil && u.Account != acc {
			return nil, fmt.Errorf("nats: %s has users in several accounts; which one would %s join?", conf, NATSAdmin)
		}
		acc = u.Account
	}
	if acc == nil {
		return nil, fmt.Errorf("nats: %s defines no users in an account", conf)
	}
	opts.Users = append(opts.Users, &server.User{Username: NATSAdmin, Password: l.AdminPassword, Account: acc})

	opts.Host, opts.Port = cmp.Or(l.Host, "127.0.0.1"), l.Port
	opts.HTTPHost, opts.HTTPPort = opts.Host, l.HTTPPort
	opts.StoreDir = l.StoreDir
	if l.ServerName != "" {
		opts.ServerName = l.ServerName
	}
	if l.Cluster != "" {
		opts.Cluster.Name, opts.Cluster.Host, opts.Cluster.Port = l.Cluster, opts.Host, l.ClusterPort
		opts.Routes = server.RoutesFromStr(strings.Join(l.Routes, ","))
	}
	return opts, nil
}
